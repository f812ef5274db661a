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
