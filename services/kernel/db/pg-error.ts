/** SQLSTATE codes Nexus reacts to (PostgreSQL appendix A). */
export const PG_ERRORS = {
  UNIQUE_VIOLATION: "23505",
  RESTRICT_VIOLATION: "23001",
  SERIALIZATION_FAILURE: "40001",
  DEADLOCK_DETECTED: "40P01",
} as const;

/** The SQLSTATE of a database error raised by either adapter (`pg` or PGlite), if any. */
export function pgErrorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The constraint named by a database error (unique, check, foreign key), if any. */
export function pgErrorConstraint(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const constraint = (err as { constraint?: unknown }).constraint;
  return typeof constraint === "string" ? constraint : undefined;
}
