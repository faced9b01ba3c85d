import type { ConnectError } from "@connectrpc/connect";
import { errorMetadata, errorReason } from "../kernel/errors.js";

/** "permission_denied FEATURE_NOT_ENABLED: … (feature=…)" — an error as a person reads it. */
export function describeError(err: ConnectError): string {
  const reason = errorReason(err);
  const meta = Object.entries(errorMetadata(err))
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  const codeName = codeNames[err.code] ?? String(err.code);
  return `${codeName}${reason ? ` ${reason}` : ""}: ${err.rawMessage}${meta ? ` (${meta})` : ""}`;
}

const codeNames: Record<number, string> = {
  1: "canceled",
  2: "unknown",
  3: "invalid_argument",
  4: "deadline_exceeded",
  5: "not_found",
  6: "already_exists",
  7: "permission_denied",
  8: "resource_exhausted",
  9: "failed_precondition",
  10: "aborted",
  11: "out_of_range",
  12: "unimplemented",
  13: "internal",
  14: "unavailable",
  15: "data_loss",
  16: "unauthenticated",
};

/** Prints rows as an aligned table with a header line. */
export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  console.log(line(headers));
  for (const r of rows) console.log(line(r));
}
