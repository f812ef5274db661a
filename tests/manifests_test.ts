/**
 * `deno task manifests` against a real runtime: every rendered object passes
 * the Kubernetes and Knative schemas (kubernetes-models), and the derived
 * numbers follow the functions' options.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "@kubernetes-models/knative/serving.knative.dev/v1/Service";
import { startServer } from "./support/server.ts";

const echoFixture = fileURLToPath(new URL("./fixtures/functions/echo", import.meta.url));

// deno-lint-ignore no-explicit-any
type Doc = any;

async function render(url: string, ...args: string[]): Promise<Doc[]> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "manifests", "--url", url, "--store-url", "postgres://isolane@db:5432/isolane", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, stderr);
  return parseAllDocuments(new TextDecoder().decode(result.stdout)).map((d) => d.toJS());
}

/** Validates every object with its model; returns the Services. */
function validated(docs: Doc[]): Doc[] {
  for (const doc of docs) {
    if (doc.kind === "Secret") new Secret(doc).validate();
    else if (doc.kind === "Service" && doc.apiVersion === "serving.knative.dev/v1") new Service(doc).validate();
    else assert.fail(`unexpected object ${doc.apiVersion} ${doc.kind}`);
  }
  return docs.filter((d) => d.kind === "Service");
}

Deno.test("deno task manifests renders valid Knative Services from the registered functions", async (t) => {
  const functionsDir = await Deno.makeTempDir({ prefix: "isolane-fns-" });
  for (const name of ["echo", "echo_two"]) {
    await Deno.mkdir(join(functionsDir, name));
    await Deno.copyFile(join(echoFixture, "mod.ts"), join(functionsDir, name, "mod.ts"));
  }
  try {
    await using server = await startServer({ functionsDir });
    const listed = (await (await fetch(`${server.url}/v1/functions`)).json()).functions;
    const instances = Object.fromEntries(listed.map((f: Doc) => [f.name, f.instances]));
    assert.equal(instances.echo, 2);

    await t.step("per function (CPU): one Service each, derived from the isolates", async () => {
      const docs = await render(server.url, "--shutdown-grace-ms", "45000");
      const services = validated(docs);
      const secret = docs.find((d) => d.kind === "Secret");
      assert.equal(secret.stringData.ISOLANE_STORE, "postgres://isolane@db:5432/isolane");
      assert.match(secret.stringData.ISOLANE_ADMIN_TOKEN, /^[0-9a-f]{48}$/);
      assert.deepEqual(services.map((s) => s.metadata.name).sort(), ["isolane-echo", "isolane-echo-two"]);
      for (const service of services) {
        const fn = service.spec.template.metadata.labels["isolane/function"];
        const spec = service.spec.template.spec;
        const container = spec.containers[0];
        const env = Object.fromEntries(container.env.map((e: Doc) => [e.name, e.value ?? e.valueFrom]));
        assert.equal(env.ISOLANE_SERVE_FUNCTIONS, fn);
        assert.deepEqual(env.ISOLANE_STORE, {
          secretKeyRef: { name: secret.metadata.name, key: "ISOLANE_STORE", optional: false },
        });
        assert.equal(env.ISOLANE_SHUTDOWN_GRACE_MS, "45000");
        // Knative makes timeoutSeconds the pod's terminationGracePeriodSeconds: it covers the drain.
        assert.ok(spec.timeoutSeconds * 1000 > 45000, String(spec.timeoutSeconds));
        assert.equal(spec.containerConcurrency, 2 * instances[fn]);
        const annotations = service.spec.template.metadata.annotations;
        assert.equal(annotations["autoscaling.knative.dev/target"], String(instances[fn]));
        assert.equal(annotations["autoscaling.knative.dev/metric"], "concurrency");
        assert.equal(annotations["prometheus.io/scrape"], "true");
        assert.equal(annotations["prometheus.io/path"], "/metrics");
        assert.equal(container.readinessProbe.httpGet.path, "/readyz");
        assert.equal(container.livenessProbe.httpGet.path, "/healthz");
        assert.equal(container.resources.limits?.["nvidia.com/gpu"], undefined);
        assert.equal(spec.nodeSelector, undefined);
      }
    });

    await t.step("GPU variant: nvidia.com/gpu limit, GPU image, node selector and toleration", async () => {
      const services = validated(await render(server.url, "--gpu", "always", "--gpu-node-selector", "pool=gpu"));
      for (const service of services) {
        const spec = service.spec.template.spec;
        assert.equal(spec.containers[0].resources.limits["nvidia.com/gpu"], "1");
        assert.match(spec.containers[0].image, /-cuda$/);
        assert.deepEqual(spec.nodeSelector, { pool: "gpu" });
        assert.deepEqual(spec.tolerations, [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);
      }
    });

    await t.step("single: one Service for all functions, capacities added up", async () => {
      const services = validated(await render(server.url, "--layout", "single"));
      assert.equal(services.length, 1);
      const total = instances.echo + instances.echo_two;
      assert.equal(services[0].spec.template.spec.containerConcurrency, 2 * total);
      const env = services[0].spec.template.spec.containers[0].env.map((e: Doc) => e.name);
      assert.ok(!env.includes("ISOLANE_SERVE_FUNCTIONS"));
    });

    await t.step("the schema check is real: a broken Service fails it", async () => {
      const [service] = validated(await render(server.url, "--layout", "single"));
      service.spec.template.spec.containerConcurrency = "many";
      assert.throws(() => new Service(service).validate(), /containerConcurrency/);
      const [again] = validated(await render(server.url, "--layout", "single"));
      delete again.spec.template.spec.containers[0].readinessProbe.httpGet.port;
      assert.throws(() => new Service(again).validate(), /port/);
    });
  } finally {
    await Deno.remove(functionsDir, { recursive: true });
  }
});
