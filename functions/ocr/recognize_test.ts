import assert from "node:assert/strict";
import { ctcDecode, parseDictionary } from "./recognize.ts";

Deno.test("parseDictionary puts the CTC blank first and a space last", () => {
  assert.deepEqual(parseDictionary("a\nb\n"), ["", "a", "b", " "]);
});

Deno.test("ctcDecode collapses repeats and drops blanks", () => {
  const dictionary = ["", "a", "b", " "];
  // steps: a a blank a b b  -> "aab"
  const best = [1, 1, 0, 1, 2, 2];
  const probs = new Float32Array(best.length * 4);
  best.forEach((k, t) => (probs[t * 4 + k] = 0.9));
  const { text, score } = ctcDecode(probs, best.length, 4, dictionary);
  assert.equal(text, "aab");
  assert.ok(Math.abs(score - 0.9) < 1e-6);
});
