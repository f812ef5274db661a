import assert from "node:assert/strict";
import client from "prom-client";
import { createMetrics } from "./metrics.ts";

/** The lines of one metric family (its HELP, TYPE and samples) in a text exposition. */
function family(text: string, name: string): string {
  const blocks = text.split("\n\n").map((b) => b.trim());
  return blocks.find((b) => b.startsWith(`# HELP ${name} `)) ?? `(no ${name})`;
}

Deno.test("request and batch metrics expose exactly what prom-client's own Counter and Histograms would", async () => {
  const metrics = createMetrics({
    devices: { devices: [], driverVersion: null, memory: () => null },
    functionOf: () => null,
  });
  const reference = new client.Registry();
  const requests = new client.Counter({
    name: "isolane_requests_total",
    help: "Function invocations by function and HTTP status",
    labelNames: ["function", "status"] as const,
    registers: [reference],
  });
  const duration = new client.Histogram({
    name: "isolane_request_duration_seconds",
    help: "Invocation latency from request to response, by function",
    labelNames: ["function"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [reference],
  });
  const batch = new client.Histogram({
    name: "isolane_batch_size",
    help: "Rows per dispatch to an isolate (one request is one row unless its route knows more)",
    labelNames: ["function"] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [reference],
  });
  // Latencies on bucket bounds, between them, past the last one; statuses in an order that is not sorted.
  const answers: [string, number, number][] = [];
  for (let i = 0; i < 300; i++) {
    const fn = i % 3 === 0 ? "mlp" : i % 3 === 1 ? 'o"cr' : "echo";
    const status = [200, 429, 200, 504, 200, 400][i % 6];
    const ms = [1, 2.5, 0.2, 7, 50, 999, 1000, 31_000, 12.34][i % 9] * (1 + (i % 5) / 10);
    answers.push([fn, status, ms]);
  }
  for (const [fn, status, ms] of answers) {
    metrics.record(fn, status, ms);
    requests.inc({ function: fn, status: String(status) });
    duration.observe({ function: fn }, ms / 1000);
  }
  for (const [fn, size] of [["mlp", 1], ["mlp", 64], ["echo", 3], ["mlp", 600], ["echo", 512], ["mlp", 0]] as const) {
    metrics.observer.dispatched(fn, size);
    batch.observe({ function: fn }, size);
  }
  const ours = (await metrics.render()).body;
  const theirs = await reference.metrics();
  for (const name of ["isolane_requests_total", "isolane_request_duration_seconds", "isolane_batch_size"]) {
    assert.equal(family(ours, name), family(theirs, name), name);
  }
  // And the values are the answers recorded, by status.
  const count = (fn: string, status: number) => answers.filter(([f, s]) => f === fn && s === status).length;
  assert.match(ours, new RegExp(`isolane_requests_total\\{function="mlp",status="504"\\} ${count("mlp", 504)}\\n`));
  assert.ok(count("mlp", 504) > 0);
  assert.match(ours, /isolane_request_duration_seconds_count\{function="echo"\} 100\n/);
  assert.match(ours, /isolane_batch_size_bucket\{le="\+Inf",function="mlp"\} 4\n/);
});
