/**
 * Tar archives written byte by byte, for bundles no file system can make: names longer than 255 bytes (as PAX or GNU
 * long-name records), a file and a folder at one path, headers whose sizes lie. ustar layout (POSIX.1-1988), PAX
 * extended headers (POSIX.1-2001), GNU's `././@LongLink`.
 * @module
 */

const encoder = new TextEncoder();

/** One record of a hand-made archive. */
export interface RawEntry {
  path: string;
  /** The content; absent for folders and links. */
  content?: string | Uint8Array;
  /** The ustar type flag: "0" file (default), "5" folder, "2" symbolic link, "x" PAX header, "L" GNU long name. */
  type?: string;
  /** The size the header declares, when it must differ from the content's. */
  declaredSize?: number;
  /** How a path over 100 bytes is written: a PAX `path` record (default) or a GNU long-name record. */
  longName?: "pax" | "gnu";
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** A 512-byte ustar header. Sizes past 8 GiB are written in base-256, as GNU tar does. */
function header(name: string, size: number, type: string): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(512);
  const put = (text: string, at: number) => h.set(encoder.encode(text), at);
  put(name.slice(0, 100), 0);
  put(octal(0o644, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  if (size <= 0o77777777777) put(octal(size, 12), 124);
  else {
    h[124] = 0x80;
    let rest = BigInt(size);
    for (let i = 135; i > 124; i--, rest >>= 8n) h[i] = Number(rest & 255n);
  }
  put(octal(0, 12), 136);
  put("        ", 148);
  put(type, 156);
  put("ustar\u000000", 257);
  const sum = h.reduce((a, b) => a + b, 0);
  put(octal(sum, 7), 148);
  return h;
}

function padded(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.ceil(bytes.length / 512) * 512);
  out.set(bytes);
  return out;
}

function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let length = rest.length + 1;
  while (String(length).length + encoder.encode(rest).length !== length) length++;
  return `${length}${rest}`;
}

/** The records of `entries` as a plain `.tar` (two zero blocks at the end). */
export function rawTar(entries: readonly RawEntry[]): Uint8Array<ArrayBuffer> {
  const blocks: Uint8Array<ArrayBuffer>[] = [];
  for (const entry of entries) {
    const content = typeof entry.content === "string"
      ? encoder.encode(entry.content)
      : entry.content ?? new Uint8Array();
    const type = entry.type ?? "0";
    let name = entry.path;
    if (encoder.encode(name).length > 100) {
      if (entry.longName === "gnu") {
        const long = encoder.encode(`${name}\0`);
        blocks.push(header("././@LongLink", long.length, "L"), padded(long));
      } else {
        const pax = encoder.encode(paxRecord("path", name));
        blocks.push(header("PaxHeader", pax.length, "x"), padded(pax));
      }
      name = "long-name";
    }
    blocks.push(header(name, entry.declaredSize ?? content.length, type), padded(content));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** {@link rawTar} gzipped: a bundle as `PUT /v1/functions/:name` takes it. */
export async function rawTarGz(entries: readonly RawEntry[]): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([rawTar(entries)]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
