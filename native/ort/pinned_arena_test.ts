import assert from "node:assert/strict";
import { arenaAlignment, PinnedArena } from "./pinned_arena.ts";
import { OrtError } from "./error.ts";

const libc = Deno.dlopen("libc.so.6", {
  malloc: { parameters: ["usize"], result: "u64" },
  free: { parameters: ["u64"], result: "void" },
  copyOut: { name: "memcpy", parameters: ["buffer", "u64", "usize"], result: "u64" },
});

function hostPinned() {
  const live = new Set<bigint>();
  return {
    live,
    alloc: (bytes: number) => {
      const address = BigInt(libc.symbols.malloc(BigInt(bytes)));
      live.add(address);
      return address;
    },
    free: (address: bigint) => {
      assert.ok(live.delete(address));
      libc.symbols.free(address);
    },
  };
}

Deno.test("PinnedArena: one aligned slot per input and output, and views that write the pinned memory itself", () => {
  const pinned = hostPinned();
  const arena = PinnedArena.map(pinned, { inputs: { x: 10, mask: 0 }, outputs: { y: arenaAlignment + 1 } });
  try {
    assert.equal(arena.byteLength, 3 * arenaAlignment);
    assert.deepEqual(arena.slot("input", "x"), { offset: 0, bytes: arenaAlignment });
    assert.deepEqual(arena.slot("input", "mask"), { offset: arenaAlignment, bytes: 0 });
    assert.deepEqual(arena.slot("output", "y"), { offset: arenaAlignment, bytes: 2 * arenaAlignment });
    assert.equal(arena.slot("output", "x"), undefined, "inputs and outputs have slots of their own");
    const { offset } = arena.slot("output", "y")!;
    const view = arena.bytes(offset, 4);
    view.set([1, 2, 3, 4]);
    const read = new Uint8Array(4);
    libc.symbols.copyOut(read, arena.address + BigInt(offset), 4n);
    assert.deepEqual(Array.from(read), [1, 2, 3, 4]);
    assert.throws(() => arena.bytes(3 * arenaAlignment - 2, 4), OrtError);
    arena.close();
    assert.equal(view.length, 0, "a view kept past close reads as empty: its buffer is detached");
    assert.equal(arena.slot("input", "x"), undefined);
    assert.throws(() => arena.bytes(0, 1), OrtError);
  } finally {
    arena.close();
  }
  assert.equal(pinned.live.size, 0, "close frees the pinned block");
});

Deno.test("PinnedArena.map refuses an empty layout or a bad size, and frees the block when mapping fails", () => {
  const pinned = hostPinned();
  assert.throws(() => PinnedArena.map(pinned, { inputs: {}, outputs: { y: 0 } }), OrtError);
  assert.throws(() => PinnedArena.map(pinned, { inputs: { x: -1 }, outputs: {} }), OrtError);
  assert.throws(
    () =>
      PinnedArena.map(pinned, { inputs: { x: 64 }, outputs: {} }, () => {
        throw new Error("no mapping");
      }),
    /no mapping/,
  );
  assert.equal(pinned.live.size, 0);
});

Deno.test("pinned_arena_test: libc is closed", () => {
  libc.close();
});
