/**
 * The floor of a cross-thread hop on this machine: how long one Worker takes to wake another that sleeps, through
 * `Atomics.notify` → `Atomics.waitAsync` (the doorbells of `src/op_ring.ts`) and through `postMessage` (the other
 * hops), one way (from the sender's clock to the receiver's, both `performance.timeOrigin + performance.now()`) and
 * round trip. The receiver goes idle between rounds (a timer turn on the sender), as a request that comes alone finds
 * it. Medians per round, with the load average.
 *
 *   deno run -A bench/wake_floor.ts [--rounds 3] [--count 3000]
 * @module
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "3" }, count: { type: "string", default: "3000" } },
});
const count = Number(values.count);
const skip = Math.min(100, Math.floor(count / 10));

// The receiver: on "atomics" it waits on word 0 and answers on word 1, writing its wake time at byte 24; on "pm" it
// answers each message with its wake time.
const source = `
self.onmessage = (event) => {
  if (event.data.kind !== "atomics") return self.postMessage(performance.timeOrigin + performance.now());
  const words = new Int32Array(event.data.sab, 0, 2);
  const times = new Float64Array(event.data.sab, 16, 2);
  let seen = 0;
  const wait = () => {
    const w = Atomics.waitAsync(words, 0, seen);
    const woke = () => {
      seen = Atomics.load(words, 0);
      times[1] = performance.timeOrigin + performance.now();
      if (seen < 0) return;
      Atomics.store(words, 1, seen);
      Atomics.notify(words, 1);
      wait();
    };
    if (w.async) w.value.then(woke);
    else woke();
  };
  wait();
  self.postMessage("ready");
};`;
const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function idle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** One-way and round-trip µs of `count` wakes by `Atomics.notify` → `Atomics.waitAsync`. */
async function atomics(): Promise<{ oneWay: number; roundTrip: number }> {
  const worker = new Worker(url, { type: "module" });
  const sab = new SharedArrayBuffer(32);
  const words = new Int32Array(sab, 0, 2);
  const times = new Float64Array(sab, 16, 2);
  await new Promise((resolve) => {
    worker.onmessage = resolve;
    worker.postMessage({ kind: "atomics", sab });
  });
  const oneWay: number[] = [];
  const roundTrip: number[] = [];
  try {
    for (let i = 1; i <= count; i++) {
      const t0 = now();
      Atomics.store(words, 0, i);
      Atomics.notify(words, 0);
      const answer = Atomics.waitAsync(words, 1, i - 1);
      if (answer.async) await answer.value;
      const t1 = now();
      if (i > skip) {
        oneWay.push((times[1] - t0) * 1000);
        roundTrip.push((t1 - t0) * 1000);
      }
      await idle();
    }
  } finally {
    Atomics.store(words, 0, -1);
    Atomics.notify(words, 0);
    worker.terminate();
  }
  return { oneWay: median(oneWay), roundTrip: median(roundTrip) };
}

/** One-way and round-trip µs of `count` wakes by `postMessage`. */
async function messages(): Promise<{ oneWay: number; roundTrip: number }> {
  const worker = new Worker(url, { type: "module" });
  const oneWay: number[] = [];
  const roundTrip: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = now();
      const woke = await new Promise<number>((resolve) => {
        worker.onmessage = (event) => resolve(event.data);
        worker.postMessage({ kind: "pm" });
      });
      const t1 = now();
      if (i >= skip) {
        oneWay.push((woke - t0) * 1000);
        roundTrip.push((t1 - t0) * 1000);
      }
      await idle();
    }
  } finally {
    worker.terminate();
  }
  return { oneWay: median(oneWay), roundTrip: median(roundTrip) };
}

for (let round = 1; round <= Number(values.rounds); round++) {
  const a = await atomics();
  const m = await messages();
  console.log(
    `round ${round}: Atomics.waitAsync one way ${a.oneWay.toFixed(1)} µs, round trip ${a.roundTrip.toFixed(1)} µs; ` +
      `postMessage one way ${m.oneWay.toFixed(1)} µs, round trip ${m.roundTrip.toFixed(1)} µs ` +
      `(load average ${Deno.loadavg()[0].toFixed(2)})`,
  );
}
