import assert from "node:assert/strict";
import { IdTable } from "./id_table.ts";

Deno.test("IdTable: get, has, set, delete and size, as a Map of the same entries", () => {
  const table = new IdTable<string>(4);
  const map = new Map<number, string>();
  // Sequential ids, some held far longer than the 4 slots (they collide and go to the overflow), as in flight.
  for (let id = 1; id <= 40; id++) {
    table.set(id, `v${id}`);
    map.set(id, `v${id}`);
    if (id % 3 !== 0 && id > 2) {
      assert.deepEqual(table.delete(id - 2), map.delete(id - 2));
    }
    assert.deepEqual(table.size, map.size);
  }
  for (let id = 0; id <= 45; id++) {
    assert.deepEqual(table.get(id), map.get(id), `get(${id})`);
    assert.deepEqual(table.has(id), map.has(id), `has(${id})`);
  }
  assert.deepEqual(table.values().sort(), [...map.values()].sort());
  assert.deepEqual(table.delete(1000), false);
  table.set(39, "again");
  assert.deepEqual(table.get(39), "again");
  for (const id of [...map.keys()]) assert.deepEqual(table.delete(id), true);
  assert.deepEqual(table.size, 0);
  assert.deepEqual(table.values(), []);
});

Deno.test("IdTable: an id whose slot an older entry holds still finds its own entry, and frees it", () => {
  const table = new IdTable<number>(2);
  table.set(2, 20); // slot 0
  table.set(4, 40); // slot 0 taken: overflow
  assert.deepEqual([table.get(2), table.get(4)], [20, 40]);
  assert.deepEqual(table.delete(2), true);
  table.set(6, 60); // slot 0 free again
  assert.deepEqual([table.get(2), table.get(4), table.get(6)], [undefined, 40, 60]);
  assert.deepEqual(table.delete(4), true);
  assert.deepEqual(table.has(4), false);
  assert.deepEqual(table.size, 1);
});
