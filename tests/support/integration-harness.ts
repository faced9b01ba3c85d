import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { HandlerContext } from "@connectrpc/connect";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { createIntegrationParts, type IntegrationParts } from "../../services/integration/integration-parts.js";
import { integrationService } from "../../services/integration/server.js";
import { loadConfig } from "../../services/kernel/config.js";
import { principalKey, type TenantPrincipal } from "../../services/kernel/context.js";
import type { Database } from "../../services/kernel/db/ports.js";
import type { EventBus } from "../../services/kernel/events/ports.js";
import { createKeyring, type Keyring, keyringMigrations, newMasterKeyLine, parseMasterKeys } from "../../services/kernel/keyring/index.js";
import type { HttpRoute } from "../../services/kernel/server/service-module.js";
import {
  type MountedService,
  migrateSchemas,
  migrateService,
  mountService,
  type ServiceContext,
} from "../../services/kernel/service/index.js";
import { createPeers } from "../../services/runtime/peers.js";
import { testLogger } from "./metering-harness.js";

/** A tenant admin (or another role) of `tenantId`. */
export function integrationPrincipal(tenantId: string, role: TenantPrincipal["role"] = "admin"): TenantPrincipal {
  return {
    kind: "tenant",
    tenantId,
    keyId: `key-${tenantId}-${role}`,
    name: `${role} test key`,
    role,
    plan: "pro",
    entitlements: { features: [] },
  } as unknown as TenantPrincipal;
}

/** A handler context carrying `principal`. */
export function integrationContext(principal: TenantPrincipal): HandlerContext {
  const values = createContextValues();
  values.set(principalKey, principal);
  const method = Object.values(IntegrationService.method)[0] as (typeof IntegrationService.method)[keyof typeof IntegrationService.method];
  return createHandlerContext({
    service: IntegrationService,
    method,
    protocolName: "connect",
    requestMethod: "POST",
    url: "http://test.invalid/",
    contextValues: values,
  });
}

/** The integration service under test, mounted like `nexus serve --service integration`. */
export interface Integration {
  module: MountedService;
  parts: IntegrationParts;
  /** The keyring the service seals its secrets with (tests call `forget()` to drop its cache). */
  keyring: Keyring;
  /** Base URL of a plain HTTP server serving the service's httpRoutes (`/ingress`, `/execute/<id>`). */
  httpUrl: string;
  close(): Promise<void>;
}

/** Migrates and mounts integration on `db` and `bus`, with short retry delays; serves its HTTP routes. */
export async function openIntegration(db: Database, bus: EventBus, env: Record<string, string> = {}): Promise<Integration> {
  await bus.start();
  await migrateSchemas(db, [keyringMigrations]);
  await migrateService(integrationService, db);
  // Each instance is its own replica (its own MQTT sessions) unless the test names one.
  const config = loadConfig({
    NEXUS_INTEGRATION_RETRY_INITIAL_MS: "100",
    NEXUS_INTEGRATION_RETRY_MAX_MS: "400",
    NEXUS_INTEGRATION_REPLICA_ID: `test-${randomBytes(6).toString("hex")}`,
    ...env,
  });
  const keyring = createKeyring({ db, masterKeys: parseMasterKeys(newMasterKeyLine(1), "test key") });
  const ctx: ServiceContext = {
    config,
    logger: testLogger(),
    db,
    bus,
    clock: () => new Date(),
    keyring,
    peers: createPeers(config, [], () => undefined),
    roles: new Set(["integration"]),
  };
  const parts = createIntegrationParts(ctx, { reconcileIntervalMs: 200, tailIntervalMs: 50 });
  const module = mountService(integrationService, ctx, parts);
  await module.started();
  const routes = parts.httpRoutes ?? [];
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    const route = routes.find((r: HttpRoute) => (r.prefix ? path === r.path || path.startsWith(`${r.path}/`) : path === r.path));
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    void route.handle(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    module,
    parts,
    keyring,
    httpUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      await new Promise((r) => server.close(r));
      await module.shutdown();
    },
  };
}

/** One request a {@link Receiver} got. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

/** A local HTTP receiver (a REST destination) that can go down (its port closed) and come back. */
export interface Receiver {
  url: string;
  received: Received[];
  /** Answer with this status from now on (default 200). */
  status: number;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a receiver on `port` (from the suite's range). */
export async function startReceiver(port: number): Promise<Receiver> {
  const received: Received[] = [];
  let server: Server | undefined;
  const r: Receiver = {
    url: `http://127.0.0.1:${port}`,
    received,
    status: 200,
    async down() {
      const s = server;
      server = undefined;
      if (s) {
        s.closeAllConnections();
        await new Promise((res) => s.close(res));
      }
    },
    async up() {
      const s = createServer((req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            /* text */
          }
          if (r.status < 300) received.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
          res.writeHead(r.status, { "content-type": "application/json", connection: "close" }).end(JSON.stringify({ ok: r.status < 300 }));
        });
      });
      await new Promise<void>((res, rej) => {
        s.once("error", rej);
        s.listen(port, "127.0.0.1", () => res());
      });
      server = s;
    },
    close() {
      return r.down();
    },
  };
  await r.up();
  return r;
}
