import { createConnectRouter } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../../../gen/nexus/audit/v1/audit_service_pb.js";
import { MeteringService } from "../../../gen/nexus/metering/v1/metering_service_pb.js";
import { recordFacts } from "../commands/index.js";
import { loadConfig, type ServiceName } from "../config.js";
import { createPgliteDatabase } from "../db/pglite-database.js";
import type { Database } from "../db/ports.js";
import { createLocalEventBus } from "../events/local-bus.js";
import type { DeliveredEvent, EventBus } from "../events/ports.js";
import { createKeyring, newMasterKeyLine, parseMasterKeys } from "../keyring/index.js";
import { defineService, handle, type ServiceContext, type ServiceParts } from "./define-service.js";
import { mountService } from "./mount-service.js";

/** A two-role service, like knowledge: role "metering" serves one API, role "auth" the other. */
const twoRoles = defineService({
  name: "two-roles",
  apis: [MeteringService, AuditService],
  roles: { metering: { apis: [MeteringService] }, auth: { apis: [AuditService] } },
  migrations: [{ schema: "two_roles", migrations: [] }],
  build: () => ({ handlers: [handle(MeteringService, {}), handle(AuditService, {})] }),
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds (polling), failing after `ms`. */
async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(10);
  }
}

/** Request paths the server would route after registering the module. */
function routedPaths(register: (r: ReturnType<typeof createConnectRouter>) => void): string[] {
  const router = createConnectRouter();
  register(router);
  return router.handlers.map((h) => h.requestPath);
}

describe("mountService", () => {
  let db: Database;
  let bus: EventBus;

  const context = (roles: ServiceName[]): ServiceContext => {
    const config = loadConfig({});
    return {
      config,
      logger: pino({ level: "silent" }),
      db,
      bus,
      clock: () => new Date(),
      keyring: createKeyring({ db, masterKeys: parseMasterKeys(newMasterKeyLine(1), "test key") }),
      // These tests call no peer.
      peers: {
        url: () => {
          throw new Error("no peers here");
        },
        transport: () => {
          throw new Error("no peers here");
        },
      },
      roles: new Set(roles),
    };
  };

  beforeAll(async () => {
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
    await bus.start();
    await db.exec("CREATE SCHEMA IF NOT EXISTS two_roles");
  });
  afterAll(async () => {
    await bus.close();
    await db.close();
  });

  it("routes only the APIs of the roles this process hosts", () => {
    const both = mountService(twoRoles, context(["metering", "auth"]));
    const paths = routedPaths((r) => both.register(r));
    expect(paths.some((p) => p.startsWith(`/${MeteringService.typeName}/`))).toBe(true);
    expect(paths.some((p) => p.startsWith(`/${AuditService.typeName}/`))).toBe(true);

    const auditOnly = mountService(twoRoles, context(["auth", "agent"]));
    const only = routedPaths((r) => auditOnly.register(r));
    expect(only.length).toBeGreaterThan(0);
    expect(only.every((p) => p.startsWith(`/${AuditService.typeName}/`))).toBe(true);
    expect(auditOnly.name).toBe(AuditService.typeName);
  });

  it("refuses to mount a hosted API without a handler, and does not mind one it does not host", () => {
    const parts: ServiceParts = { handlers: [handle(MeteringService, {})] };
    expect(() => mountService(twoRoles, context(["metering", "auth"]), parts)).toThrow(
      `service two-roles has no handler for ${AuditService.typeName}`,
    );
    expect(() => mountService(twoRoles, context(["metering"]), parts)).not.toThrow();
  });

  it("starts the consumers in the background, reports them in readiness and drains them on shutdown", async () => {
    const seen: DeliveredEvent[] = [];
    let ownReady = false;
    const module = mountService(twoRoles, context(["metering"]), {
      handlers: [handle(MeteringService, {})],
      consumers: [{ name: "mount_test_notes", subject: "mount_test.>", handler: async (e) => void seen.push(e) }],
      readiness: async () => (ownReady ? { ready: true } : { ready: false, reason: "still warming up" }),
    });
    await module.started();
    // The service's own readiness speaks first …
    expect(await module.readiness()).toEqual({ ready: false, reason: "still warming up" });
    ownReady = true;
    // … then the consumers'.
    await until(() => bus.status().some((s) => s.name === "mount_test_notes" && s.healthy));
    expect(await module.readiness()).toEqual({ ready: true });

    const note = (n: number) => ({ type: "test.v1.Note", topic: "mount_test.noted", payload: { n } });
    await db.transaction((tx) => recordFacts(tx, "mount-test", [note(1)]));
    await until(() => seen.length === 1);

    await module.shutdown();
    expect(await module.readiness()).toEqual({ ready: false, reason: "consumers not started: mount_test_notes" });
    await db.transaction((tx) => recordFacts(tx, "mount-test", [note(2)]));
    await sleep(300);
    expect(seen.map((e) => (e.payload as { n: number }).n)).toEqual([1]);
  });

  it("drains the consumers even when the service's own shutdown fails", async () => {
    const module = mountService(twoRoles, context(["metering"]), {
      handlers: [handle(MeteringService, {})],
      consumers: [{ name: "mount_test_failing_shutdown", subject: "mount_test_other.>", handler: async () => {} }],
      shutdown: async () => {
        throw new Error("the service's own work did not stop cleanly");
      },
    });
    await module.started();
    await expect(module.shutdown()).rejects.toThrow(/did not stop cleanly/);
    expect(bus.status().some((s) => s.name === "mount_test_failing_shutdown")).toBe(false);
  });

  it("runs periodic tasks one at a time, survives a failing run, and waits for the running one on shutdown", async () => {
    let runs = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    let release!: () => void;
    let slowRunning = false;
    let failures = 0;
    const module = mountService(twoRoles, context(["metering"]), {
      handlers: [handle(MeteringService, {})],
      tasks: [
        {
          name: "slow sweep",
          intervalMs: 10,
          async run() {
            runs += 1;
            concurrent += 1;
            maxConcurrent = Math.max(maxConcurrent, concurrent);
            if (runs === 3) {
              // The third run hangs until the test lets it go.
              slowRunning = true;
              await new Promise<void>((r) => (release = r));
            }
            concurrent -= 1;
          },
        },
        {
          name: "broken sweep",
          intervalMs: 10,
          // Throws before returning a promise: must not escape the timer.
          run(): Promise<void> {
            failures += 1;
            throw new Error("broken");
          },
        },
      ],
    });
    await until(() => slowRunning && failures >= 3);
    await sleep(50);
    // Ticks that came while run 3 hung were skipped, not stacked up.
    expect(runs).toBe(3);

    let stopped = false;
    const shutdown = module.shutdown().then(() => (stopped = true));
    await sleep(50);
    expect(stopped).toBe(false);
    release();
    await shutdown;
    const after = runs;
    await sleep(60);
    expect(runs).toBe(after);
    expect(maxConcurrent).toBe(1);
  });

  it("defineService gives a one-role service its default role and refuses a role serving a foreign API", () => {
    const single = defineService({ name: "metering", apis: [MeteringService], migrations: [], build: () => ({ handlers: [] }) });
    expect(Object.keys(single.roles)).toEqual(["metering"]);
    expect(() =>
      defineService({
        name: "metering",
        apis: [MeteringService],
        roles: { metering: { apis: [AuditService] } },
        migrations: [],
        build: () => ({ handlers: [] }),
      }),
    ).toThrow(`service metering: role metering serves ${AuditService.typeName}, which is not among its apis`);
  });
});
