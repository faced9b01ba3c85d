/**
 * The operator against Kubernetes' real CRD API server for Tenants, Quotas and its CRDs, and the
 * stand-in for the core kinds the real server does not serve (Secrets, Events, Leases,
 * ConfigMaps), joined behind one kubeconfig (tests/support/kube-cluster.ts), and a real
 * `nexus dev` process for the Nexus side. Nothing of the operator is mocked.
 *
 * The platform key is installed in the dev process from its digest, as the chart does. Tenant
 * keys are used as a client would use them (WhoAmI, agent runs through the SDK), so Ready,
 * Suspended and SoftCapReached are checked against what Nexus really does.
 */

import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import pino from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan, TenantStatus } from "../gen/nexus/auth/v1/tenant_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { HardCapMode, Period, QuotaSource } from "../gen/nexus/metering/v1/quota_pb.js";
import { loadOperatorConfig } from "../operator/config.js";
import { nexusCrds } from "../operator/crds/index.js";
import { type RunningOperator, runOperator } from "../operator/run-operator.js";
import { createNexusClient, type NexusClient } from "../services/client/index.js";
import { errorReason } from "../services/kernel/errors.js";
import { crdApiServerAvailable, describeWithCrdApiServer } from "./support/crd-apiserver.js";
import { eventually } from "./support/eventually.js";
import { KubeCluster } from "./support/kube-cluster.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";

const NS = "team-a";
let kube: KubeCluster;
let operator: RunningOperator;
const dir = mkdtempSync(join(tmpdir(), "nexus-k8s-"));

// The platform key the operator acts with, installed in Nexus from its digest exactly as the
// Helm chart does it (NEXUS_BOOTSTRAP_KEY_ID + NEXUS_BOOTSTRAP_KEY_SHA256).
const platformKeyId = randomBytes(12).toString("hex");
const platformKey = `nxs_${platformKeyId}_${randomBytes(32).toString("base64url")}`;

let nexus: NexusProcess;
let platform: NexusClient;

type Obj = Record<string, any>;
const condition = (obj: Obj | undefined, type: string): Obj | undefined => obj?.status?.conditions?.find((c: Obj) => c.type === type);

/** Waits until the object's Ready condition is True for its current generation. */
const readyAtGeneration = (plural: string, name: string, namespace = NS, timeoutMs = 30_000): Promise<Obj> =>
  eventually(
    `${plural}/${name} Ready at its generation`,
    async () => {
      const o = await kube.get(plural, namespace, name);
      const ready = condition(o, "Ready");
      return ready?.status === "True" && ready.observedGeneration === o?.metadata.generation ? o : undefined;
    },
    timeoutMs,
  );
const refusal = (call: Promise<unknown>): Promise<ConnectError | undefined> =>
  call.then(
    () => undefined,
    (err: unknown) => ConnectError.from(err),
  );
const eventReasons = (name: string, namespace = NS): string[] =>
  kube.standin
    .list("events", namespace)
    .filter((e) => e.involvedObject.name === name)
    .map((e) => e.reason);

/**
 * Waits until the operator recorded an Event with `reason` for `name`: it records Events after it
 * writes the status a test waits for, so reading them at once would race it.
 */
const expectEvent = async (name: string, reason: string, namespace = NS): Promise<void> => {
  await eventually(`a ${reason} Event for ${name}`, () => eventReasons(name, namespace).includes(reason), 10_000);
  expect(eventReasons(name, namespace)).toContain(reason);
};

/** The plaintext key the operator wrote into a Secret (what an application mounts). */
const secretKey = (name: string): string | undefined => {
  const data = kube.standin.get("secrets", NS, name)?.data;
  return data ? Buffer.from(data.apiKey, "base64").toString("utf8") : undefined;
};
const whoAmI = (key: string) => createNexusClient({ baseUrl: nexus.url, apiKey: key }).auth.whoAmI({});

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text();
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) total += Number(line.split(" ").pop());
  }
  return total;
}

beforeAll(async () => {
  if (!crdApiServerAvailable) return; // the suites skip (or fail under NEXUS_REQUIRE_SERVICES=1)
  nexus = await startNexus({
    args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", join(dir, "data")],
    env: { NEXUS_BOOTSTRAP_KEY_ID: platformKeyId, NEXUS_BOOTSTRAP_KEY_SHA256: createHash("sha256").update(platformKey).digest("hex") },
  });
  platform = createNexusClient({ baseUrl: nexus.url, apiKey: platformKey });
  kube = await KubeCluster.start(dir, { compactable: true });
  const config = loadOperatorConfig(
    {
      NEXUS_OPERATOR_PLATFORM_KEY: platformKey,
      NEXUS_AUTH_URL: nexus.url,
      NEXUS_METERING_URL: nexus.url,
      NEXUS_OPERATOR_NAMESPACE: "nexus-system",
      NEXUS_OPERATOR_IDENTITY: "operator-test-0",
      // Usage is mirrored into status on each resync: short here so a test sees the soft cap
      // within seconds instead of the default minute.
      NEXUS_OPERATOR_RESYNC_SECONDS: "2",
    },
    { kubeconfig: kube.writeKubeconfig(dir), port: 0 },
  );
  operator = await runOperator(config, pino({ level: "silent" }));
  await eventually("the operator to lead", async () => operator.isLeader());
}, 90_000);

afterAll(async () => {
  await operator?.stop();
  await nexus?.stop();
  await kube?.close();
  rmSync(dir, { recursive: true, force: true });
});

