/**
 * What a link's answers cost the two threads, by the way they cross: a Worker (the isolate's stand-in) answers batches
 * of `--batch` requests, each a 1×1024 FP32 tensor (the 8×1024 MLP's answer), to this thread (the HTTP thread's
 * stand-in), either as one `postMessage` per batch with the tensors' buffers transferred (as `replyByLink` did) or
 * through an answer ring and a doorbell (`src/answer_ring.ts`). The writer waits for the reader's acknowledgement of
 * each batch before the next (as a batch waits for its run), so each batch costs a wake either way. Prints the
 * process's CPU time (user + system, both threads) per answer, for alternating rounds, and the medians.
 *
 *   deno run -A bench/answer_ring.ts [--batch 32] [--batches 3000] [--rounds 6]
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { AnswerRingReader } from "../src/answer_ring.ts";
import { Doorbell } from "../src/op_ring.ts";
import type { LinkReply, WireTensor } from "../src/protocol.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    batch: { type: "string", default: "32" },
    batches: { type: "string", default: "3000" },
    rounds: { type: "string", default: "6" },
  },
});
const batch = Number(values.batch);
const batches = Number(values.batches);

const writerSource = `
import { AnswerRingWriter } from ${JSON.stringify(new URL("../src/answer_ring.ts", import.meta.url).href)};
self.onmessage = ({ data }) => {
  const { mode, batch, batches, ring, bell, port, ack } = data;
  const acks = new Int32Array(ack);
  const writer = mode === "ring" ? new AnswerRingWriter(ring, bell) : undefined;
  let id = 0;
  const one = (b) => {
    const replies = [];
    const transfer = [];
    for (let i = 0; i < batch; i++) {
      // A job's answer in a buffer of its own (a wire tensor).
      const data = new Float32Array(1024).fill(id).buffer;
      const tensors = [{ name: "y", datatype: "FP32", shape: [1, 1024], data }];
      if (writer) {
        if (!writer.answer(id, tensors)) throw new Error("ring full");
      } else {
        replies.push({ id, tensors });
        transfer.push(data);
      }
      id++;
    }
    if (writer) writer.publish();
    else port.postMessage(replies, transfer);
  };
  const next = (b) => {
    if (b === batches) return;
    one(b);
    // The next batch once this one is read (a run waits for its inputs).
    const wait = Atomics.waitAsync(acks, 0, b);
    if (wait.async) wait.value.then(() => next(b + 1));
    else queueMicrotask(() => next(b + 1));
  };
  next(0);
};`;
const url = URL.createObjectURL(new Blob([writerSource], { type: "application/javascript" }));

async function round(mode: "port" | "ring"): Promise<number> {
  const worker = new Worker(url, { type: "module" });
  const channel = new MessageChannel();
  const ack = new SharedArrayBuffer(4);
  const acks = new Int32Array(ack);
  const reader = new AnswerRingReader(new SharedArrayBuffer(8 + 4 * 2 ** 20));
  const bell = new Doorbell();
  let answers = 0;
  let sum = 0;
  const done = Promise.withResolvers<void>();
  const take = (id: number, tensors: WireTensor[]) => {
    answers++;
    sum += new Float32Array(tensors[0].data)[0] === id ? 1 : 0;
  };
  const afterBatch = () => {
    if (answers % batch !== 0) return;
    Atomics.store(acks, 0, answers / batch);
    Atomics.notify(acks, 0);
    if (answers === batch * batches) done.resolve();
  };
  if (mode === "ring") {
    bell.add(() => {
      if (reader.drain(take) > 0) afterBatch();
    });
  } else {
    channel.port2.onmessage = (event: MessageEvent<LinkReply>) => {
      for (const reply of event.data) take(reply.id, reply.tensors);
      afterBatch();
    };
  }
  const before = process.cpuUsage();
  worker.postMessage(
    { mode, batch, batches, ring: reader.ring, bell: bell.buffer, port: channel.port1, ack },
    [channel.port1],
  );
  await done.promise;
  const used = process.cpuUsage(before);
  worker.terminate();
  bell.close();
  channel.port2.close();
  if (sum !== answers) throw new Error(`${mode}: ${answers - sum} answers wrong`);
  return (used.user + used.system) / answers;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const by: Record<string, number[]> = { port: [], ring: [] };
for (let r = 0; r < Number(values.rounds); r++) {
  for (const mode of (r % 2 ? ["ring", "port"] : ["port", "ring"]) as ("port" | "ring")[]) {
    const us = await round(mode);
    by[mode].push(us);
    console.log(`round ${r} ${mode}: ${us.toFixed(2)} µs of CPU per answer (both threads)`);
  }
}
console.log(
  `medians, batch ${batch}: port ${median(by.port).toFixed(2)} µs, ring ${median(by.ring).toFixed(2)} µs per answer` +
    ` (load average ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")})`,
);
URL.revokeObjectURL(url);
