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
  if (!(error instanceof Deno.errors.NotCapable) && !(error instanceof Deno.errors.PermissionDenied)) return undefined;
  const match = denied.exec(error.message);
  if (!match) return undefined;
  const [, kind, target] = match;
  const key = declarable[kind];
  if (!key) {
    return `Requires ${kind} access to "${target}": functions cannot be granted ${kind} access ` +
      `(the permissions option has net, env, read and write)`;
  }
  return `Requires ${kind} access to "${target}": declare it in the function's permissions option, ` +
    `e.g. permissions: { ${key}: [${JSON.stringify(target)}] }`;
}