describeWithCrdApiServer("operator start-up", () => {
  it("applies its CRDs server-side so upgrades reach them", async () => {
    for (const crd of nexusCrds()) {
      const stored = await kube.get("customresourcedefinitions", undefined, crd.metadata.name);
      // The API server defaults the conversion strategy; everything else is as the operator applied it.
      expect(stored?.spec).toEqual({ ...crd.spec, conversion: { strategy: "None" } });
      await eventually(`${crd.metadata.name} Established`, async () =>
        (await kube.get("customresourcedefinitions", undefined, crd.metadata.name))?.status?.conditions?.some(
          (c: Obj) => c.type === "Established" && c.status === "True",
        ),
      );
    }
    const applies = kube.requests.filter((r) => r.method === "PATCH" && r.path.includes("/customresourcedefinitions/"));
    expect(applies).toHaveLength(nexusCrds().length);
    for (const r of applies) {
      expect(r.contentType).toBe("application/apply-patch+yaml");
      expect(r.path).toContain("fieldManager=nexus-operator");
      expect(r.path).toContain("force=true");
    }
  });

  it("holds the leader Lease and creates the runtime flags ConfigMap", async () => {
    const lease = kube.standin.get("leases", "nexus-system", "nexus-operator-leader");
    expect(lease?.spec.holderIdentity).toBe("operator-test-0");
    const flags = await eventually("the runtime ConfigMap", async () => kube.standin.get("configmaps", "nexus-system", "nexus-runtime"));
    expect(flags.data).toMatchObject({ writeFrozen: "false" });
  });

  it("serves /healthz, /readyz and /metrics", async () => {
    expect((await fetch(`http://127.0.0.1:${operator.port}/healthz`)).status).toBe(200);
    const ready = await eventually("readyz 200", async () =>
      (await fetch(`http://127.0.0.1:${operator.port}/readyz`)).status === 200 ? true : undefined,
    );
    expect(ready).toBe(true);
    const text = await metrics();
    expect(text).toContain("# TYPE nexus_operator_reconcile_total counter");
    expect(text).toContain("nexus_operator_leader 1");
  });
});

