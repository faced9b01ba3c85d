import { domainError } from "../../kernel/errors.js";

/** The quota and usage periods: UTC calendar days and months. */
export type PeriodKind = "day" | "month";

/** Both periods, day first (the order windows are reported in). */
export const PERIOD_KINDS: readonly PeriodKind[] = ["day", "month"];

const DAY_MS = 86_400_000;

/** First instant (UTC) of the period of `kind` containing `at`. */
export function periodStart(kind: PeriodKind, at: Date): Date {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  return kind === "day" ? new Date(Date.UTC(y, m, at.getUTCDate())) : new Date(Date.UTC(y, m, 1));
}

/** First instant after the period of `kind` that starts at `start`: when its counters reset. */
export function periodEnd(kind: PeriodKind, start: Date): Date {
  return kind === "day" ? new Date(start.getTime() + DAY_MS) : new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
}

/** `YYYY-MM-DD` of a date's UTC day. */
export function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * Parses `YYYY-MM-DD` as a UTC midnight, or undefined when it is not a real calendar date
 * (2025-02-30, 2025-13-01). The proto's pattern only checks the shape; this is the rest.
 */
export function parseIsoDate(s: string): Date | undefined {
  const m = ISO_DATE.exec(s);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return undefined;
  return date;
}

/** Like {@link parseIsoDate}, but an invalid date fails with INVALID_ARGUMENT naming `field`. */
export function requireIsoDate(s: string, field: string): Date {
  const d = parseIsoDate(s);
  if (d === undefined) throw domainError("INVALID_ARGUMENT", `${field} "${s}" is not a calendar date (YYYY-MM-DD)`, { field });
  return d;
}

/** Longest range GetUsageHistory answers, in days (inclusive count). */
export const MAX_HISTORY_DAYS = 366;

/**
 * The days from `start` to `end` inclusive (UTC midnights). Fails with INVALID_ARGUMENT when
 * `end` is before `start` or the range has more than {@link MAX_HISTORY_DAYS} days.
 */
export function daysBetween(start: Date, end: Date): Date[] {
  const count = Math.round((end.getTime() - start.getTime()) / DAY_MS) + 1;
  if (count < 1) throw domainError("INVALID_ARGUMENT", "end_date must not be before start_date", { field: "end_date" });
  if (count > MAX_HISTORY_DAYS) {
    throw domainError("INVALID_ARGUMENT", `the range spans ${count} days; at most ${MAX_HISTORY_DAYS} are allowed`, {
      field: "end_date",
      max_days: MAX_HISTORY_DAYS,
    });
  }
  return Array.from({ length: count }, (_, i) => new Date(start.getTime() + i * DAY_MS));
}
