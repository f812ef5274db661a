/**
 * Builds isolane's kernels: every `native/kernels/*.cu` to PTX with
 * `nvcc -ptx -arch=compute_90` (Hopper and later load it). `--check` builds
 * into a temporary folder and exits 1 if a checked-in `.ptx` differs; without
 * nvcc it says so and exits 0, since the PTX in the repo is what runs.
 * @module
 */
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

const kernelsDir = fileURLToPath(new URL("../native/kernels/", import.meta.url));
const arch = "compute_90";
const check = Deno.args.includes("--check");

async function nvcc(source: string, output: string): Promise<void> {
  const result = await new Deno.Command("nvcc", { args: ["-ptx", `-arch=${arch}`, "-o", output, source] }).output();
  if (!result.success) throw new Error(`nvcc failed on ${source}:\n${new TextDecoder().decode(result.stderr)}`);
}

async function hasNvcc(): Promise<boolean> {
  try {
    return (await new Deno.Command("nvcc", { args: ["--version"], stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

if (!(await hasNvcc())) {
  console.log("nvcc not found: kernels not rebuilt (the checked-in PTX is used)");
  Deno.exit(0);
}
const sources = [...Deno.readDirSync(kernelsDir)].filter((e) => e.name.endsWith(".cu")).map((e) =>
  join(kernelsDir, e.name)
);
const temp = check ? await Deno.makeTempDir() : kernelsDir;
let stale = 0;
for (const source of sources) {
  const ptx = basename(source, ".cu") + ".ptx";
  await nvcc(source, join(temp, ptx));
  if (check) {
    const built = await Deno.readTextFile(join(temp, ptx));
    const current = await Deno.readTextFile(join(kernelsDir, ptx)).catch(() => "");
    if (built !== current) {
      console.log(`${ptx} is stale: run deno task kernels`);
      stale++;
    }
  } else {
    console.log(`built native/kernels/${ptx}`);
  }
}
if (check) {
  await Deno.remove(temp, { recursive: true });
  if (stale === 0) console.log(`kernels are current (${sources.length} built with nvcc -ptx -arch=${arch})`);
  Deno.exit(stale === 0 ? 0 : 1);
}
