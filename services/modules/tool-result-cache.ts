import type { JsonObject } from "@bufbuild/protobuf";

/**
 * Tool results cached per module version (REQ-029), in memory on each replica: a module opts
 * in with `cache_ttl_seconds`, and the key names the tenant, module, version, tool and the
 * input's JSON — so an activation or rollback never serves a result of another version. At
 * most `maxEntries` results; the oldest go first.
 */
export class ToolResultCache {
  private readonly entries = new Map<string, { output: JsonObject; expiresAt: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The key of one call. */
  static key(tenantId: string, module: string, version: string, tool: string, input: JsonObject): string {
    return JSON.stringify([tenantId, module, version, tool, canonical(input)]);
  }

  /** A fresh cached output, or undefined. */
  get(key: string): JsonObject | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.output;
  }

  /** Keeps `output` for `ttlSeconds` (0: not kept). */
  set(key: string, output: JsonObject, ttlSeconds: number): void {
    if (ttlSeconds <= 0 || this.maxEntries <= 0) return;
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.entries.set(key, { output, expiresAt: this.now() + ttlSeconds * 1000 });
  }
}

/** JSON with object keys sorted, so equal inputs make equal keys. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
