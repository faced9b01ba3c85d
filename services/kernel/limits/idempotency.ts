import { createHash, hkdfSync } from "node:crypto";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Interceptor, UnaryResponse } from "@connectrpc/connect";
import type { Logger } from "pino";
import { principalKey, responseMetadataKey } from "../context.js";
import type { Database } from "../db/ports.js";
import { domainError } from "../errors.js";
import { isReadOnlyMethod } from "../interceptors/write-freeze.js";
import { openAesGcm, sealAesGcm } from "../keyring/aes-gcm.js";
import { counter } from "../metrics.js";

/** The request header naming an idempotency key. */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
/** The response header of an answer replayed from a stored one. */
export const IDEMPOTENCY_REPLAYED_HEADER = "idempotency-replayed";

/** 1–128 printable ASCII characters, not blank. */
const VALID_KEY = /^[\x20-\x7e]{1,128}$/;

/** `nexus_idempotency_requests_total{outcome}`: calls carrying an idempotency key, by outcome. */
export const idempotencyRequests = counter<"outcome">(
  "nexus_idempotency_requests_total",
  "Mutating calls carrying an idempotency-key header, by outcome: executed, replayed, conflict, in_progress.",
  ["outcome"],
);

/** Options of {@link createIdempotency}. */
export interface IdempotencyOptions {
  db: Database;
  logger: Logger;
  /** How long a key's answer is kept. Default 24 h. */
  ttlMs?: number;
  /** How long a duplicate waits for the first call still running before ABORTED IDEMPOTENCY_IN_PROGRESS. Default 10 s. */
  waitMs?: number;
  /** How long a running call holds its key before a retry may take over (its process died). Default 5 min. */
  leaseMs?: number;
  /** How often expired keys are deleted. Default 10 min; 0 = never (tests). */
  sweepIntervalMs?: number;
}

/** A running idempotency layer: its interceptor, the sweep, and a way to stop it. */
export interface Idempotency {
  interceptor: Interceptor;
  /** Deletes expired keys now; returns how many. */
  sweep(): Promise<number>;
  close(): void;
}

interface KeyRow {
  request_sha256: Uint8Array;
  state: "running" | "done";
  response: Uint8Array | null;
}

/**
 * The answer is stored encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from the
 * caller's own credential: a stored answer that carries a secret (a new API key) is unreadable
 * to anyone holding the database but not the caller's key, and only the same caller can replay it.
 */
function answerKey(credential: string, scope: string, method: string, key: string): Buffer {
  return Buffer.from(hkdfSync("sha256", credential, "nexus.idempotency.v1", `${scope}\n${method}\n${key}`, 32));
}

/**
 * Idempotency keys for every mutating unary RPC: a client sends `idempotency-key` (1–128
 * printable characters, else INVALID_ARGUMENT INVALID_IDEMPOTENCY_KEY), scoped to its tenant,
 * its API key and the method, kept `ttlMs` (24 h):
 * - same key, same request → the stored answer, with `idempotency-replayed: true`;
 * - same key, different request → ALREADY_EXISTS IDEMPOTENCY_KEY_CONFLICT;
 * - same key while the first call still runs → waits for it (up to `waitMs`), then ABORTED
 *   IDEMPOTENCY_IN_PROGRESS with RetryInfo — the call never runs twice.
 * A call that fails stores nothing (a retry runs it again). Streaming RPCs refuse the header
 * (INVALID_ARGUMENT IDEMPOTENCY_NOT_SUPPORTED); read-only RPCs ignore it. Records live in
 * `platform.idempotency_keys`, answers encrypted (see {@link answerKey}).
 *
 * Known limit: a process that dies after its call committed but before it stored the answer
 * leaves the key "running" until its lease ends; a retry after that runs the call again.
 */
