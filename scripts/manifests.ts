/**
 * Renders the Kubernetes manifests (Knative Services and the store's Secret)
 * for the functions a running isolane has registered:
 *
 *   deno task manifests --url http://127.0.0.1:8000 [--layout per-function|single] [--gpu auto|always|never]
 *     [--namespace isolane] [--image isolane:0.1.0] [--gpu-image isolane:0.1.0-cuda]
 *     [--store-url postgres://…] [--admin-token …] [--shutdown-grace-ms 10000]
 *     [--min-scale 0] [--max-scale 10] [--gpu-node-selector key=value] [--from functions.json] [--out file.yaml]
 *
 * The functions come from `GET <url>/v1/functions` (or a saved answer with
 * `--from`). Every object is validated against the Kubernetes and Knative
 * schemas (`kubernetes-models`) before it is printed as YAML.
 * @module
 */
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "@kubernetes-models/knative/serving.knative.dev/v1/Service";
import {
  functionSpecSchema,
  type Manifest,
  manifestDefaults,
  type ManifestOptions,
  renderManifests,
} from "../src/kubernetes/manifests.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    url: { type: "string" },
    from: { type: "string" },
    out: { type: "string" },
    layout: { type: "string", default: manifestDefaults.layout },
    gpu: { type: "string", default: manifestDefaults.gpu },
    namespace: { type: "string", default: manifestDefaults.namespace },
    image: { type: "string", default: manifestDefaults.image },
    "gpu-image": { type: "string", default: manifestDefaults.gpuImage },
    "store-url": { type: "string" },
    "admin-token": { type: "string" },
    "shutdown-grace-ms": { type: "string", default: String(manifestDefaults.shutdownGraceMs) },
    "min-scale": { type: "string", default: String(manifestDefaults.minScale) },
    "max-scale": { type: "string", default: String(manifestDefaults.maxScale) },
    "gpu-node-selector": { type: "string" },
  },
});

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

if (!values.url && !values.from) fail("Usage: deno task manifests --url <runtime> | --from <functions.json> [options]");
if (values.layout !== "per-function" && values.layout !== "single") fail("--layout is per-function or single");
if (values.gpu !== "auto" && values.gpu !== "always" && values.gpu !== "never") fail("--gpu is auto, always or never");
const listing = values.from
  ? JSON.parse(await Deno.readTextFile(values.from))
  : await (await fetch(`${values.url!.replace(/\/$/, "")}/v1/functions`)).json();
// Functions that failed to load have no options to derive from: they are left out, saying so.
const loaded = (listing.functions as Record<string, unknown>[]).filter((fn) => {
  if (fn.status === "ready" || fn.instances !== undefined) return true;
  console.error(`skipping ${fn.name}: not loaded (${fn.status})`);
  return false;
});
const functions = loaded.map((fn) => functionSpecSchema.parse(fn));
const selector = values["gpu-node-selector"]?.split("=");
const options: ManifestOptions = {
  ...manifestDefaults,
  namespace: values.namespace,
  image: values.image,
  gpuImage: values["gpu-image"],
  layout: values.layout,
  gpu: values.gpu,
  ...(selector ? { gpuNodeSelector: { [selector[0]]: selector.slice(1).join("=") } } : {}),
  shutdownGraceMs: Number(values["shutdown-grace-ms"]),
  ...(values["store-url"] ? { storeUrl: values["store-url"] } : {}),
  adminToken: values["admin-token"] ??
    Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) => b.toString(16).padStart(2, "0")).join(""),
  minScale: Number(values["min-scale"]),
  maxScale: Number(values["max-scale"]),
};

/** Validates one object against its schema; throws with the schema's complaint. */
function validate(object: Manifest): void {
  if (object.kind === "Secret") new Secret(object as ConstructorParameters<typeof Secret>[0]).validate();
  else new Service(object as ConstructorParameters<typeof Service>[0]).validate();
}

const objects = renderManifests(functions, options);
for (const object of objects) validate(object);
const text = objects.map((o) => stringify(o)).join("---\n");
if (values.out) await Deno.writeTextFile(values.out, text);
else console.log(text);
console.error(`rendered ${objects.length} objects (${options.layout}) for ${functions.length} functions`);