describeWithCrdApiServer("Tenant (auth service)", () => {
  const tenantObj = (name: string, spec: Obj) => ({
    apiVersion: "nexus.dev/v1alpha1",
    kind: "Tenant",
    metadata: { name, namespace: NS },
    spec,
  });

  it("becomes Ready only once its key, written to its Secret, authenticates as the tenant", async () => {
    await kube.apply(
      tenantObj("gamma", {
        slug: "gamma",
        displayName: "Gamma",
        plan: "pro",
        apiKeys: [{ name: "ci", role: "admin", secretName: "gamma-ci" }],
      }),
    );
    const t = await eventually(
      "Tenant gamma Ready",
      async () => {
        const o = await kube.get("tenants", NS, "gamma");
        return condition(o, "Ready")?.status === "True" ? o : undefined;
      },
      30_000,
    );
    expect(t.status.phase).toBe("Ready");
    expect(t.status.observedGeneration).toBe(t.metadata.generation);
    expect(condition(t, "Degraded")?.status).toBe("False");
    expect(t.status.apiKeys).toEqual([expect.objectContaining({ name: "ci", secretName: "gamma-ci", authenticated: true })]);
    const key = secretKey("gamma-ci");
    expect(key).toMatch(/^nxs_/);
    const me = await whoAmI(key ?? "");
    expect(me.principal?.tenantId).toBe(t.status.tenantId);
    expect(me.principal?.tenantSlug).toBe("gamma");
    const remote = await platform.auth.getTenant({ selector: { case: "slug", value: "gamma" } });
    expect(remote.tenant?.displayName).toBe("Gamma");
    const events = kube.standin
      .list("events", NS)
      .filter((e) => e.involvedObject.name === "gamma")
      .map((e) => e.reason);
    expect(events).toContain("ApiKeyIssued");
  }, 60_000);

  it("never rewrites the Secret on resync, and rotates the key when the rotation annotation changes", async () => {
    const before = kube.standin.get("secrets", NS, "gamma-ci");
    const oldKey = secretKey("gamma-ci") ?? "";
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "gamma", namespace: NS, annotations: { "unrelated.example/x": "1" } },
    });
    await eventually("a reconcile after the annotation", async () =>
      kube.requests.some((r) => r.method === "GET" && r.path.endsWith(`/namespaces/${NS}/secrets/gamma-ci`)),
    );
    expect(kube.standin.get("secrets", NS, "gamma-ci")?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);

    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "gamma", namespace: NS, annotations: { "rotate.nexus.dev/ci": "2025-01-01" } },
    });
    const newKey = await eventually(
      "a new key in the Secret",
      async () => {
        const k = secretKey("gamma-ci");
        return k && k !== oldKey ? k : undefined;
      },
      30_000,
    );
    const t = await eventually(
      "status to record the rotation",
      async () => {
        const o = await kube.get("tenants", NS, "gamma");
        return o?.status?.apiKeys?.[0]?.rotation === "2025-01-01" && condition(o, "Ready")?.status === "True" ? o : undefined;
      },
      30_000,
    );
    expect((await whoAmI(newKey)).principal?.tenantId).toBe(t.status.tenantId);
    expect(kube.standin.get("secrets", NS, "gamma-ci")?.metadata.annotations["nexus.dev/api-key-id"]).toBe(t.status.apiKeys[0].keyId);
  }, 60_000);

  it("refuses to overwrite a Secret it did not write (Degraded SecretConflict)", async () => {
    await kube.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "someone-elses", namespace: NS },
      data: { token: Buffer.from("x").toString("base64") },
    });
    await kube.apply(
      tenantObj("delta", {
        slug: "delta",
        displayName: "Delta",
        plan: "free",
        apiKeys: [{ name: "app", role: "viewer", secretName: "someone-elses" }],
      }),
    );
    const t = await eventually(
      "Tenant delta Degraded",
      async () => {
        const o = await kube.get("tenants", NS, "delta");
        return condition(o, "Degraded")?.status === "True" ? o : undefined;
      },
      30_000,
    );
    expect(condition(t, "Degraded")?.reason).toBe("SecretConflict");
    expect(condition(t, "Ready")?.status).toBe("False");
    expect(kube.standin.get("secrets", NS, "someone-elses")?.data).toEqual({ token: Buffer.from("x").toString("base64") });
  }, 60_000);

  it("spec.suspended suspends the tenant in Nexus (its key is refused with TENANT_SUSPENDED) and un-suspending makes the key work again", async () => {
    // Created suspended: the tenant and its key exist, but the key must not work.
    await kube.apply(
      tenantObj("eta", {
        slug: "eta",
        displayName: "Eta",
        plan: "free",
        suspended: true,
        apiKeys: [{ name: "app", role: "editor", secretName: "eta-app" }],
      }),
    );
    const suspended = await eventually(
      "Tenant eta Suspended",
      async () => {
        const o = await kube.get("tenants", NS, "eta");
        return o?.status?.phase === "Suspended" ? o : undefined;
      },
      30_000,
    );
    expect(condition(suspended, "Ready")).toMatchObject({ status: "False", reason: "Suspended" });
    expect(condition(suspended, "Degraded")?.status).toBe("False");
    const remote = await platform.auth.getTenant({ selector: { case: "slug", value: "eta" } });
    expect(remote.tenant?.id).toBe(suspended.status.tenantId);
    expect(remote.tenant?.status).toBe(TenantStatus.SUSPENDED);
    const key = secretKey("eta-app") ?? "";
    expect(key).toMatch(/^nxs_/);
    const refused = await refusal(whoAmI(key));
    expect(refused?.code).toBe(Code.PermissionDenied);
    expect(errorReason(refused)).toBe("TENANT_SUSPENDED");
    await expectEvent("eta", "TenantSuspended");

    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "eta", namespace: NS },
      spec: { suspended: false },
    });
    const resumed = await eventually(
      "Tenant eta Ready again",
      async () => {
        const o = await kube.get("tenants", NS, "eta");
        return condition(o, "Ready")?.status === "True" && o?.status?.observedGeneration === o?.metadata.generation ? o : undefined;
      },
      30_000,
    );
    expect(resumed.status.phase).toBe("Ready");
    expect(resumed.status.apiKeys).toEqual([expect.objectContaining({ name: "app", authenticated: true })]);
    // The same key as before: resuming gives the tenant its keys back, nothing is re-issued.
    expect(secretKey("eta-app")).toBe(key);
    expect((await whoAmI(key)).principal?.tenantId).toBe(resumed.status.tenantId);
    expect((await platform.auth.getTenant({ selector: { case: "slug", value: "eta" } })).tenant?.status).toBe(TenantStatus.ACTIVE);
    await expectEvent("eta", "TenantResumed");
  }, 60_000);

  it("applies a role change in the spec to the key the application holds (SetApiKeyRole), and Ready checks the role", async () => {
    await kube.apply(
      tenantObj("kappa", {
        slug: "kappa",
        displayName: "Kappa",
        plan: "pro",
        apiKeys: [{ name: "app", role: "viewer", secretName: "kappa-app" }],
      }),
    );
    await readyAtGeneration("tenants", "kappa");
    const key = secretKey("kappa-app") ?? "";
    expect((await whoAmI(key)).principal?.role).toBe(Role.VIEWER);

    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "kappa", namespace: NS },
      spec: { apiKeys: [{ name: "app", role: "editor", secretName: "kappa-app" }] },
    });
    const t = await readyAtGeneration("tenants", "kappa");
    expect(t.metadata.generation).toBe(2);
    // The same key, now with the new role: nothing to redeploy.
    expect(secretKey("kappa-app")).toBe(key);
    expect((await whoAmI(key)).principal?.role).toBe(Role.EDITOR);
    await expectEvent("kappa", "ApiKeyRoleChanged");
  }, 60_000);

  it("renames the tenant in Nexus when spec.displayName changes, and puts back a rename made outside Kubernetes", async () => {
    await kube.apply(tenantObj("theta", { slug: "theta", displayName: "Theta", plan: "enterprise" }));
    await readyAtGeneration("tenants", "theta");
    const displayName = async () => (await platform.auth.getTenant({ selector: { case: "slug", value: "theta" } })).tenant?.displayName;
    expect(await displayName()).toBe("Theta");

    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "theta", namespace: NS },
      spec: { displayName: "Theta Research" },
    });
    const t = await readyAtGeneration("tenants", "theta");
    expect(t.metadata.generation).toBe(2);
    expect(await displayName()).toBe("Theta Research");
    expect(eventReasons("theta").filter((r) => r === "DisplayNameChanged")).toHaveLength(1);
    // Later resyncs find the name already right and change nothing.
    const verified = t.status.lastVerifiedAt as string;
    await eventually(
      "a later resync of theta",
      async () => {
        const o = await kube.get("tenants", NS, "theta");
        return o?.status?.lastVerifiedAt && o.status.lastVerifiedAt !== verified ? o : undefined;
      },
      30_000,
    );
    expect(eventReasons("theta").filter((r) => r === "DisplayNameChanged")).toHaveLength(1);

    // The spec is the source of truth: a rename made with the API is undone at the next resync.
    await platform.auth.updateTenant({
      tenantId: t.status.tenantId,
      displayName: "Renamed by hand",
      updateMask: { paths: ["display_name"] },
    });
    await eventually("the spec's name back in Nexus", async () => (await displayName()) === "Theta Research", 30_000);
  }, 60_000);

  it("revokes the old key and deletes its Secret when the spec moves the key to another Secret", async () => {
    const oldKey = secretKey("kappa-app") ?? "";
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "kappa", namespace: NS },
      spec: { apiKeys: [{ name: "app", role: "editor", secretName: "kappa-app-v2" }] },
    });
    const t = await eventually(
      "status to name the new Secret",
      async () => {
        const o = await kube.get("tenants", NS, "kappa");
        return condition(o, "Ready")?.status === "True" && o?.status?.apiKeys?.[0]?.secretName === "kappa-app-v2" ? o : undefined;
      },
      30_000,
    );
    const newKey = secretKey("kappa-app-v2") ?? "";
    expect(newKey).not.toBe(oldKey);
    expect((await whoAmI(newKey)).principal?.tenantId).toBe(t.status.tenantId);
    expect(errorReason(await refusal(whoAmI(oldKey)))).toBe("AUTH_REVOKED_KEY");
    expect(kube.standin.get("secrets", NS, "kappa-app")).toBeUndefined();
    await expectEvent("kappa", "ApiKeyRevoked");
  }, 60_000);

  it("issues a new key into a Secret someone deleted and revokes the lost one", async () => {
    const lostKey = secretKey("kappa-app-v2") ?? "";
    kube.standin.delete("secrets", NS, "kappa-app-v2");
    // The operator watches the Secrets it wrote: it notices at once.
    const newKey = await eventually(
      "a new key in the re-created Secret",
      async () => {
        const k = secretKey("kappa-app-v2");
        return k && k !== lostKey ? k : undefined;
      },
      30_000,
    );
    await eventually("the lost key to be refused", async () => errorReason(await refusal(whoAmI(lostKey))) === "AUTH_REVOKED_KEY", 30_000);
    expect((await whoAmI(newKey)).principal?.tenantSlug).toBe("kappa");
    const newKeyId = kube.standin.get("secrets", NS, "kappa-app-v2")?.metadata.annotations["nexus.dev/api-key-id"];
    await eventually(
      "status to record the new key",
      async () => {
        const o = await kube.get("tenants", NS, "kappa");
        return condition(o, "Ready")?.status === "True" && o?.status?.apiKeys?.[0]?.keyId === newKeyId;
      },
      30_000,
    );
  }, 60_000);

  it("reports a key revoked outside Kubernetes (Ready False, with the way out), and the rotation annotation issues a new one", async () => {
    const keyId = (await kube.get("tenants", NS, "kappa"))?.status.apiKeys[0].keyId as string;
    await platform.auth.revokeApiKey({ keyId, reason: "leaked in a CI log" });
    const t = await eventually(
      "Tenant kappa not Ready",
      async () => {
        const o = await kube.get("tenants", NS, "kappa");
        return condition(o, "Ready")?.status === "False" ? o : undefined;
      },
      30_000,
    );
    expect(condition(t, "Ready")?.reason).toBe("KeyNotAuthenticating");
    expect(condition(t, "Ready")?.message).toContain("AUTH_REVOKED_KEY");
    expect(condition(t, "Ready")?.message).toContain("rotate.nexus.dev/app");
    expect(t.status.apiKeys[0].authenticated).toBe(false);

    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "kappa", namespace: NS, annotations: { "rotate.nexus.dev/app": "after-leak" } },
    });
    const back = await eventually(
      "Tenant kappa Ready with a new key",
      async () => {
        const o = await kube.get("tenants", NS, "kappa");
        return condition(o, "Ready")?.status === "True" && o?.status?.apiKeys?.[0]?.rotation === "after-leak" ? o : undefined;
      },
      30_000,
    );
    expect(back.status.apiKeys[0].keyId).not.toBe(keyId);
    expect((await whoAmI(secretKey("kappa-app-v2") ?? "")).principal?.role).toBe(Role.EDITOR);
  }, 60_000);

  it("leaves the Nexus tenant alone when a second Tenant object claims the same slug (Degraded SlugConflict), and deleting that object suspends nothing", async () => {
    await kube.apply(
      tenantObj("lambda", {
        slug: "lambda",
        displayName: "Lambda",
        plan: "pro",
        apiKeys: [{ name: "app", role: "admin", secretName: "lambda-app" }],
      }),
    );
    const first = await readyAtGeneration("tenants", "lambda");
    const key = secretKey("lambda-app") ?? "";
    // Another team, another namespace, the same slug.
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "lambda", namespace: "team-b" },
      spec: {
        slug: "lambda",
        displayName: "Lambda (team b)",
        plan: "free",
        apiKeys: [{ name: "app", role: "owner", secretName: "lambda-app" }],
      },
    });
    const second = await eventually(
      "the second Tenant Degraded",
      async () => {
        const o = await kube.get("tenants", "team-b", "lambda");
        return condition(o, "Degraded")?.status === "True" ? o : undefined;
      },
      30_000,
    );
    expect(condition(second, "Degraded")?.reason).toBe("SlugConflict");
    expect(condition(second, "Degraded")?.message).toContain(`${NS}/lambda`);
    expect(condition(second, "Ready")?.status).toBe("False");
    expect(second.status.tenantId).toBeUndefined();
    expect(kube.standin.get("secrets", "team-b", "lambda-app")).toBeUndefined();
    const remote = await platform.auth.getTenant({ selector: { case: "slug", value: "lambda" } });
    expect(remote.tenant?.plan).toBe(Plan.PRO);

    await kube.delete("tenants", "team-b", "lambda");
    await eventually("the second Tenant gone", async () => (await kube.get("tenants", "team-b", "lambda")) === undefined, 30_000);
    const after = await platform.auth.getTenant({ selector: { case: "slug", value: "lambda" } });
    expect(after.tenant?.status).toBe(TenantStatus.ACTIVE);
    expect((await whoAmI(key)).principal?.tenantId).toBe(first.status.tenantId);
    expect(condition(await kube.get("tenants", NS, "lambda"), "Ready")?.status).toBe("True");
  }, 60_000);

  it("deleting a Tenant suspends it and revokes its keys before the object goes", async () => {
    const key = secretKey("gamma-ci") ?? "";
    await kube.delete("tenants", NS, "gamma");
    await eventually("Tenant gamma gone", async () => (await kube.get("tenants", NS, "gamma")) === undefined, 30_000);
    await expect(whoAmI(key)).rejects.toThrow();
    const remote = await platform.auth.getTenant({ selector: { case: "slug", value: "gamma" } });
    expect(remote.tenant?.status).toBe(TenantStatus.SUSPENDED);
  }, 60_000);
});

