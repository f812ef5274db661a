/**
 * WAV decoding and resampling with the wavefile library: 16-bit PCM mono in,
 * float samples in [-1, 1) at 16 kHz out.
 * @module
 */
import wavefile from "wavefile";

/** The rate Silero VAD runs at. */
export const modelRate = 16000;

/** Why a WAV cannot be used, for the caller. */
export class UnsupportedAudio extends Error {}

/** Decodes a 16-bit PCM mono WAV and resamples it to 16 kHz when needed. */
export function decodeWav(bytes: Uint8Array): { samples: Float32Array; inputRate: number } {
  const wav = new wavefile.WaveFile();
  try {
    wav.fromBuffer(bytes);
  } catch (error) {
    throw new UnsupportedAudio(`Audio is not a readable WAV file: ${(error as Error).message}`);
  }
  const fmt = wav.fmt as { audioFormat: number; numChannels: number; bitsPerSample: number; sampleRate: number };
  if (fmt.audioFormat !== 1 || fmt.bitsPerSample !== 16 || fmt.numChannels !== 1) {
    throw new UnsupportedAudio(
      `Audio must be 16-bit PCM mono; got format ${fmt.audioFormat}, ${fmt.bitsPerSample} bits, ${fmt.numChannels} channels`,
    );
  }
  const inputRate = fmt.sampleRate;
  if (inputRate !== modelRate) wav.toSampleRate(modelRate, { method: "sinc" });
  const pcm = wav.getSamples(false, Int16Array) as unknown as Int16Array;
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  return { samples, inputRate };
}
