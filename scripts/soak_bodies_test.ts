import assert from "node:assert/strict";
import {
  fuzzedBody,
  Gen,
  malformedBody,
  mlpBody,
  oversizedBody,
  seededRandom,
  truncatedBody,
  wrongSchemaBody,
} from "./soak_bodies.ts";
import { percentile } from "./soak.ts";

const parses = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

Deno.test("soak bodies: one seed gives one sequence", () => {
  const a = new Gen(seededRandom(7));
  const b = new Gen(seededRandom(7));
  const c = new Gen(seededRandom(8));
  const first = Array.from({ length: 20 }, () => fuzzedBody(a));
  assert.deepEqual(Array.from({ length: 20 }, () => fuzzedBody(b)), first);
  assert.notDeepEqual(Array.from({ length: 20 }, () => fuzzedBody(c)), first);
});

Deno.test("soak bodies: valid ones parse; malformed and truncated ones never do; wrong shapes parse", () => {
  const gen = new Gen(seededRandom(1));
  for (let i = 0; i < 500; i++) {
    const valid = JSON.parse(mlpBody(gen));
    assert.ok(valid.x.length >= 1 && valid.x.every((row: number[]) => row.length === 4));
    assert.equal(parses(malformedBody(gen)), false);
    assert.equal(parses(truncatedBody(gen)), false);
    assert.equal(parses(wrongSchemaBody(gen)), true);
  }
});

Deno.test("soak bodies: oversized ones pass the limit by 1 byte to 64 KiB", () => {
  const gen = new Gen(seededRandom(2));
  for (let i = 0; i < 50; i++) {
    const size = oversizedBody(gen, 1024).length;
    assert.ok(size > 1024 && size <= 1024 + 64 * 1024, String(size));
  }
});

Deno.test("soak: nearest-rank percentiles", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile([], 99), null);
});
