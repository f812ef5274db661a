import assert from "node:assert/strict";
import { CudaError, discoverDevices, probeLibrary, tensorRtLibrary } from "./mod.ts";

Deno.test("CudaError names the call, the driver's error name and its description", () => {
  const table = new Map([[201, { name: "CUDA_ERROR_INVALID_CONTEXT", text: "invalid device context" }]]);
  const error = new CudaError("cuMemAlloc", 201, table);
  assert.equal(error.message, "cuMemAlloc failed: CUDA_ERROR_INVALID_CONTEXT (201): invalid device context");
  assert.equal(new CudaError("cuInit", 999).message, "cuInit failed with CUDA error 999");
});

Deno.test("discoverDevices lists devices, or says why there are none", () => {
  const found = discoverDevices();
  if (found.devices.length === 0) {
    assert.match(found.reason ?? "", /no CUDA driver|did not initialise|sees no device/);
    assert.equal(found.driverVersion === null, /no CUDA driver/.test(found.reason ?? ""));
  } else {
    for (const d of found.devices) {
      assert.match(d.pciBusId, /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9]$/);
      assert.match(d.computeCapability, /^\d+\.\d+$/);
      assert.ok(d.totalBytes > 0);
    }
  }
});

Deno.test("probeLibrary reports the loader's reason for a missing library (TensorRT here)", () => {
  const missing = probeLibrary("libisolane-does-not-exist.so.1");
  assert.equal(missing.ok, false);
  assert.match(!missing.ok ? missing.reason : "", /libisolane-does-not-exist\.so\.1/);
  const trt = probeLibrary(tensorRtLibrary);
  if (!trt.ok) assert.match(trt.reason, /libnvinfer\.so\.10/);
});