describeWithCrdApiServer("Tenant when Nexus cannot be reached", () => {
  // A second operator (own stand-in, own leader Lease) pointed at a Nexus that is down.
  let deadKube: KubeCluster;
  let deadOperator: RunningOperator;
  let deadPort: number;
  // What a client sees when Nexus is down behind a load balancer: HTTP 503 on every call
  // (Connect maps it to UNAVAILABLE). Kept listening, so no other process can take the port.
  const dropper = http.createServer((_req, res) => {
    res.writeHead(503, { "content-type": "text/plain" });
    res.end("no healthy upstream");
  });
  beforeAll(async () => {
    await new Promise<void>((r) => dropper.listen(0, "127.0.0.1", r));
    deadPort = (dropper.address() as AddressInfo).port;
    deadKube = await KubeCluster.start(dir);
    const cfgDir = mkdtempSync(join(dir, "dead-"));
    deadOperator = await runOperator(
      loadOperatorConfig(
        {
          NEXUS_OPERATOR_PLATFORM_KEY: platformKey,
          NEXUS_AUTH_URL: `http://127.0.0.1:${deadPort}`,
          NEXUS_METERING_URL: `http://127.0.0.1:${deadPort}`,
          NEXUS_OPERATOR_NAMESPACE: "nexus-system",
        },
        { kubeconfig: deadKube.writeKubeconfig(cfgDir), port: 0 },
      ),
      pino({ level: "silent" }),
    );
    await eventually("the second operator to lead", async () => deadOperator.isLeader());
  });
  afterAll(async () => {
    await deadOperator?.stop();
    await deadKube?.close();
    await new Promise<void>((r) => dropper.close(() => r()));
  });

  it("reports Degraded with the service error, Ready False, a Warning event, and retries with backoff", async () => {
    await deadKube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "acme", namespace: NS },
      spec: {
        slug: "acme",
        displayName: "Acme Research",
        plan: "pro",
        apiKeys: [{ name: "ci", role: "admin", secretName: "acme-ci-key" }],
      },
    });
    const t = await eventually("Tenant acme to be Degraded", async () => {
      const o = await deadKube.get("tenants", NS, "acme");
      return condition(o, "Degraded")?.status === "True" ? o : undefined;
    });
    expect(t.metadata.finalizers).toContain("nexus.dev/tenant-cleanup");
    expect(t.status.observedGeneration).toBe(t.metadata.generation);
    expect(t.status.phase).toBe("Degraded");
    expect(condition(t, "Degraded")?.reason).toBe("NexusUnavailable");
    expect(condition(t, "Degraded")?.message).toMatch(/^unavailable/);
    expect(condition(t, "Ready")).toMatchObject({ status: "False", reason: "NexusUnavailable" });
    expect(condition(t, "Reconciling")).toMatchObject({ status: "True", reason: "Retrying" });
    expect(deadKube.standin.get("secrets", NS, "acme-ci-key")).toBeUndefined();
    // The status write records PhaseChanged first and then one event per condition change, each
    // its own API call: wait for the one this test is about, not merely the first Warning.
    const events = await eventually("a NexusUnavailable Warning event for acme", async () => {
      const e = deadKube.standin.list("events", NS).filter((ev) => ev.involvedObject.name === "acme" && ev.type === "Warning");
      return e.some((ev) => ev.reason === "NexusUnavailable") ? e : undefined;
    });
    expect(events.map((e) => e.reason)).toContain("NexusUnavailable");
    const text = await (await fetch(`http://127.0.0.1:${deadOperator.port}/metrics`)).text();
    expect(metricValue(text, "nexus_operator_reconcile_errors_total", { kind: "Tenant" })).toBeGreaterThanOrEqual(1);
    await eventually(
      "a retried reconcile",
      async () => {
        const m = await (await fetch(`http://127.0.0.1:${deadOperator.port}/metrics`)).text();
        return metricValue(m, "nexus_operator_reconcile_errors_total", { kind: "Tenant" }) >= 2;
      },
      15_000,
    );
  });

  it("keeps a Quota waiting (TenantNotReady) while its Tenant has no tenant id", async () => {
    await deadKube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "acme-quota", namespace: NS },
      spec: { tenantRef: { name: "acme" }, monthly: { runs: 100 }, softCapRatio: 0.8, hardCapMode: "Enforce" },
    });
    const q = await eventually("Quota to report TenantNotReady", async () => {
      const o = await deadKube.get("quotas", NS, "acme-quota");
      return condition(o, "Reconciling")?.reason === "TenantNotReady" ? o : undefined;
    });
    expect(q.status.phase).toBe("Pending");
    expect(condition(q, "Ready")?.message).toContain("NexusUnavailable");
  });

  it("keeps a deleted Tenant (finalizer) until its keys could be revoked", async () => {
    await deadKube.delete("tenants", NS, "acme");
    const t = await eventually("Tenant acme to be Deleting", async () => {
      const o = await deadKube.get("tenants", NS, "acme");
      return o?.status?.phase === "Deleting" ? o : undefined;
    });
    expect(t.metadata.deletionTimestamp).toBeTruthy();
    expect(t.metadata.finalizers).toContain("nexus.dev/tenant-cleanup");
    expect(condition(t, "Degraded")).toMatchObject({ status: "True", reason: "NexusUnavailable" });
    // What an administrator does to give up on the cleanup: drop the finalizer.
    await deadKube.apply({ apiVersion: "nexus.dev/v1alpha1", kind: "Tenant", metadata: { name: "acme", namespace: NS, finalizers: null } });
    await eventually("Tenant acme to be gone", async () => (await deadKube.get("tenants", NS, "acme")) === undefined);
  });
});

