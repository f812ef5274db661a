/**
 * A function that writes one huge line with `console`: the runtime logs its first {@link maxLogText} characters and
 * says how many it left out. Logged whole, a 50 MB line held the runtime's main thread for over a second (every other
 * function's requests with it), and much longer behind a slow reader of the runtime's stdout.
 */
import assert from "node:assert/strict";
import { startServer } from "./support/server.ts";
import { maxLogText } from "../src/protocol.ts";
import { adminToken, deployOk } from "./support/bundles.ts";

const shouter = (isolation: string) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Logs a line of n characters",
  isolation: "${isolation}",
  input: z.object({ n: z.number().int() }),
  output: z.object({ logged: z.number() }),
  handler: ({ n }) => {
    console.log("a" + "b".repeat(n - 1));
    return { logged: n };
  },
});
`;

/** Logs `a` repeated up to one short of the cut, then emoji (two UTF-16 units each): the cut falls inside the first. */
const smiler = (isolation: string) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Logs a line whose cut falls between the two halves of an emoji",
  isolation: "${isolation}",
  input: z.object({ a: z.number().int(), emoji: z.number().int() }),
  output: z.object({ logged: z.number() }),
  handler: ({ a, emoji }) => {
    const line = "a".repeat(a) + "\u{1F600}".repeat(emoji);
    console.log(line);
    return { logged: line.length };
  },
});
`;

