import { Code, ConnectError } from "@connectrpc/connect";
import { type Logger, pino } from "pino";
import { Role } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { Plan, type Tenant } from "../../gen/nexus/auth/v1/tenant_pb.js";
import type { AuthApplication } from "../../services/auth/auth-application.js";
import { authSettingsFromConfig } from "../../services/auth/auth-settings.js";
import { createAuthApplication } from "../../services/auth/create-auth-application.js";
import { createNexusClient, type NexusClient } from "../../services/client/create-nexus-client.js";
import { loadConfig, type ServiceName } from "../../services/kernel/config.js";
import { errorMetadata, errorReason } from "../../services/kernel/errors.js";
import { readAll } from "../../services/kernel/events/event-store.js";
import type { RecordedEvent } from "../../services/kernel/events/ports.js";
import { type RunningNexus, startNexus } from "../../services/runtime/start-nexus.js";
import { createTestDatabase, TEST_LEXICAL_ONLY, type TestDatabase } from "./services.js";

/** A clock tests move by hand (starts at the wall clock). */
export interface ManualClock {
  now(): Date;
  advance(ms: number): void;
}

/** A clock starting now that only moves when told to. */
export function manualClock(start = Date.now()): ManualClock {
  let t = start;
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}

/** A running Nexus (in this process, on a fresh PostgreSQL database) with a platform key. */
export interface AuthHarness {
  nexus: RunningNexus;
  url: string;
  db: TestDatabase;
  /** The auth use cases on the same database (for setup that has no RPC, like the bootstrap). */
  app: AuthApplication;
  clock: ManualClock;
  platformKey: string;
  /** An SDK client with this key (gRPC protocol, so every streaming kind works). */
  client(apiKey?: string): NexusClient;
  /** A tenant created by the platform key, with an owner key. */
  tenant(plan?: Plan): Promise<{ tenant: Tenant; ownerKey: string; ownerKeyId: string }>;
  /** A key of a tenant with this role, created by the platform key. */
  key(tenantId: string, role: Role, name?: string): Promise<{ id: string; plaintext: string }>;
  /** Events in the store, oldest first, optionally of one type (short name, e.g. "AccessDenied"). */
  events(type?: string): Promise<RecordedEvent[]>;
  close(): Promise<void>;
}

/** Options of {@link startAuthHarness}. */
export interface AuthHarnessOptions {
  /** Extra environment for the configuration (e.g. NEXUS_API_KEY_INACTIVE_DAYS). */
  env?: Record<string, string>;
  /** Services to mount; default all. */
  services?: readonly ServiceName[];
  logger?: Logger;
}

let slugCounter = 0;

/** Starts Nexus in this process on a fresh database (local bus) and bootstraps a platform key. */
export async function startAuthHarness(options: AuthHarnessOptions = {}): Promise<AuthHarness> {
  const db = await createTestDatabase("nexus_auth");
  const clock = manualClock();
  const logger = options.logger ?? pino({ level: "silent" });
  const config = loadConfig({
    DATABASE_URL: db.url,
    NEXUS_HOST: "127.0.0.1",
    NEXUS_PORT: "0",
    NEXUS_DATA_DIR: "/nonexistent",
    LOG_LEVEL: "silent",
    OTEL_SDK_DISABLED: "true",
    // Vectors when the test PostgreSQL has pgvector (CI installs it), else full-text ranking.
    NEXUS_LEXICAL_ONLY: TEST_LEXICAL_ONLY,
    NEXUS_RATE_LIMIT_ENABLED: "false",
    ...options.env,
  });
  const nexus = await startNexus({
    config,
    services: options.services ?? ["auth", "metering", "ingestion", "retrieval", "agent", "modules", "integration"],
    logger,
    clock: clock.now,
  });
  const app = createAuthApplication({ db: nexus.db, logger, clock: clock.now, settings: authSettingsFromConfig(config) });
  const platform = await app.issuePlatformKey("bootstrap", "test platform", undefined);
  const url = `http://127.0.0.1:${nexus.address.port}`;
  const client = (apiKey?: string) =>
    createNexusClient({ baseUrl: url, protocol: "grpc", ...(apiKey ? { apiKey } : {}), timeoutMs: 15_000 });
  const ops = client(platform.plaintext);
  const key: AuthHarness["key"] = async (tenantId, role, name = "test") => {
    const res = await ops.auth.createApiKey({ tenantId, name, role });
    return { id: res.apiKey!.id, plaintext: res.plaintextKey };
  };
  return {
    nexus,
    url,
    db,
    app,
    clock,
    platformKey: platform.plaintext,
    client,
    key,
    async tenant(plan = Plan.PRO) {
      slugCounter += 1;
      const { tenant } = await ops.auth.createTenant({
        slug: `t${process.pid}-${Date.now().toString(36)}-${slugCounter}`,
        displayName: "Test tenant",
        plan,
      });
      const owner = await key(tenant!.id, Role.OWNER, "owner");
      return { tenant: tenant!, ownerKey: owner.plaintext, ownerKeyId: owner.id };
    },
    async events(type) {
      const out: RecordedEvent[] = [];
      let after = 0n;
      for (;;) {
        const batch = await readAll(nexus.db, after, 1000);
        out.push(...batch);
        if (batch.length < 1000) break;
        after = batch[batch.length - 1]!.position;
      }
      return type ? out.filter((e) => e.type === `nexus.events.v1.${type}`) : out;
    },
    async close() {
      await nexus.close();
      await db.drop();
    },
  };
}

/** The outcome of a call, for matrix assertions: "ok" or "<code> <reason>". */
export async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    const result = await call();
    if (result && typeof result === "object" && Symbol.asyncIterator in result) {
      for await (const _ of result as AsyncIterable<unknown>) break;
    }
    return "ok";
  } catch (err) {
    const ce = ConnectError.from(err);
    const reason = errorReason(ce);
    return `${Code[ce.code]}${reason ? ` ${reason}` : ""}`;
  }
}

/** The ConnectError a call fails with (fails the test when it succeeds). */
export async function failure(
  call: () => Promise<unknown>,
): Promise<{ code: string; reason: string | undefined; metadata: Record<string, string>; message: string }> {
  try {
    await call();
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: Code[ce.code] ?? String(ce.code), reason: errorReason(ce), metadata: errorMetadata(ce), message: ce.rawMessage };
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Passed the gate and the permission table (whatever the handler then said). */
export function passedAuthorization(result: string): boolean {
  return !result.startsWith("Unauthenticated") && !/PermissionDenied (RBAC_FORBIDDEN|TENANT_MISMATCH|TENANT_SUSPENDED)/.test(result);
}
