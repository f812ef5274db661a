/**
 * Kubernetes manifests for running isolane on Knative Serving: one Knative
 * `Service` per function (as KServe makes one InferenceService per model), or
 * one for all; CPU and GPU variants; concurrency and autoscaling targets
 * derived from each function's isolates and batch size; probes on `/readyz`
 * and `/healthz`; Prometheus scrape annotations; the Secret holding the
 * store's URL. Pure: the caller reads the functions (`GET /v1/functions`)
 * and prints the objects (`deno task manifests`).
 * @module
 */
import { z } from "zod";

/** What the manifests need of one function, as `GET /v1/functions` lists it. */
export const functionSpecSchema = z.object({
  name: z.string(),
  device: z.union([z.enum(["auto", "cpu", "cuda"]), z.array(z.number())]).default("auto"),
  instances: z.number().int().min(1).default(1),
  timeoutMs: z.number().int().min(1).default(30_000),
  /** The function's dynamic batcher (Triton's `max_batch_size` is its largest batch); `null` without batching. */
  dynamicBatching: z.object({ maxBatchSize: z.number().int().min(1) }).nullish(),
});

/** One function's inputs to the manifests. */
export type FunctionSpec = z.output<typeof functionSpecSchema>;

/** Options of {@link renderManifests}. */
export interface ManifestOptions {
  namespace: string;
  /** Image of the CPU variant (`Containerfile`). */
  image: string;
  /** Image of the GPU variant (`Containerfile`, `--build-arg VARIANT=cuda`). */
  gpuImage: string;
  /** `per-function`: one Service each (default); `single`: one Service serving every function. */
  layout: "per-function" | "single";
  /** `auto`: the GPU variant for functions whose `device` is `cuda` or a GPU list; `always`; `never`. */
  gpu: "auto" | "always" | "never";
  /** GPU nodes: the node selector (default the GPU operator's `nvidia.com/gpu.present=true`). */
  gpuNodeSelector: Record<string, string>;
  /** `ISOLANE_SHUTDOWN_GRACE_MS` of the pods; the revision's timeout (and so the pod's grace period) covers it. */
  shutdownGraceMs: number;
  /** Name of the Secret with `ISOLANE_STORE` and `ISOLANE_ADMIN_TOKEN`. */
  secretName: string;
  /** The store's `postgres://` URL written into the Secret (a placeholder to edit when absent). */
  storeUrl?: string;
  /** The admin token written into the Secret. */
  adminToken: string;
  minScale: number;
  maxScale: number;
  /** Share of the concurrency target the autoscaler aims for, in percent. */
  targetUtilization: number;
}

/** Defaults of {@link ManifestOptions} (the admin token has none: generate one). */
export const manifestDefaults: Omit<ManifestOptions, "adminToken"> = {
  namespace: "isolane",
  image: "isolane:0.1.0",
  gpuImage: "isolane:0.1.0-cuda",
  layout: "per-function",
  gpu: "auto",
  gpuNodeSelector: { "nvidia.com/gpu.present": "true" },
  shutdownGraceMs: 10_000,
  secretName: "isolane-store",
  minScale: 0,
  maxScale: 10,
  targetUtilization: 70,
};

const port = 8000;
const placeholderUrl = "postgres://isolane:CHANGE-ME@postgres.isolane.svc:5432/isolane";

/** A Kubernetes object as plain data (validated by the caller with `kubernetes-models`). */
export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [key: string]: unknown };
};

/** Requests one pod handles at once: one batch per isolate. */
export function capacityOf(fn: FunctionSpec): number {
  return fn.instances * (fn.dynamicBatching?.maxBatchSize ?? 1);
}

/** Whether a function asks for a GPU. */
export function wantsGpu(fn: FunctionSpec, gpu: ManifestOptions["gpu"]): boolean {
  if (gpu !== "auto") return gpu === "always";
  return fn.device === "cuda" || Array.isArray(fn.device);
}

/** A DNS-1035 label for a function's Service: `isolane-<name>`, lower case, `_` as `-`. */
export function serviceName(functionName: string): string {
  return `isolane-${functionName.toLowerCase().replaceAll("_", "-")}`.slice(0, 63).replace(/-+$/, "");
}

