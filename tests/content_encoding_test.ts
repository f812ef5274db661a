/**
 * Compressed request bodies (`Content-Encoding`) on both invocation routes, `/v1/functions/:name` and
 * `/v2/models/:name/infer`: what inflates whole is served as the plain body; what does not is refused with a 4xx.
 */
import assert from "node:assert/strict";
import { startServer } from "./support/server.ts";

async function compress(text: string, format: CompressionFormat): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer(),
  );
}

const v1 = '{"x": [[1, 2, 3, 4]]}';
const v2 = JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] });
const routes = [["/v1/functions/mlp", v1], ["/v2/models/mlp/infer", v2]] as const;

/** The error's code and message, from a `/v1` body (`{error: {code, message}}`) or a `/v2` one (`{error}`). */
async function refusal(response: Response): Promise<{ status: number; error: unknown }> {
  const body = await response.json();
  return { status: response.status, error: body.error };
}

async function withMlp(run: (url: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "isolane-encoding-" });
  try {
    await Deno.mkdir(`${dir}/mlp`);
    for (const file of ["mod.ts", "mlp.onnx"]) {
      await Deno.copyFile(new URL(`../functions/mlp/${file}`, import.meta.url), `${dir}/mlp/${file}`);
    }
    await using server = await startServer({ functionsDir: dir });
    await run(server.url);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a deflate body with bytes after its zlib stream is refused 400, as a gzip body with trailing bytes is", async () => {
  await withMlp(async (url) => {
    for (const [path, text] of routes) {
      const post = (body: Uint8Array<ArrayBuffer>, encoding: string) =>
        fetch(`${url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "content-encoding": encoding },
          body,
        });
      const plain = await fetch(`${url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: text,
      });
      const expected = await plain.json();
      assert.equal(plain.status, 200, JSON.stringify(expected));
      for (const format of ["gzip", "deflate"] as const) {
        const packed = await compress(text, format);
        const whole = await post(packed, format);
        assert.deepEqual({ status: whole.status, body: await whole.json() }, { status: 200, body: expected });
        const message = `Request body is not valid ${format} data`;
        for (const tail of [[1, 2, 3], [...await compress("{}", "deflate")]]) {
          const trailing = await post(new Uint8Array([...packed, ...tail]), format);
          assert.deepEqual(
            await refusal(trailing),
            { status: 400, error: path.startsWith("/v2") ? message : { code: "invalid_input", message } },
            `${path} ${format} with ${tail.length} bytes after it`,
          );
        }
      }
    }
  });
});
