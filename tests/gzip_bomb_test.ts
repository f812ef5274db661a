/**
 * A gzip bomb as a request body (`Content-Encoding: gzip`): 520 KB that inflate to 512 MB, within a function's 1 MiB
 * body limit as sent. The runtime refuses it with 413 once about the limit has inflated; it inflated the whole body in
 * one call first (its thread held for seconds, 512 MB more resident), then checked the limit.
 */
import assert from "node:assert/strict";
import { startServer } from "./support/server.ts";

const inflatedBytes = 512 * 2 ** 20;

/** `{"x":` and spaces, gzipped: JSON that never ends, as a body that is small until inflated. */
async function bomb(): Promise<Uint8Array<ArrayBuffer>> {
  const spaces = new Uint8Array(16 * 2 ** 20).fill(0x20);
  const parts: BlobPart[] = [new TextEncoder().encode('{"x":')];
  for (let i = 0; i < inflatedBytes / spaces.length; i++) parts.push(spaces);
  return new Uint8Array(
    await new Response(new Blob(parts).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
}

/** Each text gzipped on its own, the members one after the other. */
async function gzipMembers(...texts: string[]): Promise<Uint8Array<ArrayBuffer>> {
  const members = await Promise.all(
    texts.map(async (text) =>
      new Uint8Array(
        await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
      )
    ),
  );
  return new Uint8Array(await new Blob(members).arrayBuffer());
}

/** The peak resident memory of a process so far (`VmHWM`), in MiB. */
async function peakResidentMb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

const body = await bomb();

for (const threads of ["0", "2"]) {
  Deno.test(`a gzip bomb is refused with 413 without inflating it whole (HTTP threads: ${threads})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-gzip-" });
    try {
      await Deno.mkdir(`${dir}/mlp`);
      for (const file of ["mod.ts", "mlp.onnx"]) {
        await Deno.copyFile(new URL(`../functions/mlp/${file}`, import.meta.url), `${dir}/mlp/${file}`);
      }
      await using server = await startServer({ functionsDir: dir, env: { ISOLANE_HTTP_THREADS: threads } });
      const pid = Number(server.logs.find((l) => l.msg === "starting")?.pid);
      assert.ok(body.length < 1024 * 1024, `${body.length} bytes as sent`);
      for (const [path, v2] of [["/v1/functions/mlp", false], ["/v2/models/mlp/infer", true]] as const) {
        const before = await peakResidentMb(pid);
        const response = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "content-encoding": "gzip" },
          body,
        });
        const answer = await response.json();
        assert.equal(response.status, 413, JSON.stringify(answer));
        const message = "Decompressed request body is larger than this function's limit of 1048576 bytes";
        assert.deepEqual(answer, v2 ? { error: message } : { error: { code: "body_too_large", message } });
        const grown = (await peakResidentMb(pid)) - before;
        assert.ok(grown < 128, `${path}: the runtime's peak resident memory grew ${grown.toFixed(0)} MB`);
      }
      const ok = await server.invoke("mlp", { x: [[1, 2, 3, 4]] });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      // A body of several gzip members (RFC 1952; `cat a.gz b.gz`) inflates whole: it was refused 400 "not valid gzip
      // data". Its answer is the plain body's.
      const v2 = JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] });
      for (const [path, text] of [["/v1/functions/mlp", '{"x": [[1, 2, 3, 4]]}'], ["/v2/models/mlp/infer", v2]]) {
        const plain = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: text,
        });
        const expected = await plain.json();
        assert.equal(plain.status, 200, JSON.stringify(expected));
        const response = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "content-encoding": "gzip" },
          body: await gzipMembers(text.slice(0, 9), text.slice(9, 12), text.slice(12)),
        });
        const answer = await response.json();
        assert.equal(response.status, 200, `${path}: ${JSON.stringify(answer)}`);
        assert.deepEqual(answer, expected);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
