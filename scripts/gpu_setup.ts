/**
 * Installs ONNX Runtime's CUDA provider for onnxruntime-node on Linux x64:
 * `libonnxruntime_providers_cuda.so` and `_shared.so` from the npm package
 * com.github.asus4.onnxruntime.linux-x64-gpu (ORT 1.29.0 built for CUDA 13),
 * placed beside onnxruntime-node's binding; checks that their ORT version is
 * the binding's, and says which CUDA 13 libraries are missing.
 *
 *   deno task gpu:setup                 # fetch with npm pack, install, check
 *   deno task gpu:setup --from DIR|TGZ  # install from a package already fetched
 *   deno task gpu:setup --check         # only check what is installed
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cudaProviderFiles, ortBinaryDir } from "../src/inference/providers.ts";
import { probeLibrary } from "../native/mod.ts";

const gpuPackage = "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9";
const nodeModules = fileURLToPath(new URL("../node_modules", import.meta.url));
const target = ortBinaryDir(nodeModules);
/** What the CUDA provider links against or loads, for CUDA 13 and cuDNN 9. */
const cudaLibraries = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcudnn.so.9"];

async function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  const result = await new Deno.Command(cmd, { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!result.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`);
}

/** Whether `bytes` hold `text` as a NUL-terminated string (how a library embeds its version). */
function embeds(bytes: Uint8Array, text: string): boolean {
  const needle = new TextEncoder().encode(`\0${text}\0`);
  outer: for (let i = bytes.indexOf(0); i >= 0 && i <= bytes.length - needle.length; i = bytes.indexOf(0, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function providerDir(from: string | undefined): Promise<string> {
  const work = await Deno.makeTempDir({ prefix: "isolane-gpu-setup-" });
  let tgz = from;
  if (!tgz) {
    console.log(`fetching ${gpuPackage} with npm pack`);
    await run("npm", ["pack", "--silent", gpuPackage], work);
    tgz = join(work, [...Deno.readDirSync(work)].find((e) => e.name.endsWith(".tgz"))!.name);
  } else if (Deno.statSync(tgz).isDirectory) {
    return tgz;
  }
  await run("tar", ["-xzf", tgz, "-C", work]);
  return join(work, "package", "Plugins", "Linux", "x64");
}

const ortVersion: string =
  JSON.parse(await Deno.readTextFile(join(nodeModules, "onnxruntime-node", "package.json"))).version;
const problems: string[] = [];
if (!Deno.args.includes("--check")) {
  const fromIndex = Deno.args.indexOf("--from");
  const dir = await providerDir(fromIndex >= 0 ? Deno.args[fromIndex + 1] : undefined);
  for (const file of cudaProviderFiles) await Deno.copyFile(join(dir, file), join(target, file));
  console.log(`installed ${cudaProviderFiles.join(", ")} into ${target}`);
}
for (const file of cudaProviderFiles) {
  try {
    Deno.statSync(join(target, file));
  } catch {
    problems.push(`${file} is missing in ${target}`);
  }
}
if (problems.length === 0) {
  const provider = await Deno.readFile(join(target, "libonnxruntime_providers_cuda.so"));
  if (!embeds(provider, ortVersion)) {
    problems.push(
      `libonnxruntime_providers_cuda.so is not built for ONNX Runtime ${ortVersion} (onnxruntime-node's version)`,
    );
  } else {
    console.log(`provider version matches onnxruntime-node ${ortVersion}`);
  }
}
for (const lib of cudaLibraries) {
  const probe = probeLibrary(lib);
  if (probe.ok) console.log(`found ${lib}`);
  else {problems.push(
      `${lib} not found (${probe.reason}); install CUDA 13 and cuDNN 9, or add their lib folder (/usr/local/cuda/lib64) to LD_LIBRARY_PATH`,
    );}
}
if (problems.length > 0) {
  console.log(`ONNX Runtime's CUDA provider cannot be used yet:\n- ${problems.join("\n- ")}`);
  Deno.exit(1);
}
console.log("ONNX Runtime's CUDA provider is ready");
