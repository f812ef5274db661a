import assert from "node:assert/strict";
import { giveScratch, takeScratch } from "./scratch.ts";

Deno.test("scratch: a view of the size asked; a buffer given back is handed out again, never to two takers", () => {
  const a = takeScratch(5000);
  assert.equal(a.byteLength, 5000);
  assert.ok(a.buffer.byteLength >= 5000);
  const b = takeScratch(5000);
  assert.notEqual(a.buffer, b.buffer, "two views held at once share no buffer");
  giveScratch(a);
  giveScratch(a);
  const c = takeScratch(4000);
  assert.equal(c.buffer, a.buffer, "the buffer given back is reused for a take that fits");
  assert.equal(c.byteLength, 4000);
  const d = takeScratch(4000);
  assert.notEqual(d.buffer, a.buffer, "a buffer given back twice is handed out once");
  const e = takeScratch(a.buffer.byteLength + 1);
  assert.ok(e.byteLength === a.buffer.byteLength + 1 && e.buffer !== b.buffer);
  for (const view of [b, c, d, e]) giveScratch(view);
});
