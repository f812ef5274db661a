/**
 * What `GET /v1/devices` says: every device, its memory, and the lanes on it.
 * @module
 */
import type { Registry } from "../registry/registry.ts";

/** A device as the runtime found it at start-up. */
export interface DeviceDescription {
  index: number;
  name: string;
  computeCapability: string;
  pciBusId: string;
  totalBytes: number;
}

/** Where the report's facts come from (injected by the runtime, which owns native access). */
export interface DeviceSources {
  devices: DeviceDescription[];
  driverVersion: string | null;
  /** Why no GPU is used, if none is. */
  reason?: string;
  /** Current used/total memory of a device, or `null` when it cannot be read. */
  memory(pciBusId: string): { usedBytes: number; totalBytes: number } | null;
}

/** The report: devices, their memory now, and every lane on each. */
export function devicesReport(sources: DeviceSources, registry: Registry): Record<string, unknown> {
  const lanes = registry.list().flatMap((entry) =>
    (entry.current?.pool.isolates() ?? []).flatMap((isolate) =>
      isolate.gpu
        ? [{
          device: isolate.gpu.device,
          function: entry.name,
          version: entry.current!.version,
          isolate: isolate.id,
          context: isolate.gpu.context,
          stream: isolate.gpu.stream,
          served: isolate.served,
          providers: isolate.providers,
        }]
        : []
    )
  );
  return {
    driverVersion: sources.driverVersion,
    ...(sources.reason ? { reason: sources.reason } : {}),
    devices: sources.devices.map((d) => ({
      ...d,
      memory: sources.memory(d.pciBusId),
      lanes: lanes.filter((l) => l.device === d.index).map(({ device: _, ...lane }) => lane),
    })),
  };
}
