/**
 * Redaction of audit details before they are stored: values under sensitive keys, at any
 * depth of objects and arrays, become "[REDACTED]", so the append-only log never holds a
 * secret it could not delete later.
 *
 * A key is sensitive when, written in snake_case (`apiKey` → `api_key`, `X-Api-Key` →
 * `x_api_key`), it is one of the sensitive names or ends with `_<name>` (`access_token`,
 * `client_secret`, `message_text`). Identifiers such as `key_id` or `content_sha256` stay.
 * Independently of keys, strings that look like a Nexus API key (`nxs_…_…`) or a bearer
 * credential are redacted wherever they appear.
 */

/** The marker stored instead of a sensitive value. */
export const REDACTED = "[REDACTED]";

/** The key names always redacted (the redaction policy clients of earlier deployments rely on). */
export const SENSITIVE_KEYS: readonly string[] = ["api_key", "authorization", "token", "secret", "password", "text", "content"];

/** A JSON value as stored in the audit log. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** `apiKey`, `API-Key`, `x-api-key` → `api_key`, `api_key`, `x_api_key`. */
export function snakeKey(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .replace(/[-\s.]+/g, "_")
    .toLowerCase();
}

/** True when a key's values must be redacted (see the module comment). */
export function isSensitiveKey(key: string, names: readonly string[] = SENSITIVE_KEYS): boolean {
  const k = snakeKey(key);
  return names.some((n) => k === n || k.endsWith(`_${n}`) || (n === "api_key" && k === "apikey"));
}

const CREDENTIAL = /\bnxs_[A-Za-z0-9-]+_[A-Za-z0-9_-]{8,}|\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/;

/**
 * A deep copy of `value` with sensitive values replaced by {@link REDACTED}. `extraKeys` adds
 * names (NEXUS_AUDIT_EXTRA_REDACT_KEYS). Non-JSON values (undefined, functions) are dropped;
 * bigints become decimal strings.
 */
export function redact(value: unknown, extraKeys: readonly string[] = []): JsonValue {
  const names = extraKeys.length > 0 ? [...SENSITIVE_KEYS, ...extraKeys.map(snakeKey)] : SENSITIVE_KEYS;
  const walk = (v: unknown, depth: number): JsonValue | undefined => {
    if (depth > 64) return REDACTED; // pathological nesting: store nothing we did not inspect
    if (v === null) return null;
    switch (typeof v) {
      case "string":
        return CREDENTIAL.test(v) ? REDACTED : v;
      case "number":
        return Number.isFinite(v) ? v : String(v);
      case "boolean":
        return v;
      case "bigint":
        return v.toString();
      case "object": {
        if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1) ?? null);
        if (v instanceof Date) return v.toISOString();
        const out: { [key: string]: JsonValue } = {};
        for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
          if (isSensitiveKey(k, names)) {
            if (x !== undefined) out[k] = REDACTED;
            continue;
          }
          const w = walk(x, depth + 1);
          if (w !== undefined) out[k] = w;
        }
        return out;
      }
      default:
        return undefined;
    }
  };
  return walk(value, 0) ?? null;
}