for (const isolation of ["worker", "process"]) {
  Deno.test(`a function's huge console line is logged cut to ${maxLogText} characters (${isolation} host)`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-logs-" });
    try {
      await Deno.mkdir(`${dir}/shout`);
      await Deno.writeTextFile(`${dir}/shout/mod.ts`, shouter(isolation));
      await Deno.mkdir(`${dir}/smile`);
      await Deno.writeTextFile(`${dir}/smile/mod.ts`, smiler(isolation));
      await using server = await startServer({ functionsDir: dir });
      const n = 4 * 1024 * 1024;
      const response = await server.invoke("shout", { n }, {
        headers: { "content-type": "application/json", "x-request-id": "huge-line" },
      });
      assert.deepEqual(await response.json(), { logged: n });
      const line = await server.waitForLog((l) => l.msg === "function log" && l.request === "huge-line");
      const text = line.text as string;
      assert.equal(text.slice(0, maxLogText), "a" + "b".repeat(maxLogText - 1));
      assert.equal(text.slice(maxLogText), `… (${n - maxLogText} more characters left out)`);
      // A short line is logged as it is.
      await (await server.invoke("shout", { n: 10 }, {
        headers: { "content-type": "application/json", "x-request-id": "short-line" },
      })).body?.cancel();
      const short = await server.waitForLog((l) => l.msg === "function log" && l.request === "short-line");
      assert.equal(short.text, "abbbbbbbbb");
      // A cut between the two UTF-16 units of a character keeps neither: no lone surrogate (or U+FFFD) is logged.
      const smile = await server.invoke("smile", { a: maxLogText - 1, emoji: 10_000 }, {
        headers: { "content-type": "application/json", "x-request-id": "emoji-line" },
      });
      const { logged } = await smile.json();
      const cut = await server.waitForLog((l) => l.msg === "function log" && l.request === "emoji-line");
      const kept = "a".repeat(maxLogText - 1);
      assert.equal(cut.text, `${kept}… (${logged - kept.length} more characters left out)`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Logs `n` short lines in a tight loop. */
const chatter = (isolation: string) =>
  `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Logs n lines in a loop",
  isolation: "${isolation}",
  input: z.object({ n: z.number().int() }),
  output: z.object({ logged: z.number() }),
  handler: ({ n }) => {
    for (let i = 0; i < n; i++) console.log("line", i);
    return { logged: n };
  },
});
`;

for (const isolation of ["worker", "process"]) {
  Deno.test(`a function that logs in a tight loop is cut to its log rate, and the drops counted (${isolation} host)`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "isolane-logs-" });
    try {
      for (const name of ["chatty", "quiet"]) {
        await Deno.mkdir(`${dir}/${name}`);
        await Deno.writeTextFile(`${dir}/${name}/mod.ts`, chatter(isolation));
      }
      const [rate, burst] = [20, 100];
      await using server = await startServer({
        functionsDir: dir,
        env: { ISOLANE_LOG_RATE: String(rate), ISOLANE_LOG_BURST: String(burst) },
      });
      const n = 100_000;
      const started = performance.now();
      const response = await server.invoke("chatty", { n });
      assert.deepEqual(await response.json(), { logged: n });
      // Another function logs as usual meanwhile: the limit is each function's own.
      const quiet = await server.invoke("quiet", { n: 3 }, {
        headers: { "content-type": "application/json", "x-request-id": "quiet-lines" },
      });
      assert.deepEqual(await quiet.json(), { logged: 3 });
      const linesOf = (name: string) => server.logs.filter((l) => l.msg === "function log" && l.function === name);
      const droppedOf = (name: string) =>
        server.logs.filter((l) => l.msg === "function log lines dropped" && l.function === name)
          .reduce((sum, l) => sum + (l.dropped as number), 0);
      // Every line is either logged or counted in a notice.
      const notice = await server.waitForLog(
        (l) => l.msg === "function log lines dropped" && linesOf("chatty").length + droppedOf("chatty") === n,
        30_000,
      );
      const seconds = (performance.now() - started) / 1000;
      const logged = linesOf("chatty");
      assert.ok(logged.length >= burst, `${logged.length} lines logged`);
      assert.ok(logged.length <= burst + rate * seconds + 1, `${logged.length} lines logged in ${seconds} s`);
      assert.deepEqual(logged.slice(0, 3).map((l) => l.text), ["line 0", "line 1", "line 2"]);
      assert.equal(notice.level, "warn");
      assert.match(String(notice.reason), /More than 20 lines a second \(bursts of 100\); set ISOLANE_LOG_RATE/);
      await server.waitForLog((l) => l.msg === "function log" && l.function === "quiet" && l.text === "line 2");
      assert.equal(linesOf("quiet").length, 3);
      assert.equal(droppedOf("quiet"), 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Logs `debug` lines with `console.debug`, then `errors` lines with `console.error`. */
const mixed = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Logs debug lines, then error lines",
  input: z.object({ debug: z.number().int(), errors: z.number().int() }),
  output: z.object({ logged: z.number() }),
  handler: ({ debug, errors }) => {
    for (let i = 0; i < debug; i++) console.debug("chatter", i);
    for (let i = 0; i < errors; i++) console.error("important", i);
    return { logged: debug + errors };
  },
});
`;

Deno.test("lines below the log level take nothing from a function's log limit, and a drop is always said", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-logs-" });
  try {
    for (const name of ["mixed", "alarm"]) {
      await Deno.mkdir(`${dir}/${name}`);
      await Deno.writeTextFile(`${dir}/${name}/mod.ts`, mixed);
    }
    await using server = await startServer({
      functionsDir: dir,
      env: { ISOLANE_LOG_LEVEL: "info", ISOLANE_LOG_RATE: "20", ISOLANE_LOG_BURST: "100" },
    });
    // 1,000 debug lines are not written at level info: the 3 error lines after them are (they were dropped unsaid).
    const response = await server.invoke("mixed", { debug: 1000, errors: 3 });
    assert.deepEqual(await response.json(), { logged: 1003 });
    const last = await server.waitForLog((l) =>
      l.msg === "function log" && l.function === "mixed" && l.text === "important 2"
    );
    assert.equal(last.level, "error");
    const errorsOf = (name: string) => server.logs.filter((l) => l.msg === "function log" && l.function === name);
    assert.deepEqual(errorsOf("mixed").map((l) => l.text), ["important 0", "important 1", "important 2"]);
    // Error lines past the limit are counted in a notice at level error (at ISOLANE_LOG_LEVEL=error a warn is not written).
    const flood = await server.invoke("alarm", { debug: 0, errors: 1000 });
    assert.deepEqual(await flood.json(), { logged: 1000 });
    const dropped = () =>
      server.logs.filter((l) => l.msg === "function log lines dropped" && l.function === "alarm")
        .reduce((sum, l) => sum + (l.dropped as number), 0);
    const notice = await server.waitForLog(
      (l) => l.msg === "function log lines dropped" && errorsOf("alarm").length + dropped() === 1000,
      30_000,
    );
    assert.equal(notice.level, "error");
    assert.ok(dropped() > 0);
    assert.equal(server.logs.filter((l) => l.msg === "function log lines dropped" && l.function === "mixed").length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines dropped just before a function is removed, or the runtime stops, are said before it ends", async () => {
  const dir = await Deno.makeTempDir({ prefix: "isolane-logs-" });
  try {
    await using server = await startServer({
      functionsDir: dir,
      // One line a second: a notice is due a second after the first drop, later than the removal and the stop below.
      env: { ISOLANE_ADMIN_TOKEN: adminToken, ISOLANE_LOG_RATE: "1", ISOLANE_LOG_BURST: "10" },
    });
    const n = 200;
    const said = (name: string, upTo: number) => {
      const lines = server.logs.slice(0, upTo);
      const logged = lines.filter((l) => l.msg === "function log" && l.function === name).length;
      const dropped = lines.filter((l) => l.msg === "function log lines dropped" && l.function === name)
        .reduce((sum, l) => sum + (l.dropped as number), 0);
      return { logged, dropped };
    };
    for (const name of ["removed", "stopped"]) {
      await deployOk(server, name, { "mod.ts": chatter("worker") });
      assert.deepEqual(await (await server.invoke(name, { n })).json(), { logged: n });
    }
    const deleted = await fetch(`${server.url}/v1/functions/removed`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.deepEqual(await deleted.json(), { name: "removed", deleted: true });
    const removedAt = server.logs.indexOf(
      await server.waitForLog((l) => l.msg === "function removed" && l.function === "removed"),
    );
    // Every line is logged or counted by the time the removal is logged (the notice's timer fired a second later).
    const removed = said("removed", removedAt);
    assert.ok(removed.logged >= 10 && removed.dropped > 0, JSON.stringify(removed));
    assert.equal(removed.logged + removed.dropped, n);
    // The runtime stops: the notice of lines dropped within its last second comes before its last line (it was lost).
    assert.equal((await server.stop()).code, 0);
    const stoppedAt = server.logs.findIndex((l) => l.msg === "stopped");
    assert.ok(stoppedAt > 0, "the runtime logged that it stopped");
    const stopped = said("stopped", stoppedAt);
    assert.ok(stopped.logged >= 10 && stopped.dropped > 0, JSON.stringify(stopped));
    assert.equal(stopped.logged + stopped.dropped, n);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
