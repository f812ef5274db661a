/**
 * Whether ONNX Runtime's GPU providers are installed beside onnxruntime-node's
 * binding (`deno task gpu:setup` puts them there). Checks files only; loads nothing.
 * @module
 */
import { join } from "node:path";

/** Where onnxruntime-node keeps its native binding and provider libraries on Linux x64. */
export function ortBinaryDir(nodeModules: string): string {
  return join(nodeModules, "onnxruntime-node", "bin", "napi-v6", "linux", "x64");
}

/** The provider libraries ONNX Runtime's CUDA EP loads. */
export const cudaProviderFiles = ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"] as const;

/** Whether the CUDA provider's libraries are in place, and what is missing if not. */
export function cudaProviderStatus(nodeModules: string): { ok: true } | { ok: false; reason: string } {
  const dir = ortBinaryDir(nodeModules);
  const missing = cudaProviderFiles.filter((file) => {
    try {
      return !Deno.statSync(join(dir, file)).isFile;
    } catch {
      return true;
    }
  });
  return missing.length === 0 ? { ok: true } : {
    ok: false,
    reason: `ONNX Runtime's CUDA provider is not installed (${
      missing.join(", ")
    } missing in ${dir}; run deno task gpu:setup)`,
  };
}
