import assert from "node:assert/strict";
import { speechSegments } from "./segments.ts";

const options = { threshold: 0.5, minSpeechMs: 250, minSilenceMs: 100, padMs: 0 };
const frame = 0.032;

function probs(pattern: [number, number][]): number[] {
  return pattern.flatMap(([p, n]) => Array(n).fill(p));
}

Deno.test("speechSegments finds a run of speech between silences", () => {
  const p = probs([[0.01, 20], [0.9, 30], [0.01, 20]]);
  const [s, ...rest] = speechSegments(p, frame, p.length * frame, options);
  assert.equal(rest.length, 0);
  assert.ok(Math.abs(s.start - 20 * frame) < 1e-9);
  assert.ok(Math.abs(s.end - 50 * frame) < 1e-9);
});

Deno.test("speechSegments drops short bursts and bridges short pauses", () => {
  const burst = probs([[0.01, 10], [0.9, 3], [0.01, 20]]);
  assert.deepEqual(speechSegments(burst, frame, burst.length * frame, options), []);
  const pause = probs([[0.9, 20], [0.01, 2], [0.9, 20], [0.01, 10]]);
  assert.equal(speechSegments(pause, frame, pause.length * frame, options).length, 1);
});

Deno.test("speechSegments pads and merges segments that then overlap", () => {
  const p = probs([[0.01, 10], [0.9, 10], [0.01, 5], [0.9, 10], [0.01, 10]]);
  const unpadded = speechSegments(p, frame, p.length * frame, options);
  assert.equal(unpadded.length, 2);
  const padded = speechSegments(p, frame, p.length * frame, { ...options, padMs: 100 });
  assert.equal(padded.length, 1);
  assert.ok(padded[0].start < unpadded[0].start);
});
