import type { DiagLogger } from "@opentelemetry/api";
import { context, DiagLogLevel, diag, propagation, trace } from "@opentelemetry/api";
import { diagLogLevelFromString } from "@opentelemetry/core";
import { startNodeSdk } from "@opentelemetry/sdk-node";
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import type { Logger } from "pino";

/** Options of {@link startTelemetry}. */
export interface TelemetryOptions {
  /** `service.name` of the resource (NEXUS_SERVICE_NAME); OTEL_SERVICE_NAME wins when set. */
  serviceName: string;
  /** Where OpenTelemetry's own diagnostics go (export failures and the like); default: stderr. */
  logger?: Logger;
  /**
   * Span processors to use instead of the OTEL_TRACES_EXPORTER ones (tests pass a
   * SimpleSpanProcessor with an InMemorySpanExporter).
   */
  spanProcessors?: SpanProcessor[];
  /**
   * Environment the decision "export or not" is read from; default `process.env`. The SDK
   * itself reads the OTEL_* variables of `process.env`.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** How long `shutdown()` waits for the final export before giving up; default 5 s. */
  shutdownTimeoutMs?: number;
}

/** A running telemetry setup. */
export interface Telemetry {
  /** False when OTEL_SDK_DISABLED=true: nothing was registered. */
  readonly enabled: boolean;
  /** True when spans are exported somewhere (an exporter or processor is configured). */
  readonly exporting: boolean;
  /**
   * Flushes pending spans (at most `shutdownTimeoutMs`), shuts the SDK down and unregisters
   * the global providers. Never rejects: a failed or slow export is logged. Idempotent.
   */
  shutdown(): Promise<void>;
}

let running: Telemetry | undefined;

function set(value: string | undefined): boolean {
  return value !== undefined && value.trim() !== "";
}

function diagFromPino(logger: Logger): DiagLogger {
  const log = logger.child({ component: "opentelemetry" });
  return {
    error: (message, ...args) => log.error({ args }, message),
    warn: (message, ...args) => log.warn({ args }, message),
    info: (message, ...args) => log.info({ args }, message),
    debug: (message, ...args) => log.debug({ args }, message),
    verbose: (message, ...args) => log.trace({ args }, message),
  };
}

/**
 * Starts OpenTelemetry for this process (call once, before the server starts):
 * AsyncLocalStorage context, W3C trace-context + baggage propagators registered globally
 * (OTEL_PROPAGATORS may change them), a resource named `serviceName`, and trace export
 * configured from the standard OTEL_* variables.
 *
 * Quiet by default: with neither OTEL_TRACES_EXPORTER nor an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, spans are not
 * exported — trace context still flows through RPCs and events — so a laptop without a
 * collector sees no export errors. Metrics and logs stay with prom-client and pino unless
 * OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER ask otherwise. OTEL_SDK_DISABLED=true turns it all
 * off. SDK diagnostics (level OTEL_LOG_LEVEL, default warn) go to `logger`.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  if (running) throw new Error("telemetry is already started in this process; shut it down first");
  const env = options.env ?? process.env;
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") {
    return { enabled: false, exporting: false, shutdown: async () => {} };
  }
  const explicitTraces =
    set(env.OTEL_TRACES_EXPORTER) || set(env.OTEL_EXPORTER_OTLP_ENDPOINT) || set(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const spanProcessors = options.spanProcessors ?? (explicitTraces ? undefined : []);
  const exporting =
    spanProcessors === undefined
      ? !(env.OTEL_TRACES_EXPORTER ?? "")
          .split(",")
          .map((s) => s.trim())
          .includes("none")
      : spanProcessors.length > 0;
  const logLevelName = set(env.OTEL_LOG_LEVEL) ? (env.OTEL_LOG_LEVEL as string) : "warn";

  const sdk = startNodeSdk({
    logLevel: logLevelName,
    ...(set(env.OTEL_SERVICE_NAME) ? {} : { resourceAttributes: { "service.name": options.serviceName } }),
    ...(spanProcessors !== undefined ? { spanProcessors } : {}),
    ...(set(env.OTEL_METRICS_EXPORTER) ? {} : { metricReaders: [] }),
    ...(set(env.OTEL_LOGS_EXPORTER) ? {} : { logRecordProcessors: [] }),
  });
  if (options.logger) {
    diag.setLogger(diagFromPino(options.logger), {
      logLevel: diagLogLevelFromString(logLevelName) ?? DiagLogLevel.WARN,
      suppressOverrideMessage: true,
    });
  }

  let stopped: Promise<void> | undefined;
  const telemetry: Telemetry = {
    enabled: true,
    exporting,
    shutdown() {
      stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const outcome = await Promise.race([
            sdk.shutdown().then(() => "done" as const),
            new Promise<"timeout">((resolve) => {
              timer = setTimeout(() => resolve("timeout"), options.shutdownTimeoutMs ?? 5000);
            }),
          ]);
          if (outcome === "timeout") options.logger?.warn("telemetry: final span export timed out; spans may be lost");
        } catch (err) {
          options.logger?.warn({ err }, "telemetry: final span export failed; spans may be lost");
        } finally {
          clearTimeout(timer);
          trace.disable();
          propagation.disable();
          context.disable();
          diag.disable();
          if (running === telemetry) running = undefined;
        }
      })();
      return stopped;
    },
  };
  running = telemetry;
  return telemetry;
}
