/**
 * Workflow, Destination and SenderApp custom resources (GitOps for integration flows) against
 * Kubernetes' REAL CRD API server (CEL rules and their messages, defaults, printer columns in
 * `kubectl get`), reconciled by the operator into a real `nexus dev` mesh on PostgreSQL and NATS:
 * a Workflow applied becomes a workflow that moves messages, with the token read from a Secret;
 * changing it saves a new version; an edit through the API is refused (MANAGED_BY_KUBERNETES);
 * an object made in the console is taken over by the resource of the same name; a rotated
 * Secret is re-applied through the watch; deleting the resources deletes the objects.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DestinationConfigSchema, RestAuth, WorkflowDefinitionSchema, WorkflowKind } from "../gen/nexus/integration/v1/resources_pb.js";
import { loadOperatorConfig } from "../operator/config.js";
import { nexusCrds } from "../operator/crds/index.js";
import { type RunningOperator, runOperator } from "../operator/run-operator.js";
import { createNexusClient, type NexusClient } from "../services/client/index.js";
import { errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, startAgentMesh } from "./support/agent-mesh.js";
import { crdApiServerAvailable, describeWithCrdApiServer } from "./support/crd-apiserver.js";
import { celRuleMessages } from "./support/crd-rules.js";
import { eventually } from "./support/eventually.js";
import { type Receiver, startReceiver } from "./support/integration-harness.js";
import { KubeCluster } from "./support/kube-cluster.js";
import { deleteSuiteStreams, suiteStreams } from "./support/nats-streams.js";
import { describeWithPostgresAndNats, TEST_NATS_URL, uniqueToken } from "./support/services.js";

type Obj = Record<string, any>;
const run = promisify(execFile);
const NS = "flows";
const KINDS = ["SenderApp", "Destination", "Workflow"];
const dir = mkdtempSync(join(tmpdir(), "nexus-k8s-integ-"));
const token = uniqueToken("K").toUpperCase();

let mesh: AgentMesh | undefined;
let kube: KubeCluster;
let operator: RunningOperator | undefined;
let receiver: Receiver;
let kubeconfig: string;
let realKubeconfig: string;
/** A tenant admin's client, as the console and the CLI call the API. */
let console_: NexusClient;
let tenantId: string;

const condition = (o: Obj | undefined, type: string): Obj | undefined => o?.status?.conditions?.find((c: Obj) => c.type === type);
const readyAtGeneration = (plural: string, name: string, timeoutMs = 45_000): Promise<Obj> =>
  eventually(
    `${plural}/${name} Ready at its generation`,
    async () => {
      const o = await kube.get(plural, NS, name);
      const ready = condition(o, "Ready");
      return ready?.status === "True" && ready.observedGeneration === o?.metadata.generation ? o : undefined;
    },
    timeoutMs,
  );
const secretValue = (name: string, key: string): string | undefined => {
  const data = kube.standin.get("secrets", NS, name)?.data?.[key];
  return data ? Buffer.from(data, "base64").toString("utf8") : undefined;
};
const putSecret = (name: string, data: Record<string, string>) =>
  kube.standin.apply({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: NS },
    type: "Opaque",
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  });
const resource = (kind: string, name: string, spec: Obj) => ({
  apiVersion: "nexus.dev/v1alpha1",
  kind,
  metadata: { name, namespace: NS },
  spec: { tenantRef: { name: "acme" }, ...spec },
});
const refusal = (call: Promise<unknown>) =>
  call.then(
    () => "allowed",
    (err: unknown) => `${Code[ConnectError.from(err).code]} ${errorReason(err)}: ${ConnectError.from(err).rawMessage}`,
  );
/** kubectl against the real server (the custom resources live there), with its own discovery cache. */
const kubectl = (...args: string[]) =>
  run("bash", ["scripts/kubectl.sh", "--kubeconfig", realKubeconfig, "--cache-dir", join(dir, "kube-cache"), ...args], { timeout: 60_000 });
