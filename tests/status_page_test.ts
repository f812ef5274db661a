/**
 * The status page in a real browser: headless Chromium (Debian's package)
 * driven by playwright-core loads `/`, shows the example functions, and
 * updates after requests; its uPlot charts of the last 15 minutes render and
 * carry the requests made; the API docs render. Skipped, saying so, where
 * Chromium is not installed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startServer } from "./support/server.ts";

const executablePath = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});
if (!executablePath) console.log("Status page browser test skipped: Chromium not found (apt-get install chromium)");

const functionsDir = fileURLToPath(new URL("../functions", import.meta.url));

Deno.test({
  name:
    "status page: loads in Chromium, shows the example functions, updates after requests, charts them; /docs renders",
  ignore: !executablePath,
  // playwright keeps a pipe to the browser open between steps.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startServer({ functionsDir, env: { CUDA_VISIBLE_DEVICES: "" } });
    const browser = await chromium.launch({
      executablePath,
      headless: true,
      // Without these, Chromium on a closed network keeps trying to reach Google's services.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage();
      const response = await page.goto(server.url + "/");
      assert.equal(response?.status(), 200);
      assert.equal(await page.title(), "isolane status");
      for (const name of ["mlp", "ocr", "vad"]) {
        const row = page.locator(`tr[data-function="${name}"]`);
        assert.equal(await row.locator("td").nth(1).innerText(), "ready", name);
      }
      const requests = page.locator('tr[data-function="mlp"] td[data-requests]');
      const before = Number(await requests.innerText());
      for (let i = 0; i < 3; i++) {
        const r = await server.invoke("mlp", { x: [[1, 2, 3, 4]] });
        await r.body?.cancel();
      }
      // The page refreshes its status part every second.
      await page.waitForFunction(
        `Number(document.querySelector('tr[data-function="mlp"] td[data-requests]')?.textContent) >= ${before + 3}`,
        undefined,
        { timeout: 10_000 },
      );
      assert.equal(Number(await requests.innerText()), before + 3);
      assert.match(await page.locator("#status").innerText(), /CPU only/);

      // Charts: a row per function with four uPlot charts, drawn on canvases, fed from /status/series.
      for (const name of ["mlp", "ocr", "vad"]) {
        for (const chart of ["rate", "latency", "batch", "errors"]) {
          await page.locator(`[data-chart="${name}/${chart}"] canvas`).first().waitFor({ timeout: 10_000 });
        }
      }
      const bad = await server.invoke("mlp", { x: "not rows" });
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
      // The charts refresh every two seconds: wait until mlp's carry the requests made above.
      // The last two 10-second buckets: a request made just before a bucket turned over sits in the one before last.
      const lastPoint = (key: string, series: number) =>
        `Math.max(...window.isolaneCharts.get(${JSON.stringify(key)}).data[${series}].slice(-2).map((v) => v ?? 0))`;
      await page.waitForFunction(`${lastPoint("mlp/errors", 1)} >= 1`, undefined, { timeout: 10_000 });
      const points = await page.evaluate(`({
        rate: ${lastPoint("mlp/rate", 1)},
        p50: ${lastPoint("mlp/latency", 1)},
        p99: ${lastPoint("mlp/latency", 2)},
        batch: ${lastPoint("mlp/batch", 1)},
        errors4xx: ${lastPoint("mlp/errors", 1)},
        times: window.isolaneCharts.get("mlp/rate").data[0].length,
      })`) as Record<string, number>;
      assert.ok(points.rate > 0, JSON.stringify(points));
      assert.ok(points.p50 > 0 && points.p99 >= points.p50, JSON.stringify(points));
      assert.ok(points.batch >= 1, JSON.stringify(points));
      assert.ok(points.errors4xx >= 1, JSON.stringify(points));
      assert.equal(points.times, 90); // 15 minutes of 10-second buckets
      // uPlot drew something: the rate chart's canvas is not blank.
      const inked = await page.evaluate(`(() => {
        const canvas = document.querySelector('[data-chart="mlp/rate"] canvas');
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) n++;
        return n;
      })()`) as number;
      assert.ok(inked > 100, `${inked} painted pixels`);
      assert.equal(await page.locator("#gpu-charts-none").isVisible(), true);
      const uplot = await fetch(server.url + "/status/assets/uPlot.iife.min.js");
      assert.equal(uplot.headers.get("content-type"), "text/javascript; charset=utf-8");
      await uplot.body?.cancel();

      // The API docs render too: Swagger UI, from this host, lists the operations of /openapi.json.
      await page.goto(server.url + "/docs");
      await page.waitForSelector(".opblock", { timeout: 15_000 });
      const operations = await page.locator(".opblock-summary-path").allInnerTexts();
      assert.ok(operations.some((path) => path.includes("/v1/functions/mlp")), operations.join(", "));
    } finally {
      await browser.close();
    }
  },
});