function service(name: string, fns: FunctionSpec[], serve: string | undefined, o: ManifestOptions): Manifest {
  const gpu = fns.some((fn) => wantsGpu(fn, o.gpu));
  const capacity = fns.reduce((sum, fn) => sum + capacityOf(fn), 0);
  const timeoutMs = Math.max(...fns.map((fn) => fn.timeoutMs), 1);
  // Knative gives the pod terminationGracePeriodSeconds = timeoutSeconds: cover the longest call and isolane's drain.
  const timeoutSeconds = Math.ceil(Math.max(timeoutMs, o.shutdownGraceMs) / 1000) + 10;
  const secret = (key: string, optional: boolean) => ({
    name: key,
    valueFrom: { secretKeyRef: { name: o.secretName, key, optional } },
  });
  return {
    apiVersion: "serving.knative.dev/v1",
    kind: "Service",
    metadata: {
      name,
      namespace: o.namespace,
      labels: { "app.kubernetes.io/name": "isolane", "app.kubernetes.io/component": serve ? "function" : "all" },
    },
    spec: {
      template: {
        metadata: {
          labels: { "app.kubernetes.io/name": "isolane", ...(serve ? { "isolane/function": serve } : {}) },
          annotations: {
            "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
            "autoscaling.knative.dev/metric": "concurrency",
            "autoscaling.knative.dev/target": String(capacity),
            "autoscaling.knative.dev/target-utilization-percentage": String(o.targetUtilization),
            "autoscaling.knative.dev/min-scale": String(o.minScale),
            "autoscaling.knative.dev/max-scale": String(o.maxScale),
            // A GPU pod loads its models for seconds: keep it a while after the traffic goes.
            ...(gpu ? { "autoscaling.knative.dev/scale-down-delay": "5m" } : {}),
            "prometheus.io/scrape": "true",
            "prometheus.io/port": String(port),
            "prometheus.io/path": "/metrics",
          },
        },
        spec: {
          // One batch running on each isolate and one filling: more waits in Knative's queue, where the autoscaler sees it.
          containerConcurrency: 2 * capacity,
          timeoutSeconds,
          containers: [{
            name: "isolane",
            image: gpu ? o.gpuImage : o.image,
            ports: [{ name: "http1", containerPort: port }],
            env: [
              { name: "HOST", value: "0.0.0.0" },
              { name: "ISOLANE_DATA", value: "/tmp/isolane" },
              { name: "ISOLANE_SHUTDOWN_GRACE_MS", value: String(o.shutdownGraceMs) },
              ...(serve ? [{ name: "ISOLANE_SERVE_FUNCTIONS", value: serve }] : []),
              secret("ISOLANE_STORE", false),
              secret("ISOLANE_ADMIN_TOKEN", true),
            ],
            resources: {
              requests: { cpu: String(fns.reduce((sum, fn) => sum + fn.instances, 0)), memory: "1Gi" },
              ...(gpu ? { limits: { "nvidia.com/gpu": "1" } } : {}),
            },
            readinessProbe: { httpGet: { path: "/readyz", port }, periodSeconds: 2, failureThreshold: 3 },
            livenessProbe: {
              httpGet: { path: "/healthz", port },
              periodSeconds: 10,
              failureThreshold: 3,
              initialDelaySeconds: 10,
            },
          }],
          ...(gpu
            ? {
              nodeSelector: o.gpuNodeSelector,
              tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
            }
            : {}),
        },
      },
    },
  };
}

/**
 * The Secret and the Knative Services for `functions`. Throws when two
 * function names map to one Service name.
 *
 * @example
 * ```ts
 * const objects = renderManifests([{ name: "ocr", device: "cuda", instances: 2, timeoutMs: 30000 }], {
 *   ...manifestDefaults,
 *   adminToken: crypto.randomUUID(),
 * });
 * ```
 */
export function renderManifests(functions: FunctionSpec[], o: ManifestOptions): Manifest[] {
  const secret: Manifest = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: o.secretName, namespace: o.namespace, labels: { "app.kubernetes.io/name": "isolane" } },
    type: "Opaque",
    stringData: { ISOLANE_STORE: o.storeUrl ?? placeholderUrl, ISOLANE_ADMIN_TOKEN: o.adminToken },
  };
  if (o.layout === "single" || functions.length === 0) {
    const all = functions.length > 0 ? functions : [functionSpecSchema.parse({ name: "all" })];
    return [secret, service("isolane", all, undefined, o)];
  }
  const seen = new Map<string, string>();
  const services = functions.map((fn) => {
    const name = serviceName(fn.name);
    const other = seen.get(name);
    if (other) throw new Error(`Functions '${other}' and '${fn.name}' would both be served by Service '${name}'`);
    seen.set(name, fn.name);
    return service(name, [fn], fn.name, o);
  });
  return [secret, ...services];
}
