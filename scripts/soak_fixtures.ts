/**
 * The functions the fault soak serves besides the examples: each fails in the
 * ways it is asked to (`{"mode": ...}`), and answers `{"ok": true}` for
 * `{"mode": "ok"}`, so a respawned isolate can show it serves again.
 * @module
 */

/** Source of a fault fixture, by function name. */
export const faultFixtures: Record<string, string> = {
  throws: `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Throws from its handler",
  input: z.object({ mode: z.enum(["ok", "throw", "reject"]) }),
  output: z.object({ ok: z.boolean() }),
  handler({ mode }) {
    if (mode === "throw") throw new Error("the handler gave up");
    if (mode === "reject") return Promise.reject(new TypeError("a rejected promise"));
    return { ok: true };
  },
});
`,
  // Ignores its signal: a never-settling promise, or a synchronous spin, past its deadline.
  hangs: `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Hangs and ignores its signal",
  input: z.object({ mode: z.enum(["ok", "hang", "spin"]), ms: z.number().default(2000) }),
  output: z.object({ ok: z.boolean() }),
  timeoutMs: 500,
  abortGraceMs: 200,
  queueDepth: 16,
  handler({ mode, ms }) {
    if (mode === "hang") return new Promise(() => {});
    if (mode === "spin") {
      const until = Date.now() + ms;
      while (Date.now() < until) { /* ignores ctx.signal */ }
    }
    return { ok: true };
  },
});
`,
  hog: `import { defineFunction, z } from "isolane";
const kept: unknown[] = [];
export default defineFunction({
  description: "Allocates without end",
  input: z.object({ mode: z.enum(["ok", "buffers", "heap"]) }),
  output: z.object({ ok: z.boolean() }),
  memoryLimitMb: 128,
  timeoutMs: 20000,
  queueDepth: 16,
  async handler({ mode }) {
    if (mode === "ok") return { ok: true };
    for (;;) {
      kept.push(mode === "heap" ? new Array(1_000_000).fill(1.5) : new Uint8Array(8 * 2 ** 20).fill(1));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  },
});
`,
  crash: `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Crashes its isolate",
  input: z.object({ mode: z.enum(["ok", "uncaught", "unhandled", "exit"]) }),
  output: z.object({ ok: z.boolean() }),
  handler({ mode }) {
    if (mode === "uncaught") {
      setTimeout(() => {
        throw new Error("escaped the handler");
      }, 0);
      return new Promise(() => {});
    }
    if (mode === "unhandled") {
      Promise.reject(new Error("nobody catches this"));
      return new Promise(() => {});
    }
    if (mode === "exit") Deno.exit(3);
    return { ok: true };
  },
});
`,
  badout: `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Returns output that breaks its schema",
  input: z.object({ mode: z.enum(["ok", "wrong_type", "missing", "nan", "undefined"]) }),
  output: z.object({ ok: z.boolean(), count: z.number().optional() }),
  handler({ mode }) {
    switch (mode) {
      case "wrong_type":
        return { ok: "yes" } as unknown as { ok: boolean };
      case "missing":
        return {} as unknown as { ok: boolean };
      case "nan":
        return { ok: true, count: NaN };
      case "undefined":
        return undefined as unknown as { ok: boolean };
    }
    return { ok: true };
  },
});
`,
};

/** A deployable function whose answer names its version, for deploys and rollbacks under traffic. */
export function greeterSource(version: string): string {
  return `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Greets, in version ${version}",
  input: z.object({ name: z.string().max(64) }),
  output: z.object({ message: z.string() }),
  handler: ({ name }) => ({ message: "${version} " + name }),
});
`;
}
