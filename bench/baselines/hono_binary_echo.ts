/**
 * The HTTP baseline for binary bodies: a plain Hono server that echoes a raw `application/octet-stream` body, on
 * `BENCH_THREADS` threads (default 1) that share one port through `reusePort` (the main thread and `BENCH_THREADS - 1`
 * Workers, each with its own `Deno.serve`), run as its own process like the runtime and announcing its address the same
 * way. Scenario E runs it beside the v2 binary path with as many threads as the runtime has HTTP threads, so the
 * report shows what Deno's HTTP stack alone does with a body of that size. Needs `--unstable-net` for `reusePort`.
 */
import { Hono } from "hono";

const app = new Hono().post(
  "/echo",
  async (c) => c.body(await c.req.arrayBuffer(), 200, { "content-type": "application/octet-stream" }),
);
const serve = (port: number) =>
  Deno.serve({ hostname: "127.0.0.1", port, reusePort: true, onListen: () => {} }, app.fetch);

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  const scope = self as unknown as {
    onmessage: (e: MessageEvent<number>) => void;
    postMessage: (message: string) => void;
  };
  scope.onmessage = (e) => {
    serve(e.data);
    scope.postMessage("listening");
  };
} else {
  const threads = Math.max(1, Number(Deno.env.get("BENCH_THREADS") ?? 1) || 1);
  const server = serve(Number(Deno.env.get("PORT") ?? 0));
  const port = server.addr.port;
  await Promise.all(
    Array.from({ length: threads - 1 }, () =>
      new Promise((resolve) => {
        const worker = new Worker(import.meta.url, { type: "module" });
        worker.onmessage = resolve;
        worker.postMessage(port);
      })),
  );
  console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}`, threads }));
}