describeWithCrdApiServer("Quota", () => {
  it("waits for a missing Tenant with reason TenantNotFound", async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "ghost-quota", namespace: NS },
      spec: { tenantRef: { name: "ghost" }, monthly: { runs: 100 }, softCapRatio: 0.8, hardCapMode: "Enforce" },
    });
    const q = await eventually("Quota to report TenantNotFound", async () => {
      const o = await kube.get("quotas", NS, "ghost-quota");
      return condition(o, "Reconciling")?.reason === "TenantNotFound" ? o : undefined;
    });
    expect(q.status.phase).toBe("Pending");
    expect(condition(q, "Ready")?.status).toBe("False");
    expect(condition(q, "Degraded")?.status).toBe("False");
    expect(q.status.observedGeneration).toBe(q.metadata.generation);
  });

  it("applies its limits through SetQuota once the Tenant is Ready", async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "epsilon", namespace: NS },
      spec: { slug: "epsilon", displayName: "Epsilon", plan: "pro" },
    });
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "epsilon-quota", namespace: NS },
      spec: {
        tenantRef: { name: "epsilon" },
        daily: { runs: 10 },
        monthly: { runs: 100, runUnits: 500 },
        softCapRatio: 0.5,
        hardCapMode: "Observe",
      },
    });
    const q = await eventually(
      "Quota Ready",
      async () => {
        const o = await kube.get("quotas", NS, "epsilon-quota");
        return condition(o, "Ready")?.status === "True" ? o : undefined;
      },
      30_000,
    );
    expect(q.status.monthly).toMatchObject({ runsLimit: 100, runsUsed: 0, runUnitsLimit: 500 });
    expect(q.status.daily).toMatchObject({ runsLimit: 10 });
    expect(q.status).toMatchObject({ used: "0 runs, 0/day", limit: "100 runs, 10/day" });
    expect(condition(q, "SoftCapReached")).toMatchObject({ status: "False", reason: "BelowSoftCap" });
    const applied = await platform.metering.getQuota({ tenantId: q.status.tenantId });
    expect(applied.quota?.softCapRatio).toBeCloseTo(0.5);
    expect(applied.quota?.limits?.monthlyRuns).toBe(100n);
  }, 60_000);

  it('shows a daily-only limit in LIMIT with its window, never "unlimited" (enterprise plan: no monthly limit)', async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "iota", namespace: NS },
      spec: { slug: "iota", displayName: "Iota", plan: "enterprise" },
    });
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "iota-quota", namespace: NS },
      spec: { tenantRef: { name: "iota" }, daily: { runs: 1000 }, softCapRatio: 0.8, hardCapMode: "Enforce" },
    });
    const q = await readyAtGeneration("quotas", "iota-quota");
    expect(q.status.monthly?.runsLimit).toBeUndefined();
    expect(q.status.daily).toMatchObject({ runsLimit: 1000, runsUsed: 0 });
    // The LIMIT printer column reads status.limit.
    const column = nexusCrds()
      .find((c) => c.spec.names.kind === "Quota")
      ?.spec.versions[0]?.additionalPrinterColumns?.find((c) => c.name === "Limit");
    expect(column?.jsonPath).toBe(".status.limit");
    expect(q.status).toMatchObject({ used: "0 runs/day", limit: "1000 runs/day" });
    const inForce = await platform.metering.getQuota({ tenantId: q.status.tenantId });
    expect(inForce.quota?.limits?.dailyRuns).toBe(1000n);
    expect(inForce.quota?.limits?.monthlyRuns).toBeUndefined();
  }, 60_000);
});

