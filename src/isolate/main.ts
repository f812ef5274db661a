/**
 * The entry of every isolate (a Deno Worker). It binds the lane, loads ONNX
 * Runtime while it still may, drops the ffi permission, and only then imports
 * the user's module, so user code can never load native code.
 * @module
 */
import type { HostMessage, InitMessage, IsolateMessage, Job, JobResult } from "../protocol.ts";
import { IsolaneError } from "../errors.ts";
import { loadOrt } from "../inference/ort.ts";
import { createSession, describeSession, modelRoot } from "../inference/session.ts";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { InferenceSession } from "onnxruntime-common";
import { z } from "../sdk.ts";
import { type LoadedFunction, loadFunctionModule, messageOf } from "./load_module.ts";
import { type BaseContext, runJob } from "./run_job.ts";
import { guardExit } from "./exit_guard.ts";
import { captureConsole, withRequest } from "./console_capture.ts";
import { type OpenedLane, openGpuLane } from "./gpu_lane.ts";

interface WorkerScope {
  postMessage(message: IsolateMessage, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<HostMessage>) => void) | null;
}
const scope = self as unknown as WorkerScope;
guardExit((message) => scope.postMessage(message));
captureConsole((message) => scope.postMessage(message));

let serving: { loaded: LoadedFunction; base: BaseContext } | undefined;
let gpuLane: OpenedLane | undefined;
const aborts = new Map<number, AbortController>();

async function inspect(init: InitMessage): Promise<void> {
  const { definition, options } = await loadFunctionModule(init.name, init.moduleUrl);
  const schema = (s: z.ZodType, io: "input" | "output") => z.toJSONSchema(s, { io, unrepresentable: "any" });
  scope.postMessage({
    type: "manifest",
    manifest: {
      options,
      inputSchema: schema(definition.input, "input"),
      outputSchema: schema(definition.output, "output"),
    },
  });
}

async function serve(init: InitMessage): Promise<void> {
  // The lane is bound on this thread before ONNX Runtime or anything else touches the GPU.
  if (init.lane.kind === "cuda") gpuLane = await openGpuLane(init.name, init.lane.device, init.kernelsPtxPath!);
  const ort = await loadOrt();
  // Existing native handles keep working; new dlopen calls are refused from here on.
  await Deno.permissions.revoke({ name: "ffi" });
  const loaded = await loadFunctionModule(init.name, init.moduleUrl);
  const models: Record<string, InferenceSession> = {};
  const functionDir = dirname(fileURLToPath(init.moduleUrl));
  for (const [name, path] of Object.entries(init.modelPaths)) {
    // By path: ORT resolves external data in the model's folder, after checkModelFiles kept it there.
    models[name] = await createSession(ort, path, {
      lane: init.lane,
      threads: init.ortThreads,
      root: modelRoot(functionDir, path),
      fn: init.name,
      model: name,
    });
  }
  const base: BaseContext = {
    name: init.name,
    models,
    assets: init.assetPaths,
    gpu: gpuLane?.gpu ?? null,
    state: undefined,
  };
  if (loaded.definition.setup) {
    try {
      base.state = await loaded.definition.setup(base);
    } catch (error) {
      throw new IsolaneError(
        "function_unavailable",
        `Cannot load function '${init.name}': setup threw: ${messageOf(error)}`,
      );
    }
  }
  serving = { loaded, base };
  scope.postMessage({
    type: "ready",
    models: Object.entries(models).map(([name, session]) => describeSession(name, session, init.lane)),
    lane: gpuLane?.info ?? null,
  });
}

async function runJobs(jobs: Job[]): Promise<void> {
  if (!serving) throw new Error("Isolate received jobs before it was ready");
  const { loaded, base } = serving;
  const results: JobResult[] = await Promise.all(jobs.map((job) => {
    const controller = new AbortController();
    aborts.set(job.id, controller);
    return withRequest(job.requestId, () => runJob(loaded.definition, job, base, controller.signal))
      .finally(() => aborts.delete(job.id));
  }));
  const transfer = results.flatMap((r) => (r.ok ? [r.body] : []));
  scope.postMessage({ type: "results", results }, transfer);
}

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case "init": {
      const boot = message.mode === "inspect" ? inspect(message) : serve(message);
      boot.catch((error) => {
        const e = error instanceof IsolaneError
          ? error
          : new IsolaneError("function_unavailable", `Cannot load function '${message.name}': ${messageOf(error)}`);
        scope.postMessage({ type: "failed", error: e.toBody() });
      });
      break;
    }
    case "run":
      void runJobs(message.jobs);
      break;
    case "shutdown":
      // Release in reverse order of creation: kernels, then the lane (stream, then context).
      try {
        gpuLane?.kernels.close();
        gpuLane?.lane.close();
      } finally {
        self.close();
      }
      break;
    case "abort":
      aborts.get(message.id)?.abort(new IsolaneError("timeout", "The request was aborted"));
      break;
  }
};
