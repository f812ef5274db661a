import assert from "node:assert/strict";
import { guardBodyRead } from "./body_guard.ts";
import { IsolaneError } from "../errors.ts";

Deno.test("guardBodyRead: one shared timer answers each stalled read at its own deadline, in deadline order", async () => {
  const never = () => new Promise<never>(() => {});
  const settled: string[] = [];
  const watch = (name: string, read: Promise<unknown>) =>
    read.then(
      (value) => settled.push(`${name} ${value}`),
      (error: IsolaneError) => settled.push(`${name} ${error.code}: ${error.message}`),
    );
  // The later deadline is armed first; the earlier one must re-arm the timer, not wait for it.
  // The deadline timer is unref'd (a server's listener keeps its process alive); here this interval does.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    const late = watch("late", guardBodyRead(never, 150));
    const early = watch("early", guardBodyRead(never, 30));
    const quick = watch("quick", guardBodyRead(() => Promise.resolve("body"), 60));
    await Promise.all([late, early, quick]);
  } finally {
    clearInterval(keepAlive);
  }
  assert.deepEqual(settled, [
    "quick body",
    "early request_timeout: The request body did not arrive within 30 ms (the function's timeoutMs); send it whole",
    "late request_timeout: The request body did not arrive within 150 ms (the function's timeoutMs); send it whole",
  ]);
});

Deno.test("guardBodyRead: a connection cut while reading is the client's fault (400), other errors pass", async () => {
  const cut = guardBodyRead(() => Promise.reject(new Deno.errors.ConnectionReset("reset")), 1000);
  await assert.rejects(
    cut,
    (e: IsolaneError) => e.code === "invalid_input" && /ended before it was complete/.test(e.message),
  );
  const other = guardBodyRead(() => Promise.reject(new TypeError("not a body")), 1000);
  await assert.rejects(other, TypeError);
  assert.equal(await guardBodyRead(() => Promise.resolve(7)), 7);
});