describeWithCrdApiServer("Quota: limits removed, moved and duplicated; the soft cap", () => {
  it("returns a limit removed from the spec to the plan's default", async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "epsilon-quota", namespace: NS },
      spec: { daily: null },
    });
    const q = await readyAtGeneration("quotas", "epsilon-quota");
    expect(q.metadata.generation).toBe(2);
    const applied = await platform.metering.getQuota({ tenantId: q.status.tenantId });
    // Plans set no daily limit: the 10 runs/day the spec no longer asks for must be gone.
    expect(applied.quota?.limits?.dailyRuns).toBeUndefined();
    expect(applied.quota?.limits?.monthlyRuns).toBe(100n);
    expect(q.status.daily?.runsLimit).toBeUndefined();
  }, 60_000);

  it("returns the Tenant it no longer references to its plan's limits when tenantRef moves", async () => {
    const epsilonId = String((await kube.get("quotas", NS, "epsilon-quota"))?.status.tenantId);
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "mu", namespace: NS },
      spec: { slug: "mu", displayName: "Mu", plan: "pro" },
    });
    const mu = await readyAtGeneration("tenants", "mu");
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "epsilon-quota", namespace: NS },
      spec: { tenantRef: { name: "mu" } },
    });
    const q = await eventually(
      "Quota applied to mu",
      async () => {
        const o = await kube.get("quotas", NS, "epsilon-quota");
        return condition(o, "Ready")?.status === "True" && o?.status?.tenantId === mu.status.tenantId ? o : undefined;
      },
      30_000,
    );
    expect((await platform.metering.getQuota({ tenantId: q.status.tenantId })).quota?.limits?.monthlyRuns).toBe(100n);
    // Back to the plan's limits (metering has no "unset": SetQuota without limits, so the source stays CUSTOM).
    const left = await platform.metering.getQuota({ tenantId: epsilonId });
    expect(left.quota?.limits?.monthlyRuns).toBe(5000n); // the pro plan's allowance
    expect(left.quota?.limits?.monthlyRunUnits).toBeUndefined();
    expect(left.quota?.softCapRatio).toBeCloseTo(0.8);
    expect(left.quota?.hardCapMode).toBe(HardCapMode.ENFORCE);
    await expectEvent("epsilon-quota", "QuotaReset");
  }, 60_000);

  it("refuses a second Quota for the same Tenant (Degraded DuplicateQuota) without touching its limits, and deleting it keeps them", async () => {
    const muId = String((await kube.get("tenants", NS, "mu"))?.status.tenantId);
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "mu-extra", namespace: NS },
      spec: { tenantRef: { name: "mu" }, monthly: { runs: 7 }, softCapRatio: 0.8, hardCapMode: "Enforce" },
    });
    const dup = await eventually(
      "Quota mu-extra Degraded",
      async () => {
        const o = await kube.get("quotas", NS, "mu-extra");
        return condition(o, "Degraded")?.status === "True" ? o : undefined;
      },
      30_000,
    );
    expect(condition(dup, "Degraded")?.reason).toBe("DuplicateQuota");
    expect(condition(dup, "Degraded")?.message).toContain("epsilon-quota");
    expect(condition(dup, "Ready")?.status).toBe("False");
    expect((await platform.metering.getQuota({ tenantId: muId })).quota?.limits?.monthlyRuns).toBe(100n);

    await kube.delete("quotas", NS, "mu-extra");
    await eventually("Quota mu-extra gone", async () => (await kube.get("quotas", NS, "mu-extra")) === undefined, 30_000);
    const kept = await platform.metering.getQuota({ tenantId: muId });
    expect(kept.quota?.source).toBe(QuotaSource.CUSTOM);
    expect(kept.quota?.limits?.monthlyRuns).toBe(100n);
  }, 60_000);

  it("reports SoftCapReached=True once real agent runs reach the soft cap, and the limit it applied refuses the run past it", async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Tenant",
      metadata: { name: "zeta", namespace: NS },
      spec: { slug: "zeta", displayName: "Zeta", plan: "pro", apiKeys: [{ name: "app", role: "admin", secretName: "zeta-app" }] },
    });
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "zeta-quota", namespace: NS },
      spec: { tenantRef: { name: "zeta" }, monthly: { runs: 3 }, softCapRatio: 0.5, hardCapMode: "Enforce" },
    });
    const ready = await eventually(
      "Quota zeta-quota Ready",
      async () => {
        const o = await kube.get("quotas", NS, "zeta-quota");
        return condition(o, "Ready")?.status === "True" ? o : undefined;
      },
      30_000,
    );
    expect(condition(ready, "SoftCapReached")).toMatchObject({ status: "False", reason: "BelowSoftCap" });

    // The tenant's own key, from the Secret the operator wrote, used as an application would.
    const tenantId = String(ready.status.tenantId);
    const key = await eventually("the key in Secret zeta-app", async () => secretKey("zeta-app"));
    const app = createNexusClient({ baseUrl: nexus.url, apiKey: key });
    await app.retrieval.createCorpus({ corpusId: "handbook", displayName: "Handbook" });
    await app.ingestion.ingestText({
      corpusId: "handbook",
      documentId: "keys",
      text: "To rotate an API key, annotate the Tenant with rotate.nexus.dev/<key name>. The old key keeps working for the grace period.",
      filename: "keys.txt",
      mediaType: "text/plain",
    });
    await eventually(
      "the document to be ingested",
      async () => {
        const { document } = await app.ingestion.getDocument({ documentId: "keys" });
        if (document?.status === DocumentStatus.FAILED) throw new Error(`ingestion failed: ${document.failureReason}`);
        return document?.status === DocumentStatus.SUCCEEDED;
      },
      30_000,
    );
    const run = async (message: string) => {
      const events: string[] = [];
      for await (const r of app.agent.run({ corpusId: "handbook", message })) events.push(String(r.event.case));
      return events;
    };

    // 2 of 3 runs: at or above the soft cap (ratio 0.5), below the hard limit.
    for (const message of ["How do I rotate a key?", "How long does the old key work?"]) expect((await run(message)).at(-1)).toBe("done");
    // A run's reservation is settled into runsUsed just after the stream ends: wait for both.
    const soft = await eventually(
      "SoftCapReached=True with the 2 runs counted",
      async () => {
        const o = await kube.get("quotas", NS, "zeta-quota");
        return condition(o, "SoftCapReached")?.status === "True" && o?.status?.monthly?.runsUsed === 2 ? o : undefined;
      },
      30_000,
    );
    expect(condition(soft, "SoftCapReached")?.reason).toBe("SoftCapReached");
    expect(soft.status.monthly).toMatchObject({ runsUsed: 2, runsLimit: 3, softCapReached: true, hardCapReached: false });
    expect(soft.status).toMatchObject({ used: "2 runs", limit: "3 runs", phase: "Ready" });
    expect(condition(soft, "Ready")?.status).toBe("True");
    await expectEvent("zeta-quota", "SoftCapReached");
    // The Tenant's USAGE column follows the completed runs (counted from RunCompleted events).
    await eventually(
      "Tenant zeta USAGE 2/3 runs",
      async () => (await kube.get("tenants", NS, "zeta"))?.status?.usage === "2/3 runs",
      30_000,
    );

    // The third run uses the last of the limit; the fourth is refused by the limit the Quota set.
    expect((await run("And the grace period?")).at(-1)).toBe("done");
    const refused = await refusal(run("One more?"));
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(errorReason(refused)).toBe("QUOTA_EXCEEDED");
    const hard = await eventually(
      "SoftCapReached reason HardCapReached with the 3 runs counted",
      async () => {
        const o = await kube.get("quotas", NS, "zeta-quota");
        return condition(o, "SoftCapReached")?.reason === "HardCapReached" && o?.status?.monthly?.runsUsed === 3 ? o : undefined;
      },
      30_000,
    );
    expect(hard.status.monthly).toMatchObject({ runsUsed: 3, hardCapReached: true });
    expect((await platform.metering.getQuota({ tenantId })).windows.find((w) => w.period === Period.MONTH)?.runsUsed).toBe(3n);
  }, 120_000);
});

