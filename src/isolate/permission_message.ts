/**
 * Rewrites Deno's permission errors for function authors. Inside an isolate
 * Deno says "run again with the --allow-net flag", which a function cannot do:
 * its permissions are the `permissions` option of its definition.
 * @module
 */

/** The `permissions` keys a function may declare, by Deno's permission name. */
const declarable: Record<string, string> = { net: "net", env: "env", read: "read", write: "write" };

const denied = /^Requires (\w+) access to "?(.*?)"?, run again with the --allow-\w+ flag$/;

/**
 * The message of a permission error (`Deno.errors.NotCapable`) as the function
 * author should read it, or `undefined` for any other error.
 *
 * @example
 * ```ts
 * explainDenied(new Deno.errors.NotCapable('Requires net access to "api.example.com:443", run again with the --allow-net flag'));
 * // 'Requires net access to "api.example.com:443": declare it in the function\'s permissions option, e.g. permissions: { net: ["api.example.com:443"] }'
 * ```
 */
export function explainDenied(error: unknown): string | undefined {
  // A denied import comes as a TypeError, not NotCapable: its message is what tells.
  if (!(error instanceof Error)) return undefined;
  // An import's denial goes on with where it was imported ("\n    at file:///.../mod.ts:3:22"): keep that.
  const text = withoutColours(error.message);
  const newline = text.indexOf("\n");
  const [first, where] = newline < 0 ? [text, ""] : [text.slice(0, newline), text.slice(newline)];
  const match = denied.exec(first);
  if (!match) return undefined;
  const [, kind, target] = match;
  const key = declarable[kind];
  if (kind === "import") {
    return `Requires import access to "${target}": a function imports no modules from URLs; import npm: packages ` +
      `through its deno.json, or copy the module into its folder${where}`;
  }
  if (!key) {
    return `Requires ${kind} access to "${target}": functions cannot be granted ${kind} access ` +
      `(the permissions option has net, env, read and write)${where}`;
  }
  return `Requires ${kind} access to "${target}": declare it in the function's permissions option, ` +
    `e.g. permissions: { ${key}: [${JSON.stringify(target)}] }${where}`;
}

/** `text` without the terminal's colour codes, which Deno puts in the locations of its errors. */
export function withoutColours(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}
