/**
 * The status page in a real browser: headless Chromium (Debian's package)
 * driven by playwright-core loads `/`, shows the example functions, and
 * updates after requests; the API docs render. Skipped, saying so, where
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
  name: "status page: loads in Chromium, shows the example functions, updates after requests; /docs renders",
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
