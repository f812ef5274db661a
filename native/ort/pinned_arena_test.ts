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

Deno.test("PinnedArena: regions are aligned, first fit, merged when freed, and views write the memory itself", () => {
  const pinned = hostPinned();
  const arena = PinnedArena.map(pinned, 4 * arenaAlignment - 10);
  try {
    assert.equal(arena.byteLength, 4 * arenaAlignment);
    const a = arena.alloc(1)!;
    const b = arena.alloc(arenaAlignment + 1)!;
    const c = arena.alloc(arenaAlignment)!;
    assert.deepEqual([a, b, c], [0, arenaAlignment, 3 * arenaAlignment]);
    assert.equal(arena.alloc(1), null, "full");
    arena.free(b);
    assert.equal(arena.alloc(3 * arenaAlignment), null, "two free spans do not make three");
    arena.free(a);
    assert.equal(arena.freeBytes, 3 * arenaAlignment);
    assert.equal(arena.alloc(3 * arenaAlignment), 0, "freed neighbours merge");
    arena.free(0);
    arena.free(12345);
    const view = arena.bytes(c, 4);
    view.set([1, 2, 3, 4]);
    const read = new Uint8Array(4);
    libc.symbols.copyOut(read, arena.address + BigInt(c), 4n);
    assert.deepEqual(Array.from(read), [1, 2, 3, 4]);
    assert.throws(() => arena.bytes(4 * arenaAlignment - 2, 4), OrtError);
    arena.close();
    assert.equal(view.length, 0, "a view kept past close reads as empty: its buffer is detached");
    assert.equal(arena.alloc(1), null);
    assert.throws(() => arena.bytes(0, 1), OrtError);
  } finally {
    arena.close();
  }
  assert.equal(pinned.live.size, 0, "close frees the pinned block");
});

Deno.test("PinnedArena.map refuses a size that is not positive and frees the block when mapping fails", () => {
  const pinned = hostPinned();
  assert.throws(() => PinnedArena.map(pinned, 0), OrtError);
  assert.throws(
    () =>
      PinnedArena.map(pinned, 64, () => {
        throw new Error("no mapping");
      }),
    /no mapping/,
  );
  assert.equal(pinned.live.size, 0);
});

Deno.test("pinned_arena_test: libc is closed", () => {
  libc.close();
});