const ingress = async (appKey: string, body: unknown) => {
  const res = await fetch(`${mesh?.url}/ingress`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": appKey },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Obj };
};

// PostgreSQL, NATS and the real CRD API server: skipped (or failed under NEXUS_REQUIRE_SERVICES=1) without any.
const describeHere = crdApiServerAvailable ? describeWithPostgresAndNats : describeWithCrdApiServer;

describeHere("Workflow, Destination and SenderApp resources", () => {
  beforeAll(async () => {
    const streams = suiteStreams(token);
    mesh = await startAgentMesh({
      NATS_URL: TEST_NATS_URL,
      NEXUS_SUBJECT_PREFIX: uniqueToken("k"),
      NEXUS_NATS_STREAM: streams.stream,
      NEXUS_DLQ_STREAM: streams.dlqStream,
      NEXUS_INTEGRATION_RETRY_INITIAL_MS: "100",
      NEXUS_INTEGRATION_RETRY_MAX_MS: "400",
    });
    receiver = await startReceiver(19401);
    kube = await KubeCluster.start(dir);
    kubeconfig = kube.writeKubeconfig(dir, NS);
    realKubeconfig = kube.real.writeKubeconfig(dir, NS);
    const config = loadOperatorConfig(
      {
        NEXUS_OPERATOR_PLATFORM_KEY: mesh.platformKey,
        NEXUS_AUTH_URL: mesh.url,
        NEXUS_METERING_URL: mesh.url,
        NEXUS_INTEGRATION_URL: mesh.url,
        NEXUS_OPERATOR_NAMESPACE: "nexus-system",
        NEXUS_OPERATOR_IDENTITY: "operator-integ-0",
        // Long on purpose: a rotated Secret must be noticed through the watch, not a resync.
        NEXUS_OPERATOR_RESYNC_SECONDS: "600",
      },
      { kubeconfig, port: 0 },
    );
    operator = await runOperator(config, pino({ level: "silent" }));
    await eventually("the operator to lead", () => operator?.isLeader());
    await eventually("the integration CRDs established", async () => {
      for (const crd of nexusCrds()) {
        const o = await kube.get("customresourcedefinitions", undefined, crd.metadata.name);
        if (condition(o, "Established")?.status !== "True") return undefined;
      }
      return true;
    });
  }, 120_000);

  afterAll(async () => {
    await operator?.stop();
    await mesh?.close();
    await kube?.close();
    await receiver?.close();
    await deleteSuiteStreams(token);
    rmSync(dir, { recursive: true, force: true });
  });

  describe("CRD validation on the real server", () => {
    /** Every CEL rule message of the three kinds, so a rule added without a case here fails. */
    const allMessages = () => new Set(celRuleMessages(KINDS));
    const refused = new Set<string>();
    const expectRefused = async (obj: Obj, message: string) => {
      await expect(kube.apply(obj)).rejects.toThrow(message);
      refused.add(message);
    };
    const rest = (extra: Obj = {}) => ({ rest: { url: "https://hooks.example/x", ...extra } });
    const fanOut = (extra: Obj = {}) => ({
      source: { senderAppRef: { name: "a" } },
      targets: [{ destinationRef: { name: "d" } }],
      ...extra,
    });

    it("each CEL rule refuses what it should, with its message", async () => {
      // Destinations: credentials only from Secrets, one type, rules of REST auth.
      await expectRefused(
        resource("Destination", "v-inline-rest", rest({ auth: "Bearer", secret: "t0ken", secretRef: { name: "s" } })),
        "inline credentials are refused: put the secret in a Secret and reference it with rest.secretRef",
      );
      await expectRefused(
        resource("Destination", "v-inline-sql", {
          sql: { engine: "Postgres", host: "db", port: 5432, database: "d", user: "u", password: "pw", passwordSecretRef: { name: "s" } },
        }),
        "inline credentials are refused: put the password in a Secret and reference it with sql.passwordSecretRef",
      );
      await expectRefused(
        resource("Destination", "v-inline-corpus", { corpus: { corpusId: "c", apiKey: "nxs_x", apiKeySecretRef: { name: "s" } } }),
        "inline credentials are refused: put the apiKey in a Secret and reference it with corpus.apiKeySecretRef",
      );
      await expectRefused(
        resource("Destination", "v-header", rest({ headers: { Authorization: "Bearer x" } })),
        "inline credentials are refused: Authorization, Proxy-Authorization, X-API-Key and Cookie headers go through rest.auth and rest.secretRef",
      );
      await expectRefused(
        resource("Destination", "v-bearer", rest({ auth: "Bearer" })),
        "rest.auth other than None needs rest.secretRef (the token, API key or password)",
      );
      await expectRefused(
        resource("Destination", "v-apikey", rest({ auth: "ApiKey", secretRef: { name: "s" } })),
        "rest.auth ApiKey needs rest.apiKeyHeader",
      );
      await expectRefused(
        resource("Destination", "v-basic", rest({ auth: "Basic", secretRef: { name: "s" } })),
        "rest.auth Basic needs rest.username",
      );
      await expectRefused(
        resource("Destination", "v-two", { ...rest(), nats: { subject: "x" } }),
        "set exactly one of rest, sql, nats, corpus",
      );
      await expectRefused(resource("Destination", "v-none", {}), "set exactly one of rest, sql, nats, corpus");
      await kube.apply(resource("Destination", "v-ok", rest()));
      await expectRefused(
        { ...resource("Destination", "v-ok", { rest: null, nats: { subject: "x" } }) },
        "the destination type cannot change: create another Destination",
      );
      await expectRefused(
        resource("Destination", "v-ok", { tenantRef: { name: "other" } }),
        "tenantRef is immutable: create a new object for another tenant",
      );

      // SenderApps: immutable key Secret and encryption.
      await kube.apply(resource("SenderApp", "v-app", { keySecretName: "v-app-key" }));
      await expectRefused(resource("SenderApp", "v-app", { keySecretName: "other" }), "keySecretName is immutable");
      await expectRefused(
        resource("SenderApp", "v-app", { encryptionRequired: true }),
        "encryptionRequired is immutable: create a new SenderApp to change it",
      );

      // Workflows: targets xor steps by kind; step and SQL rules.
      await expectRefused(
        resource("Workflow", "v-w1", fanOut({ targets: [] })),
        "a FanOut workflow needs at least one target and no steps",
      );
      await expectRefused(
        resource("Workflow", "v-w2", fanOut({ kind: "Sequential" })),
        "a Sequential workflow needs at least one step and no targets",
      );
      const seq = (step: Obj) =>
        resource("Workflow", "v-seq", { kind: "Sequential", source: { senderAppRef: { name: "a" } }, steps: [step] });
      await expectRefused(seq({ name: "call", type: "RestCall" }), "RestCall and DbQuery steps need a target; other steps take none");
      await expectRefused(seq({ name: "c", type: "Condition", expression: "x > 1" }), "a Condition step needs expression and thenStep");
      await expectRefused(seq({ name: "t", type: "Transform" }), "a Transform step needs expression");
      await expectRefused(seq({ name: "d", type: "Delay" }), "a Delay step needs delayMs");
      await expectRefused(
        seq({ name: "t", type: "Transform", expression: "$", maxRetries: 3 }),
        "maxRetries applies only with onError Retry",
      );
      await expectRefused(
        resource("Workflow", "v-w3", fanOut({ targets: [{ destinationRef: { name: "d" }, sql: { operation: "Upsert", table: "t" } }] })),
        "sql.operation Upsert needs keyColumns",
      );
      expect(refused).toEqual(allMessages());
      for (const [plural, name] of [
        ["destinations", "v-ok"],
        ["senderapps", "v-app"],
      ] as const)
        await kube.delete(plural, NS, name);
    });

    it("applies the schema defaults", async () => {
      const d = await kube.apply(
        resource("Destination", "defaults-d", { rest: { url: "https://x.example", auth: "Bearer", secretRef: { name: "s" } } }),
      );
      expect(d.spec.rest).toMatchObject({ method: "POST", auth: "Bearer", timeoutMs: 10000, secretRef: { name: "s", key: "secret" } });
      const sql = await kube.apply(
        resource("Destination", "defaults-sql", {
          sql: { engine: "MySQL", host: "db", port: 3306, database: "d", user: "u", passwordSecretRef: { name: "s" } },
        }),
      );
      expect(sql.spec.sql).toMatchObject({ ssl: false, poolMax: 5, passwordSecretRef: { key: "password" } });
      const a = await kube.apply(resource("SenderApp", "defaults-a", { keySecretName: "k", fields: [{ name: "id" }] }));
      expect(a.spec).toMatchObject({ encryptionRequired: false, fields: [{ name: "id", type: "Json", required: false }] });
      const w = await kube.apply(resource("Workflow", "defaults-w", fanOut()));
      expect(w.spec).toMatchObject({ kind: "FanOut", retentionHours: 168 });
      for (const [plural, name] of [
        ["destinations", "defaults-d"],
        ["destinations", "defaults-sql"],
        ["senderapps", "defaults-a"],
        ["workflows", "defaults-w"],
      ] as const)
        await kube.delete(plural, NS, name);
    });
  });

  describe("reconciled into the integration service", () => {
    let appKey: string;
    let workflowId: string;
    let destinationId: string;

    it("a Workflow applied becomes a workflow in the mesh, Ready, and moves messages with the token from the Secret", async () => {
      await kube.apply({
        apiVersion: "nexus.dev/v1alpha1",
        kind: "Tenant",
        metadata: { name: "acme", namespace: NS },
        spec: {
          slug: `acme-${token.toLowerCase()}`,
          displayName: "Acme",
          plan: "pro",
          apiKeys: [{ name: "admin", role: "admin", secretName: "acme-admin" }],
        },
      });
      const tenant = await readyAtGeneration("tenants", "acme");
      tenantId = tenant.status.tenantId;
      console_ = createNexusClient({ baseUrl: mesh!.url, apiKey: secretValue("acme-admin", "apiKey")! });

      putSecret("hook-token", { token: "t-1" });
      await kube.apply(
        resource("Destination", "hook", { rest: { url: receiver.url, auth: "Bearer", secretRef: { name: "hook-token", key: "token" } } }),
      );
      await kube.apply(
        resource("SenderApp", "orders", {
          keySecretName: "orders-app-key",
          fields: [{ name: "order_id", type: "String", required: true }],
        }),
      );
      // The Workflow may come first: it waits (Ready=False) until what it names is Ready.
      await kube.apply(
        resource("Workflow", "orders", {
          source: { senderAppRef: { name: "orders" } },
          targets: [{ destinationRef: { name: "hook" }, path: "/orders" }],
        }),
      );
      const { stdout } = await kubectl("wait", "--for=condition=Ready", "workflow/orders", "--timeout=60s");
      expect(stdout).toContain("workflow.nexus.dev/orders condition met");
      const wf = await readyAtGeneration("workflows", "orders");
      const dest = await readyAtGeneration("destinations", "hook");
      workflowId = wf.status.workflowId;
      destinationId = dest.status.destinationId;
      expect(wf.status).toMatchObject({ tenantId, version: 1, phase: "Ready", observedGeneration: wf.metadata.generation });
      expect(wf.status.subject).toMatch(new RegExp(`\\.integration\\.wf\\.${workflowId}$`));

      // What the console sees: the workflow, marked managed by Kubernetes, naming the resource.
      const { workflow } = await console_.integration.getWorkflow({ workflowId });
      expect(workflow).toMatchObject({ name: "orders", managedByKubernetes: true, kubernetesResource: `Workflow ${NS}/orders` });
      expect(workflow?.definition?.targets[0]).toMatchObject({ destinationId, path: "/orders" });
      const listed = await console_.integration.listDestinations({});
      expect(listed.destinations.find((d) => d.destinationId === destinationId)).toMatchObject({
        managedByKubernetes: true,
        kubernetesResource: `Destination ${NS}/hook`,
        hasSecret: true,
      });

      // The app key the operator wrote into the Secret sends a message that arrives with the Secret's token.
      appKey = secretValue("orders-app-key", "appKey")!;
      expect(secretValue("orders-app-key", "appId")).toBe((await kube.get("senderapps", NS, "orders"))?.status.appId);
      expect((await ingress(appKey, { order_id: "o-1" })).status).toBe(202);
      const got = await eventually("the message at the receiver", () => receiver.received.find((r) => r.path === "/orders"), 30_000);
      expect(got.headers.authorization).toBe("Bearer t-1");
      expect(got.body).toEqual({ order_id: "o-1" });
    }, 150_000);

    it("kubectl get prints the printer columns", async () => {
      const { stdout } = await kubectl("get", "senderapps,destinations,workflows");
      const headers = stdout
        .split("\n")
        .filter((l) => l.startsWith("NAME"))
        .map((h) => h.split(/\s{2,}/).join(" "));
      expect(headers).toEqual(["NAME READY TENANT KEY SECRET AGE", "NAME READY TENANT TYPE AGE", "NAME READY TENANT KIND VERSION AGE"]);
      expect(stdout).toMatch(/senderapp\.nexus\.dev\/orders\s+True\s+acme\s+orders-app-key\s/);
      expect(stdout).toMatch(/destination\.nexus\.dev\/hook\s+True\s+acme\s+rest\s/);
      expect(stdout).toMatch(/workflow\.nexus\.dev\/orders\s+True\s+acme\s+FanOut\s+1\s/);
      const wide = await kubectl("get", "workflow", "orders", "-o", "wide");
      expect(wide.stdout).toContain(workflowId);
    }, 60_000);

    it("a reconcile with nothing changed changes nothing in Nexus (no new version, no update)", async () => {
      const reconciles = async (kind: string) => {
        const text = await (await fetch(`http://127.0.0.1:${operator?.port}/metrics`)).text();
        return text
          .split("\n")
          .filter((l) => l.startsWith("nexus_operator_reconcile_total{") && l.includes(`kind="${kind}"`))
          .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
      };
      const before = { w: await reconciles("Workflow"), d: await reconciles("Destination"), a: await reconciles("SenderApp") };
      // An annotation queues each object again (as a resync would).
      for (const [kind, name] of [
        ["Workflow", "orders"],
        ["Destination", "hook"],
        ["SenderApp", "orders"],
      ] as const)
        await kube.apply({ apiVersion: "nexus.dev/v1alpha1", kind, metadata: { name, namespace: NS, annotations: { touched: "1" } } });
      await eventually(
        "each reconciled again",
        async () =>
          (await reconciles("Workflow")) > before.w &&
          (await reconciles("Destination")) > before.d &&
          (await reconciles("SenderApp")) > before.a,
        20_000,
      );
      expect((await console_.integration.getWorkflow({ workflowId })).workflow?.currentVersion).toBe(1);
      const applied = kube.standin
        .list("events", NS)
        .filter((e) => e.reason === "ObjectApplied")
        .map((e) => e.involvedObject.kind);
      expect(applied.sort()).toEqual(["Destination", "SenderApp", "Workflow"]);
    }, 30_000);

    it("changing the resource saves a new version of the workflow", async () => {
      await kube.apply(
        resource("Workflow", "orders", { targets: [{ destinationRef: { name: "hook" }, path: "/orders", transform: '{"id": order_id}' }] }),
      );
      const wf = await readyAtGeneration("workflows", "orders");
      expect(wf.status.version).toBe(2);
      const { workflow } = await console_.integration.getWorkflow({ workflowId });
      expect(workflow?.currentVersion).toBe(2);
      expect(workflow?.definition?.targets[0]?.transform).toBe('{"id": order_id}');
      expect((await ingress(appKey, { order_id: "o-2" })).status).toBe(202);
      await eventually("the transformed message", () => receiver.received.find((r) => (r.body as Obj)?.id === "o-2"), 30_000);
    }, 60_000);

    it("a Sequential workflow writes to a database whose password comes from a Secret", async () => {
      await mesh!.db.query("CREATE TABLE public.k8s_orders (id text PRIMARY KEY, total numeric, note text)");
      const database = new URL(mesh!.databaseUrl);
      putSecret("orders-db-password", { password: database.password || "unused" });
      await kube.apply(
        resource("Destination", "orders-db", {
          sql: {
            engine: "Postgres",
            host: database.hostname,
            port: Number(database.port || 5432),
            database: database.pathname.slice(1),
            user: decodeURIComponent(database.username) || "postgres",
            passwordSecretRef: { name: "orders-db-password" },
          },
        }),
      );
      await kube.apply(
        resource("Workflow", "orders-seq", {
          kind: "Sequential",
          source: { senderAppRef: { name: "orders" } },
          steps: [
            { name: "shape", type: "Transform", expression: '{"id": order_id, "total": total}' },
            { name: "skip_small", type: "Condition", expression: "total >= 10", thenStep: "store" },
            {
              name: "store",
              type: "DbQuery",
              onError: "Retry",
              maxRetries: 3,
              target: {
                destinationRef: { name: "orders-db" },
                sql: {
                  operation: "Upsert",
                  table: "k8s_orders",
                  keyColumns: ["id"],
                  mappings: [
                    { source: "id", column: "id", type: "String" },
                    { source: "total", column: "total", type: "Number" },
                    { source: "note", column: "note", type: "String", nullStrategy: "Null" },
                  ],
                },
              },
            },
          ],
        }),
      );
      const wf = await readyAtGeneration("workflows", "orders-seq");
      const { workflow } = await console_.integration.getWorkflow({ workflowId: wf.status.workflowId });
      expect(workflow?.definition?.steps.map((x) => x.name)).toEqual(["shape", "skip_small", "store"]);
      expect((await ingress(appKey, { order_id: "big", total: 12.5 })).status).toBe(202);
      expect((await ingress(appKey, { order_id: "small", total: 2 })).status).toBe(202);
      const rows = await eventually(
        "the big order in the table",
        async () => {
          const r = await mesh!.db.query("SELECT id, total::float AS total, note FROM public.k8s_orders ORDER BY id");
          return r.rows.length > 0 ? r.rows : undefined;
        },
        30_000,
      );
      expect(rows).toEqual([{ id: "big", total: 12.5, note: null }]);
      await kube.delete("workflows", NS, "orders-seq");
      await eventually("orders-seq gone", async () => (await kube.get("workflows", NS, "orders-seq")) === undefined);
      await kube.delete("destinations", NS, "orders-db");
    }, 90_000);

    it("refuses edits of managed objects through the API, naming the resource; only the operator may set the marker", async () => {
      const definition = create(WorkflowDefinitionSchema, {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: (await kube.get("senderapps", NS, "orders"))?.status.appId },
        targets: [{ destinationId, path: "/console" }],
      });
      expect(await refusal(console_.integration.updateWorkflow({ workflowId, definition }))).toBe(
        `FailedPrecondition MANAGED_BY_KUBERNETES: workflow "orders" is managed by Kubernetes (Workflow ${NS}/orders): change that resource instead; edits made here would be overwritten`,
      );
      expect(await refusal(console_.integration.rollbackWorkflow({ workflowId, version: 1 }))).toMatch(
        /^FailedPrecondition MANAGED_BY_KUBERNETES/,
      );
      expect(await refusal(console_.integration.deleteWorkflow({ workflowId }))).toMatch(/^FailedPrecondition MANAGED_BY_KUBERNETES/);
      const appId = (await kube.get("senderapps", NS, "orders"))?.status.appId;
      expect(await refusal(console_.integration.rotateAppKey({ appId }))).toMatch(
        new RegExp(`^FailedPrecondition MANAGED_BY_KUBERNETES: sender app "orders" is managed by Kubernetes \\(SenderApp ${NS}/orders\\)`),
      );
      const config = create(DestinationConfigSchema, {
        kind: { case: "rest", value: { url: "https://elsewhere.example", auth: RestAuth.UNSPECIFIED } },
      });
      expect(await refusal(console_.integration.updateDestination({ destinationId, name: "hook", config }))).toMatch(
        /^FailedPrecondition MANAGED_BY_KUBERNETES: destination "hook"/,
      );
      // Claiming to be the resource does not help a tenant key: the marker is the operator's.
      expect(
        await refusal(console_.integration.updateWorkflow({ workflowId, definition, kubernetesResource: `Workflow ${NS}/orders` })),
      ).toMatch(/^PermissionDenied RBAC_FORBIDDEN: kubernetes_resource: only the Nexus operator/);
      expect(
        await refusal(console_.integration.createWorkflow({ name: "sneaky", definition, kubernetesResource: "Workflow x/y" })),
      ).toMatch(/^PermissionDenied RBAC_FORBIDDEN/);
      // Nothing changed.
      expect((await console_.integration.getWorkflow({ workflowId })).workflow?.currentVersion).toBe(2);
    });

    it("drift made around the refusal (with the operator's own key) is put back at the next reconcile", async () => {
      const platform = createNexusClient({ baseUrl: mesh!.url, apiKey: mesh!.platformKey });
      const current = (await console_.integration.getWorkflow({ workflowId })).workflow!;
      const drifted = create(WorkflowDefinitionSchema, current.definition);
      drifted.targets[0]!.path = "/drifted";
      await platform.integration.updateWorkflow({ tenantId, workflowId, definition: drifted, kubernetesResource: `Workflow ${NS}/orders` });
      // A resync (here: an annotation, so the test need not wait 10 minutes) saves the spec again.
      await kube.apply({
        apiVersion: "nexus.dev/v1alpha1",
        kind: "Workflow",
        metadata: { name: "orders", namespace: NS, annotations: { resync: "1" } },
      });
      const back = await eventually("the spec's definition back", async () => {
        const w = (await console_.integration.getWorkflow({ workflowId })).workflow;
        return w && w.currentVersion > current.currentVersion + 1 ? w : undefined;
      });
      expect(back.definition?.targets[0]?.path).toBe("/orders");
      // The status is written after the save: it catches up with the version the save made.
      await eventually(
        "the resource's status to name the saved version",
        async () => (await kube.get("workflows", NS, "orders"))?.status.version === back.currentVersion,
      );
    }, 30_000);

    it("Kubernetes wins: a resource named like an object made in the console takes it over and puts its spec in place", async () => {
      const made = await console_.integration.createDestination({
        name: "audit-hook",
        config: create(DestinationConfigSchema, { kind: { case: "rest", value: { url: "https://console.example/hook" } } }),
      });
      expect(made.destination?.managedByKubernetes).toBe(false);
      await kube.apply(resource("Destination", "audit-hook", { rest: { url: `${receiver.url}/audit`, method: "PUT" } }));
      const d = await readyAtGeneration("destinations", "audit-hook");
      expect(d.status.destinationId).toBe(made.destination?.destinationId);
      const { destination } = await console_.integration.getDestination({ destinationId: d.status.destinationId });
      expect(destination).toMatchObject({ managedByKubernetes: true, kubernetesResource: `Destination ${NS}/audit-hook` });
      expect(destination?.config?.kind.value).toMatchObject({ url: `${receiver.url}/audit`, method: "PUT" });
      await kube.delete("destinations", NS, "audit-hook");
    }, 60_000);

    it("a rotated Secret is re-applied within seconds (watched, not left to the 10-minute resync)", async () => {
      const before = (await kube.get("destinations", NS, "hook"))?.status.secretVersion;
      putSecret("hook-token", { token: "t-2" });
      await eventually(
        "the Destination to apply the new Secret",
        async () => {
          const d = await kube.get("destinations", NS, "hook");
          return d?.status.secretVersion !== before && condition(d, "Ready")?.status === "True" ? d : undefined;
        },
        15_000,
      );
      expect((await ingress(appKey, { order_id: "o-3" })).status).toBe(202);
      const got = await eventually("o-3 at the receiver", () => receiver.received.find((r) => (r.body as Obj)?.id === "o-3"), 30_000);
      expect(got.headers.authorization).toBe("Bearer t-2");
    }, 60_000);

    it("a deleted app key Secret is written again with a new key; the old key stops", async () => {
      const old = appKey;
      kube.standin.delete("secrets", NS, "orders-app-key");
      appKey = await eventually(
        "a new app key Secret",
        () => {
          const k = secretValue("orders-app-key", "appKey");
          return k && k !== old ? k : undefined;
        },
        15_000,
      );
      expect((await ingress(old, { order_id: "o-old" })).status).toBe(401);
      expect((await ingress(appKey, { order_id: "o-new" })).status).toBe(202);
      const app = await kube.get("senderapps", NS, "orders");
      expect(kube.standin.get("secrets", NS, "orders-app-key")?.metadata.ownerReferences).toEqual([
        { apiVersion: "nexus.dev/v1alpha1", kind: "SenderApp", name: "orders", uid: app?.metadata.uid, controller: true },
      ]);
    }, 30_000);

    it("says why it is not Ready: a missing Secret, a definition the service refuses", async () => {
      await kube.apply(
        resource("Destination", "broken", { rest: { url: receiver.url, auth: "Bearer", secretRef: { name: "no-such-secret" } } }),
      );
      const d = await eventually("Degraded SecretNotFound", async () => {
        const o = await kube.get("destinations", NS, "broken");
        return condition(o, "Degraded")?.reason === "SecretNotFound" ? o : undefined;
      });
      expect(condition(d, "Ready")).toMatchObject({
        status: "False",
        reason: "SecretNotFound",
        message: `Secret no-such-secret does not exist in ${NS}`,
      });
      // Creating the Secret (the watch sees it) makes it Ready.
      putSecret("no-such-secret", { secret: "s" });
      await readyAtGeneration("destinations", "broken", 20_000);

      await kube.apply(
        resource("Workflow", "bad-transform", {
          source: { senderAppRef: { name: "orders" } },
          targets: [{ destinationRef: { name: "hook" }, transform: "{{ not jsonata" }],
        }),
      );
      const w = await eventually("the refusal in status", async () => {
        const o = await kube.get("workflows", NS, "bad-transform");
        return condition(o, "Degraded")?.status === "True" ? o : undefined;
      });
      expect(condition(w, "Degraded")?.reason).toBe("NexusInvalidArgument");
      expect(condition(w, "Degraded")?.message).toMatch(/^invalidargument INVALID_ARGUMENT: definition\.targets\[0\]\.transform/);
      expect(w.status.phase).toBe("Degraded");
      await kube.delete("workflows", NS, "bad-transform");
      await kube.delete("destinations", NS, "broken");
    }, 60_000);

    it("deleting the resources deletes the objects (finalizer)", async () => {
      const appId = (await kube.get("senderapps", NS, "orders"))?.status.appId;
      await kube.delete("workflows", NS, "orders");
      await eventually("the Workflow gone", async () => (await kube.get("workflows", NS, "orders")) === undefined);
      expect(await refusal(console_.integration.getWorkflow({ workflowId }))).toMatch(/^NotFound/);
      await kube.delete("destinations", NS, "hook");
      await kube.delete("senderapps", NS, "orders");
      await eventually(
        "both gone",
        async () => !(await kube.get("destinations", NS, "hook")) && !(await kube.get("senderapps", NS, "orders")),
      );
      expect(await refusal(console_.integration.getDestination({ destinationId }))).toMatch(/^NotFound/);
      expect(await refusal(console_.integration.getSenderApp({ appId }))).toMatch(/^NotFound/);
      // The app key stopped with its app.
      expect((await ingress(appKey, { order_id: "o-4" })).status).toBe(401);
    }, 60_000);
  });
});
