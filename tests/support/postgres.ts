/**
 * A throwaway PostgreSQL cluster for tests: `initdb` into a temporary folder,
 * `pg_ctl start` on a free loopback port. Runs the server as the `postgres`
 * user when the tests run as root (CI does; `initdb` refuses root).
 * @module
 */
import { join } from "node:path";

/** A running cluster. */
export interface PostgresCluster extends AsyncDisposable {
  /** `postgres://isolane@127.0.0.1:<port>/postgres`. */
  url: string;
  port: number;
  /** Stops the server (`pg_ctl stop -m fast`): the store is down. */
  stop(): Promise<void>;
  /** Starts it again on the same port, with the same data. */
  start(): Promise<void>;
}

const versions = ["17", "16", "15", "14", "13"];

/** The folder holding `initdb` and `pg_ctl`, or `null` when PostgreSQL is not installed. */
export async function findPostgresBin(): Promise<string | null> {
  const candidates = versions.map((v) => `/usr/lib/postgresql/${v}/bin`);
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) candidates.push(dir);
  for (const dir of candidates) {
    try {
      await Deno.stat(join(dir, "initdb"));
      await Deno.stat(join(dir, "pg_ctl"));
      return dir;
    } catch { /* next */ }
  }
  return null;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function run(bin: string, args: string[], asPostgres: boolean): Promise<void> {
  const [command, argv] = asPostgres ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
  const result = await new Deno.Command(command, { args: argv, stdout: "piped", stderr: "piped" }).output();
  if (!result.success) {
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    throw new Error(`${bin} ${args.join(" ")} failed: ${decode(result.stdout)}${decode(result.stderr)}`);
  }
}

/** Creates and starts a cluster with a superuser `isolane` (trust authentication, loopback only). */
export async function startPostgres(bin: string): Promise<PostgresCluster> {
  const asPostgres = Deno.uid() === 0;
  const root = await Deno.makeTempDir({ prefix: "isolane-pg-" });
  const data = join(root, "data");
  await Deno.mkdir(data, { mode: 0o700 });
  if (asPostgres) {
    const uid = Number(
      new TextDecoder().decode((await new Deno.Command("id", { args: ["-u", "postgres"] }).output()).stdout),
    );
    const gid = Number(
      new TextDecoder().decode((await new Deno.Command("id", { args: ["-g", "postgres"] }).output()).stdout),
    );
    await Deno.chown(root, uid, gid);
    await Deno.chown(data, uid, gid);
  }
  await run(join(bin, "initdb"), ["-D", data, "-U", "isolane", "-A", "trust", "--no-sync", "-E", "UTF8"], asPostgres);
  const port = freePort();
  const options = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const start = () =>
    run(join(bin, "pg_ctl"), ["-D", data, "-o", options, "-l", join(root, "log"), "-w", "start"], asPostgres);
  const stop = () => run(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"], asPostgres);
  await start();
  let running = true;
  return {
    url: `postgres://isolane@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await stop();
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async [Symbol.asyncDispose]() {
      if (running) await stop().catch(() => {});
      await Deno.remove(root, { recursive: true });
    },
  };
}
