import { readFile } from "node:fs/promises";
import type { Interceptor } from "@connectrpc/connect";
import { domainError } from "../errors.js";

/**
 * Refuses mutating RPCs while a regional failover has frozen writes.
 *
 * The flag is the `writeFrozen` key of the runtime ConfigMap the operator writes (default
 * `<release>-nexus-runtime`), which the Helm chart mounts into every service pod at
 * /etc/nexus/runtime, so the file is /etc/nexus/runtime/writeFrozen and holds "true" or
 * "false" (kubelet refreshes mounted ConfigMaps within about a minute; the operator waits
 * NEXUS_FAILOVER_FREEZE_SETTLE_SECONDS before it goes on). A missing or unreadable file means
 * not frozen: a pod without the mount keeps working.
 *
 * While frozen, every RPC of a `nexus.*` service that is not read-only fails with UNAVAILABLE
 * reason WRITE_FROZEN and RetryInfo (clients retry after the failover); reads, health and
 * reflection keep working.
 */
export interface WriteFreezeOptions {
  /** The flag file. Default /etc/nexus/runtime/writeFrozen. */
  flagFile?: string;
  /** How often the file is re-read. Default 1000 ms. */
  pollMs?: number;
  /** RetryInfo sent with WRITE_FROZEN. Default 5000 ms. */
  retryAfterMs?: number;
}

/** The flag file's default path (the chart's mount of the runtime ConfigMap). */
export const DEFAULT_WRITE_FREEZE_FILE = "/etc/nexus/runtime/writeFrozen";

const READ_PREFIXES = ["Get", "List", "Watch", "Search", "Export", "Verify"];
const READ_METHODS = new Set(["WhoAmI", "Authenticate"]);

/** Whether an RPC only reads (by the API's naming: Get/List/Watch/Search/Export/Verify…, WhoAmI, Authenticate). */
export function isReadOnlyMethod(methodName: string): boolean {
  // A prefix counts only as a whole word: "Search" and "SearchCorpus" read, "Getaway" does not.
  return (
    READ_METHODS.has(methodName) || READ_PREFIXES.some((p) => methodName.startsWith(p) && /^([A-Z]|$)/.test(methodName.slice(p.length)))
  );
}

/** A running write freeze: its interceptor, the current state, and a way to stop polling. */
export interface WriteFreeze {
  /** Put it in the server's interceptor chain (`serverInterceptors({ extra: [freeze.interceptor] })`). */
  interceptor: Interceptor;
  /** Whether writes are frozen as last read. */
  frozen(): boolean;
  /** Reads the flag now (also done every pollMs). */
  refresh(): Promise<boolean>;
  /** Stops polling. */
  close(): void;
}

/** Starts watching the flag file and returns the interceptor. */
export function createWriteFreeze(options: WriteFreezeOptions = {}): WriteFreeze {
  const file = options.flagFile ?? DEFAULT_WRITE_FREEZE_FILE;
  const retryAfterMs = options.retryAfterMs ?? 5_000;
  let frozen = false;
  const refresh = async () => {
    try {
      frozen = (await readFile(file, "utf8")).trim().toLowerCase() === "true";
    } catch {
      frozen = false;
    }
    return frozen;
  };
  void refresh();
  const timer = setInterval(() => void refresh(), options.pollMs ?? 1_000);
  timer.unref();
  // Not an async function: while not frozen a call goes straight on, without a frame of its own.
  const interceptor: Interceptor = (next) => (req) => {
    if (frozen && req.service.typeName.startsWith("nexus.") && !isReadOnlyMethod(req.method.name)) {
      return Promise.reject(
        domainError(
          "WRITE_FROZEN",
          "writes are frozen during a regional failover; retry shortly",
          { service: req.service.typeName, method: req.method.name },
          { retryAfterMs },
        ),
      );
    }
    return next(req);
  };
  return { interceptor, frozen: () => frozen, refresh, close: () => clearInterval(timer) };
}
