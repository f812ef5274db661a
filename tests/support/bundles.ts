/**
 * Bundles made from files in memory, and deploying them over HTTP with the
 * admin token.
 * @module
 */
import { join } from "node:path";
import { packFolder } from "../../src/registry/bundle.ts";
import type { TestServer } from "./server.ts";

/** A function module that answers `{"message": string}` with its input: the bystander that must keep answering. */
export const echoModule = `import { defineFunction, z } from "isolane";
export default defineFunction({
  description: "Echo",
  input: z.object({ message: z.string() }),
  output: z.object({ message: z.string() }),
  handler: (input) => input,
});
`;

/** The admin token the tests start the runtime with. */
export const adminToken = "test-admin-token-0123456789";

/** A `.tar.gz` of a folder holding `files` (paths relative to its root). */
export async function bundleOf(files: Record<string, string | Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  const dir = await Deno.makeTempDir();
  try {
    for (const [path, content] of Object.entries(files)) {
      await Deno.mkdir(join(dir, path, ".."), { recursive: true });
      if (typeof content === "string") await Deno.writeTextFile(join(dir, path), content);
      else await Deno.writeFile(join(dir, path), content);
    }
    return await packFolder(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `PUT /v1/functions/:name` with the bundle and the admin token. */
export function deploy(server: TestServer, name: string, bundle: Uint8Array<ArrayBuffer>): Promise<Response> {
  return fetch(`${server.url}/v1/functions/${name}`, {
    method: "PUT",
    headers: { "content-type": "application/gzip", authorization: `Bearer ${adminToken}` },
    body: bundle,
  });
}

/** Deploys and throws unless the answer is 201; resolves with the version. */
export async function deployOk(server: TestServer, name: string, files: Record<string, string>): Promise<number> {
  const response = await deploy(server, name, await bundleOf(files));
  const body = await response.json();
  if (response.status !== 201) {
    throw new Error(`Deploy of '${name}' answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.version;
}

/** `POST /v1/functions/:name/keys` with the admin token; throws unless the answer is 201; resolves with the key. */
export async function invocationKey(server: TestServer, name: string): Promise<string> {
  const made = await fetch(`${server.url}/v1/functions/${name}/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}` },
  });
  const body = await made.json();
  if (made.status !== 201) throw new Error(`A key for '${name}' answered ${made.status}: ${JSON.stringify(body)}`);
  return body.key as string;
}
