/**
 * The HTTP baseline: a plain Hono server that echoes JSON, run as its own
 * process like the runtime, and announcing its address the same way.
 */
import { Hono } from "hono";

const app = new Hono().post("/v1/functions/echo", async (c) => c.json(await c.req.json()));
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${server.addr.port}` }));
