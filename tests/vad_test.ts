/**
 * VAD on the audio people have: the speech recording rendered here as every
 * PCM sample format and as multi-channel WAVs, served by a real runtime with
 * the real Silero model; compressed WAVs are refused with the reason.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { encodeALawWav, encodeWavAs, loadSpeech, padWithSilence, type WavBitDepth } from "./support/audio.ts";
import { errorOf, startServer } from "./support/server.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

Deno.test("vad: every PCM WAV format, mono and multi-channel", async (t) => {
  await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });
  assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
  const { samples, rate } = await loadSpeech();
  const padded = padWithSilence(samples, rate, 1.5);
  const speechEnd = 1.5 + samples.length / rate;

  const formats: { bitDepth: WavBitDepth; channels: number; formatTag: number }[] = [
    { bitDepth: "8", channels: 1, formatTag: 1 },
    { bitDepth: "16", channels: 1, formatTag: 1 },
    { bitDepth: "24", channels: 1, formatTag: 1 },
    { bitDepth: "32", channels: 1, formatTag: 1 },
    { bitDepth: "32f", channels: 1, formatTag: 3 },
    { bitDepth: "16", channels: 2, formatTag: 1 },
    { bitDepth: "32f", channels: 2, formatTag: 3 },
    { bitDepth: "24", channels: 3, formatTag: 0xfffe },
  ];
  for (const { bitDepth, channels, formatTag } of formats) {
    await t.step(`${bitDepth}-bit ${bitDepth.endsWith("f") ? "float" : "PCM"}, ${channels} channel(s)`, async () => {
      const wav = encodeWavAs(padded, rate, { bitDepth, channels });
      // The file really is what the step says: format tag at byte 20, channels at 22, bits at 34.
      const view = new DataView(wav.buffer, wav.byteOffset);
      assert.equal(view.getUint16(20, true), formatTag);
      assert.equal(view.getUint16(22, true), channels);
      assert.equal(view.getUint16(34, true), Number.parseInt(bitDepth));
      const response = await server.invoke("vad", { audio: base64(wav) });
      const result = await response.json();
      assert.equal(response.status, 200, JSON.stringify(result));
      assert.ok(result.speech.length >= 1, JSON.stringify(result.speech));
      const first = result.speech[0];
      const last = result.speech.at(-1);
      assert.ok(first.start > 1.2 && first.start < 2, `speech starts at ${first.start}`);
      assert.ok(last.end > speechEnd - 1 && last.end < speechEnd + 0.5, `speech ends at ${last.end}`);
      const lead = result.frames.filter((f: { end: number }) => f.end < 1.2);
      assert.ok(lead.length > 30 && lead.every((f: { probability: number }) => f.probability < 0.2));
    });
  }

  await t.step("refuses a compressed (A-law) WAV with the reason", async () => {
    const e = await errorOf(await server.invoke("vad", { audio: base64(encodeALawWav(padded, rate)) }));
    assert.equal(e.status, 400);
    assert.equal(e.code, "invalid_input");
    assert.match(e.message, /PCM or IEEE float WAV; this WAV is A-law \(format tag 6\)/);
  });
});
