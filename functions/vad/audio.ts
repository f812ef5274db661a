/**
 * WAV decoding and resampling with the wavefile library: any PCM WAV (8, 16,
 * 24 or 32-bit integer, 32 or 64-bit IEEE float, plain or
 * WAVE_FORMAT_EXTENSIBLE, any number of channels) in; mono float samples in
 * [-1, 1] at 16 kHz out. Compressed WAVs (A-law, µ-law, ADPCM, MP3 in RIFF)
 * are refused with the reason.
 * @module
 */
import wavefile from "wavefile";

/** The rate Silero VAD runs at. */
export const modelRate = 16000;

/** Why a WAV cannot be used, for the caller. */
export class UnsupportedAudio extends Error {
  override name = "UnsupportedAudio";
}

/** Names of WAV format tags that are not PCM, for the refusal. */
const formatNames: Record<number, string> = {
  2: "Microsoft ADPCM",
  6: "A-law",
  7: "µ-law",
  17: "IMA ADPCM",
  49: "GSM 6.10",
  80: "MPEG",
  85: "MPEG Layer 3",
};

interface Fmt {
  audioFormat: number;
  numChannels: number;
  bitsPerSample: number;
  sampleRate: number;
  subformat?: number[];
}

/** `int` for PCM, `float` for IEEE float, looking through WAVE_FORMAT_EXTENSIBLE (0xFFFE) to its sub-format. */
function encodingOf(fmt: Fmt): { encoding: "int" | "float" | null; code: number } {
  const code = fmt.audioFormat === 0xfffe ? fmt.subformat?.[0] ?? 0 : fmt.audioFormat;
  return { encoding: code === 1 ? "int" : code === 3 ? "float" : null, code };
}

/**
 * Decodes a PCM or IEEE-float WAV, averages its channels to mono and resamples
 * to 16 kHz when needed. Throws `UnsupportedAudio` with the reason otherwise.
 */
export function decodeWav(bytes: Uint8Array): { samples: Float32Array; inputRate: number; channels: number } {
  const wav = new wavefile.WaveFile();
  try {
    wav.fromBuffer(bytes);
  } catch (error) {
    throw new UnsupportedAudio(`Audio is not a readable WAV file: ${(error as Error).message}`);
  }
  // Copied: wavefile rewrites its fmt object when it converts.
  const fmt = { ...(wav.fmt as Fmt) };
  const { encoding, code } = encodingOf(fmt);
  const bits = fmt.bitsPerSample;
  if (encoding === null) {
    const name = formatNames[code] ?? "not PCM";
    throw new UnsupportedAudio(
      `Audio must be a PCM or IEEE float WAV; this WAV is ${name} (format tag ${code}): convert it to PCM first`,
    );
  }
  if (encoding === "int" && ![8, 16, 24, 32].includes(bits)) {
    throw new UnsupportedAudio(`PCM WAV must have 8, 16, 24 or 32 bits a sample; this one has ${bits}`);
  }
  if (encoding === "float" && ![32, 64].includes(bits)) {
    throw new UnsupportedAudio(`IEEE float WAV must have 32 or 64 bits a sample; this one has ${bits}`);
  }
  if (fmt.numChannels < 1 || fmt.sampleRate < 1) {
    throw new UnsupportedAudio(`WAV declares ${fmt.numChannels} channels at ${fmt.sampleRate} Hz`);
  }
  // wavefile reads an extensible header's bit depth as integer PCM; say what the sub-format is.
  wav.bitDepth = encoding === "float" ? (bits === 32 ? "32f" : "64") : String(bits);
  wav.toBitDepth("32f");
  const channels = fmt.numChannels;
  const read = wav.getSamples(false, Float32Array) as unknown as Float32Array | Float32Array[];
  let mono: Float32Array;
  if (channels === 1) {
    mono = read as Float32Array;
  } else {
    const planes = read as Float32Array[];
    mono = new Float32Array(planes[0].length);
    for (const plane of planes) for (let i = 0; i < mono.length; i++) mono[i] += plane[i] / channels;
  }
  const inputRate = fmt.sampleRate;
  if (inputRate === modelRate) return { samples: mono, inputRate, channels };
  const resampler = new wavefile.WaveFile();
  resampler.fromScratch(1, inputRate, "32f", mono);
  resampler.toSampleRate(modelRate, { method: "sinc" });
  return { samples: resampler.getSamples(false, Float32Array) as unknown as Float32Array, inputRate, channels };
}
