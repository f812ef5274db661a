import assert from "node:assert/strict";
import { TensorArena } from "./tensor_arena.ts";

Deno.test("TensorArena: power-of-two blocks, reused once freed, none past the arena or the largest block", () => {
  const arena = new TensorArena(new SharedArrayBuffer(4096), 2048);
  const a = arena.place(new Float32Array([1, 2, 3]).buffer)!;
  assert.deepEqual(a, { offset: 0, size: 256 });
  assert.deepEqual([...new Float32Array(arena.buffer, a.offset, 3)], [1, 2, 3]);
  const b = arena.alloc(1000)!;
  assert.deepEqual(b, { offset: 256, size: 1024 });
  assert.equal(arena.alloc(4096), undefined, "larger than the largest block");
  const c = arena.alloc(2048)!;
  assert.deepEqual(c, { offset: 1280, size: 2048 });
  assert.equal(arena.alloc(1024), undefined, "the arena is full");
  assert.equal(arena.used, 256 + 1024 + 2048);
  arena.free(b);
  assert.deepEqual(arena.alloc(600), { offset: 256, size: 1024 }, "a freed block of its size is taken again");
  arena.free(a);
  assert.deepEqual(arena.alloc(0), { offset: 0, size: 256 });
});
