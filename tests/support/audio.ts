/**
 * Builds WAV files for VAD tests: the checked-in espeak-ng recording padded
 * with silence, pure silence, and low white noise.
 * @module
 */
import wavefile from "wavefile";

const speechUrl = new URL("../fixtures/speech.wav", import.meta.url);

/** The speech recording's samples and rate (22.05 kHz, 16-bit mono, made by espeak-ng). */
export async function loadSpeech(): Promise<{ samples: Int16Array; rate: number }> {
  const wav = new wavefile.WaveFile(await Deno.readFile(speechUrl));
  const rate = (wav.fmt as { sampleRate: number }).sampleRate;
  return { samples: wav.getSamples(false, Int16Array) as unknown as Int16Array, rate };
}

/** Encodes 16-bit mono samples as a WAV file. */
export function encodeWav(samples: Int16Array, rate: number): Uint8Array {
  const wav = new wavefile.WaveFile();
  wav.fromScratch(1, rate, "16", samples);
  return wav.toBuffer();
}

/** `seconds` of silence, then the samples, then `seconds` of silence. */
export function padWithSilence(samples: Int16Array, rate: number, seconds: number): Int16Array {
  const pad = Math.round(seconds * rate);
  const out = new Int16Array(samples.length + 2 * pad);
  out.set(samples, pad);
  return out;
}

/** White noise at `amplitude` (of full scale), from a fixed seed so runs repeat. */
export function whiteNoise(seconds: number, rate: number, amplitude: number, seed = 42): Int16Array {
  const out = new Int16Array(Math.round(seconds * rate));
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = Math.round(((s / 2 ** 32) * 2 - 1) * amplitude * 32767);
  }
  return out;
}

/** A WAV sample format, as wavefile names it: integer bits, or `32f` for IEEE float. */
export type WavBitDepth = "8" | "16" | "24" | "32" | "32f";

/**
 * Encodes 16-bit samples as a WAV of another sample format and channel count,
 * converted by wavefile (`toBitDepth`). Channel `c` carries the samples scaled
 * by `1 - c / (2 * channels)`, so a downmix is the same speech, a little
 * quieter. More than two channels make a WAVE_FORMAT_EXTENSIBLE header.
 */
export function encodeWavAs(
  samples: Int16Array,
  rate: number,
  { bitDepth, channels = 1 }: { bitDepth: WavBitDepth; channels?: number },
): Uint8Array {
  const planes = Array.from({ length: channels }, (_, c) => {
    const gain = 1 - c / (2 * channels);
    return Int16Array.from(samples, (s) => Math.round(s * gain));
  });
  const wav = new wavefile.WaveFile();
  wav.fromScratch(channels, rate, "16", channels === 1 ? planes[0] : planes);
  if (bitDepth === "16") return wav.toBuffer();
  wav.toBitDepth(bitDepth);
  // Written anew from the converted samples: wavefile's conversion keeps a plain header, a new file gets the
  // header its channel count calls for.
  const converted = wav.getSamples(false, Float64Array) as unknown as Float64Array | Float64Array[];
  const out = new wavefile.WaveFile();
  out.fromScratch(channels, rate, bitDepth, channels === 1 ? converted as Float64Array : converted as Float64Array[]);
  const bytes = out.toBuffer();
  // For more than two channels wavefile writes the 40-byte extensible fmt chunk with the PCM sub-format GUID but
  // leaves the format tag at 1; WAVE_FORMAT_EXTENSIBLE's tag is 0xFFFE.
  if (channels > 2) new DataView(bytes.buffer, bytes.byteOffset).setUint16(20, 0xfffe, true);
  return bytes;
}

/** Encodes 16-bit mono samples as an A-law WAV (format tag 6): a compressed WAV that VAD refuses. */
export function encodeALawWav(samples: Int16Array, rate: number): Uint8Array {
  const wav = new wavefile.WaveFile();
  wav.fromScratch(1, rate, "16", samples);
  wav.toALaw();
  return wav.toBuffer();
}