export function createIdempotency(options: IdempotencyOptions): Idempotency {
  const { db, logger } = options;
  const ttlMs = options.ttlMs ?? 24 * 3600_000;
  const waitMs = options.waitMs ?? 10_000;
  const leaseMs = options.leaseMs ?? 300_000;
  const sweep = async (): Promise<number> => {
    const { rowCount } = await db.query(
      `DELETE FROM platform.idempotency_keys WHERE ctid IN
         (SELECT ctid FROM platform.idempotency_keys WHERE expires_at < now() LIMIT 10000)`,
    );
    return rowCount;
  };
  const interval = options.sweepIntervalMs ?? 600_000;
  const timer =
    interval > 0
      ? setInterval(() => void sweep().catch((err: unknown) => logger.warn({ err }, "idempotency key sweep failed")), interval)
      : undefined;
  timer?.unref();

  // Not an async function: a call without a key (or a read) goes straight on, without a frame of its own.
  const interceptor: Interceptor = (next) => (req) => {
    const key = req.header.get(IDEMPOTENCY_KEY_HEADER);
    if (key === null || !req.service.typeName.startsWith("nexus.") || isReadOnlyMethod(req.method.name)) return next(req);
    return keyed(next, req, key);
  };

  async function keyed(
    next: Parameters<Interceptor>[0],
    req: Parameters<ReturnType<Interceptor>>[0],
    key: string,
  ): ReturnType<ReturnType<Interceptor>> {
    if (!VALID_KEY.test(key) || key.trim() === "") {
      throw domainError("INVALID_IDEMPOTENCY_KEY", "the idempotency-key header must be 1 to 128 printable ASCII characters", {
        header: IDEMPOTENCY_KEY_HEADER,
      });
    }
    const principal = req.contextValues.get(principalKey);
    const method = `${req.service.typeName}/${req.method.name}`;
    if (req.stream) {
      throw domainError(
        "IDEMPOTENCY_NOT_SUPPORTED",
        `${method} is a streaming RPC and cannot replay its answer: send it without the idempotency-key header`,
        { header: IDEMPOTENCY_KEY_HEADER, method },
      );
    }
    if (principal === undefined) return next(req);
    const scope = principal.kind === "tenant" ? `tenant:${principal.tenantId}/key:${principal.keyId}` : `platform/key:${principal.keyId}`;
    const requestHash = createHash("sha256").update(toBinary(req.method.input, req.message)).digest();
    const sealKey = answerKey(req.header.get("authorization") ?? principal.keyId, scope, method, key);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const claimed = await db.query<{ mine: boolean }>(
        `INSERT INTO platform.idempotency_keys (scope, method, key, request_sha256, state, locked_until, expires_at)
         VALUES ($1, $2, $3, $4, 'running', now() + $5 * interval '1 millisecond', now() + $6 * interval '1 millisecond')
         ON CONFLICT (scope, method, key) DO UPDATE SET
           request_sha256 = EXCLUDED.request_sha256, state = 'running', response = NULL,
           locked_until = EXCLUDED.locked_until, created_at = now(), expires_at = EXCLUDED.expires_at
         WHERE platform.idempotency_keys.expires_at < now()
            OR (platform.idempotency_keys.state = 'running' AND platform.idempotency_keys.locked_until < now()
                AND platform.idempotency_keys.request_sha256 = EXCLUDED.request_sha256)
         RETURNING true AS mine`,
        [scope, method, key, requestHash, leaseMs, ttlMs],
      );
      if (claimed.rows.length > 0) {
        let res: UnaryResponse;
        try {
          res = (await next(req)) as UnaryResponse;
        } catch (err) {
          await db
            .query("DELETE FROM platform.idempotency_keys WHERE scope = $1 AND method = $2 AND key = $3 AND state = 'running'", [
              scope,
              method,
              key,
            ])
            .catch((e: unknown) => logger.warn({ err: e }, "could not release an idempotency key after a failed call"));
          throw err;
        }
        idempotencyRequests.inc({ outcome: "executed" });
        const sealed = sealAesGcm(sealKey, toBinary(req.method.output, res.message));
        await db
          .query(
            `UPDATE platform.idempotency_keys SET state = 'done', response = $4, locked_until = now()
             WHERE scope = $1 AND method = $2 AND key = $3`,
            [scope, method, key, sealed],
          )
          .catch((err: unknown) =>
            logger.warn({ err, method }, "could not store the answer of an idempotent call; a retry after its lease runs it again"),
          );
        return res;
      }
      const { rows } = await db.query<KeyRow>(
        "SELECT request_sha256, state, response FROM platform.idempotency_keys WHERE scope = $1 AND method = $2 AND key = $3",
        [scope, method, key],
      );
      const row = rows[0];
      if (row === undefined) continue; // released by a failed first call meanwhile: claim it
      if (!Buffer.from(row.request_sha256).equals(requestHash)) {
        idempotencyRequests.inc({ outcome: "conflict" });
        throw domainError(
          "IDEMPOTENCY_KEY_CONFLICT",
          `idempotency key "${key}" was already used for a different ${req.method.name} request in the last ${Math.round(ttlMs / 3600_000)} h: use a new key for a new request`,
          { header: IDEMPOTENCY_KEY_HEADER, method },
        );
      }
      if (row.state === "done" && row.response) {
        idempotencyRequests.inc({ outcome: "replayed" });
        const message = fromBinary(req.method.output, openAesGcm(sealKey, row.response));
        // The call's own header and trailer objects (the protocol's content type, grpc-status):
        // a response with new ones would replace them.
        const own = req.contextValues.get(responseMetadataKey);
        const header = own?.header ?? new Headers({ "content-type": req.header.get("content-type") ?? "" });
        header.set(IDEMPOTENCY_REPLAYED_HEADER, "true");
        return {
          stream: false,
          service: req.service,
          method: req.method,
          header,
          trailer: own?.trailer ?? new Headers(),
          message,
        } as UnaryResponse;
      }
      if (Date.now() >= deadline) {
        idempotencyRequests.inc({ outcome: "in_progress" });
        throw domainError(
          "IDEMPOTENCY_IN_PROGRESS",
          `a ${req.method.name} request with idempotency key "${key}" is still running; retry shortly to get its answer`,
          { header: IDEMPOTENCY_KEY_HEADER, method },
          { retryAfterMs: 1000 },
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  return {
    interceptor,
    sweep,
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