describeWithCrdApiServer("control loop behaviour", () => {
  it("requeues on 409 Conflict and then writes the status", async () => {
    const before = metricValue(await metrics(), "nexus_operator_reconcile_total", { kind: "Quota", result: "conflict" });
    kube.failNextWrites({ plural: "quotas", name: "conflicted", subresource: "status" }, 2, 409);
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "conflicted", namespace: NS },
      spec: { tenantRef: { name: "nobody-conflicted" }, softCapRatio: 0.8, hardCapMode: "Enforce" },
    });
    await eventually(
      "the status after two conflicts",
      async () => (await kube.get("quotas", NS, "conflicted"))?.status?.phase === "Pending",
    );
    const after = metricValue(await metrics(), "nexus_operator_reconcile_total", { kind: "Quota", result: "conflict" });
    expect(after - before).toBe(2);
  });

  it("keeps watching after the API server drops its watches and after 410 Gone", async () => {
    const isList = (r: { method: string; path: string }) =>
      r.method === "GET" && /\/quotas(\?|$)/.test(r.path) && !r.path.includes("watch=");
    const listsBefore = kube.requests.filter(isList).length;
    // The watches break and etcd forgets the history before any watch is opened again:
    // resuming them gets 410 Expired.
    await kube.expireWatches();
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "after-relist", namespace: NS },
      spec: { tenantRef: { name: "nobody-relisted" }, softCapRatio: 0.8, hardCapMode: "Enforce" },
    });
    await eventually(
      "a reconcile of an object created after the watch broke",
      async () => (await kube.get("quotas", NS, "after-relist"))?.status?.phase === "Pending",
      40_000,
    );
    // 410 Expired (a real one, from etcd) made the informer list again instead of resuming.
    expect(kube.requests.filter(isList).length).toBeGreaterThan(listsBefore);
  }, 60_000);

  it("reconciles a spec change (new generation) and records observedGeneration", async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Quota",
      metadata: { name: "after-relist", namespace: NS },
      spec: { monthly: { runs: 5 } },
    });
    const q = await eventually("observedGeneration 2", async () => {
      const o = await kube.get("quotas", NS, "after-relist");
      return o?.status?.observedGeneration === 2 ? o : undefined;
    });
    expect(q.metadata.generation).toBe(2);
  });
});
