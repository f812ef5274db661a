/**
 * Reading an HTTP/1.1 answer off a raw TCP connection, for tests that send a
 * request by hand (a head, part of a body, a pause) where `fetch` cannot.
 * @module
 */

/** Reads an answer to its end (the server closes after it): its status and JSON body. */
export async function readJsonAnswer(conn: Deno.Conn): Promise<{ status: number; body: unknown }> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const buffer = new Uint8Array(4096);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) chunks.push(buffer.slice(0, n));
  const text = new TextDecoder().decode(await new Blob(chunks).arrayBuffer());
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  return { status, body: JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) };
}
