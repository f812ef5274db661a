/**
 * The example functions in functions/, served by a real runtime with real
 * models: mlp against a reference computed here, OCR on an image rendered
 * here, VAD on a real speech recording, on silence and on noise.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { assertClose, mlpReference } from "./support/mlp_reference.ts";
import { encodeWav, loadSpeech, padWithSilence, whiteNoise } from "./support/audio.ts";
import { renderTextPng } from "./support/render_text.ts";
import { errorOf, startServer } from "./support/server.ts";

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

Deno.test("examples: mlp, ocr and vad served with their real models", async (t) => {
  // The CPU answers: GPU lanes are compared with these in tests/gpu.
  await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });

  await t.step("every example is ready and describes its models", async () => {
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    const info = await (await fetch(`${server.url}/v1/functions/ocr`)).json();
    assert.deepEqual(info.models.map((m: { name: string }) => m.name), ["det", "cls", "rec"]);
    const det = info.models[0];
    assert.equal(det.inputs[0].type, "float32");
    assert.equal(det.inputs[0].shape.length, 4);
    assert.match(det.source, /^npm:@gutenye\/ocr-models@1\.4\.2\//);
    const vad = await (await fetch(`${server.url}/v1/functions/vad`)).json();
    assert.deepEqual(vad.models[0].inputs.map((i: { name: string }) => i.name), ["input", "state", "sr"]);
    assert.deepEqual(vad.models[0].providers, ["cpu"]);
  });

  await t.step("mlp matches the reference for a batch of rows", async () => {
    const x = Array.from({ length: 17 }, (_, r) => Array.from({ length: 4 }, (_, c) => Math.sin(r * 4 + c) * 3));
    const response = await server.invoke("mlp", { x });
    assert.equal(response.status, 200);
    const { y } = await response.json();
    assert.equal(y.length, 17);
    assertClose(y, mlpReference(x), 1e-5, "mlp on the CPU");
  });

  await t.step("ocr reads printed English words and digits", async () => {
    const lines = ["Hello World", "isolane serves 42 models", "Invoice 2026-11-24 total 318.75"];
    const png = await renderTextPng(lines, { width: 900 });
    const response = await server.invoke("ocr", { image: base64(png) });
    assert.equal(response.status, 200);
    const result = await response.json();
    assert.equal(result.lines.length, 3, JSON.stringify(result));
    result.lines.forEach((line: { text: string; score: number; box: number[][] }, i: number) => {
      assert.equal(line.text, lines[i]);
      assert.ok(line.score > 0.8, `score ${line.score}`);
      assert.equal(line.box.length, 4);
    });
    // Boxes come in reading order, each below the last.
    const tops = result.lines.map((l: { box: number[][] }) => l.box[0][1]);
    assert.deepEqual([...tops].sort((a, b) => a - b), tops);
  });

  await t.step("ocr takes the image itself as the body, or as a form's file, and reads the same text", async () => {
    const lines = ["Raw bytes in", "no base64 needed"];
    const png = new Uint8Array(await renderTextPng(lines, { width: 700 }));
    const viaJson = await (await server.invoke("ocr", { image: base64(png) })).json();
    const raw = await fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: png,
    });
    assert.equal(raw.status, 200);
    const viaRaw = await raw.json();
    assert.deepEqual(viaRaw.lines.map((l: { text: string }) => l.text), lines);
    assert.deepEqual(viaRaw, viaJson);
    const form = new FormData();
    form.append("scan", new Blob([png], { type: "image/png" }), "scan.png");
    const viaForm = await (await fetch(`${server.url}/v1/functions/ocr`, { method: "POST", body: form })).json();
    assert.deepEqual(viaForm, viaJson);
    const wav = await fetch(`${server.url}/v1/functions/ocr`, {
      method: "POST",
      headers: { "content-type": "audio/wav" },
      body: png,
    });
    assert.equal((await errorOf(wav)).status, 415);
  });

  await t.step("ocr rejects an image it cannot decode with 400", async () => {
    const e = await errorOf(await server.invoke("ocr", { image: base64(new TextEncoder().encode("not an image")) }));
    assert.equal(e.status, 400);
    assert.match(e.message, /neither PNG nor JPEG/);
  });

  const { samples, rate } = await loadSpeech();

  await t.step("vad finds the speech in a recording padded with silence", async () => {
    const padded = padWithSilence(samples, rate, 2);
    const response = await server.invoke("vad", { audio: base64(encodeWav(padded, rate)) });
    assert.equal(response.status, 200);
    const result = await response.json();
    assert.equal(result.sampleRate, 16000);
    assert.ok(result.speech.length >= 1, JSON.stringify(result.speech));
    const first = result.speech[0];
    const last = result.speech.at(-1);
    const speechEnd = 2 + samples.length / rate;
    assert.ok(first.start > 1.7 && first.start < 2.5, `speech starts at ${first.start}`);
    assert.ok(last.end > speechEnd - 1 && last.end < speechEnd + 0.5, `speech ends at ${last.end}`);
    // The padding is silence: no frame in the first 1.5 s is speech.
    const lead = result.frames.filter((f: { end: number }) => f.end < 1.5);
    assert.ok(lead.length > 40);
    assert.ok(lead.every((f: { probability: number }) => f.probability < 0.2));
  });

  await t.step("vad finds no speech in silence or in noise", async () => {
    for (const quiet of [new Int16Array(rate * 3), whiteNoise(3, rate, 0.05)]) {
      const result = await (await server.invoke("vad", { audio: base64(encodeWav(quiet, rate)) })).json();
      assert.deepEqual(result.speech, []);
      assert.ok(result.frames.length > 80);
    }
  });

  await t.step("vad takes the WAV itself as the body, options as form fields", async () => {
    const wav = new Uint8Array(encodeWav(padWithSilence(samples, rate, 1), rate));
    const viaJson = await (await server.invoke("vad", { audio: base64(wav), threshold: 0.6 })).json();
    const raw = await fetch(`${server.url}/v1/functions/vad`, {
      method: "POST",
      headers: { "content-type": "audio/wav" },
      body: wav,
    });
    assert.equal(raw.status, 200);
    const viaRaw = await raw.json();
    assert.ok(viaRaw.speech.length >= 1);
    const form = new FormData();
    form.append("threshold", "0.6");
    form.append("audio", new Blob([wav], { type: "audio/wav" }), "talk.wav");
    const viaForm = await (await fetch(`${server.url}/v1/functions/vad`, { method: "POST", body: form })).json();
    assert.deepEqual(viaForm, viaJson);
    const badField = new FormData();
    badField.append("threshold", "loud");
    badField.append("audio", new Blob([wav], { type: "audio/wav" }), "talk.wav");
    const e = await errorOf(await fetch(`${server.url}/v1/functions/vad`, { method: "POST", body: badField }));
    assert.equal(e.status, 400);
    assert.match(e.message, /threshold/);
  });

  await t.step("vad answers 400 for a WAV it cannot use", async () => {
    const e = await errorOf(await server.invoke("vad", { audio: base64(new TextEncoder().encode("RIFF....")) }));
    assert.equal(e.status, 400);
    assert.match(e.message, /WAV/);
  });
});
