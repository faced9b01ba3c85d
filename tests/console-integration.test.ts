import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import pg from "pg";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { createNexusClient } from "../services/client/index.js";
import { buildConsole, launchChromium, screenshot, seriousAxeViolations, skipWithoutChromium } from "./support/console-browser.js";
import { eventually } from "./support/eventually.js";
import { type Receiver, startReceiver } from "./support/integration-harness.js";
import { type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";

/**
 * The console's integration screens in a real browser (Debian's chromium through playwright-core)
 * against a real `nexus dev` process (PGlite, local bus, the integration service in it), a real
 * PostgreSQL database destination (:5432) and a local HTTP receiver: create a sender app (key
 * shown once) and destinations (connection test, schema browsing), build a fan-out workflow in
 * the visual editor with the field mapper, see the server's JSONata error on its node, fix it,
 * save versions and roll back, send a message through ingress and watch it in the live execution
 * log; objects managed by Kubernetes are read-only; a viewer sees no create or edit controls;
 * axe-core on every screen; keyboard use. NEXUS_CONSOLE_SCREENSHOTS=1 writes docs/console/integration-*.png.
 */
const skipped = skipWithoutChromium("console-integration");
const WAIT = 60_000;
const STEP = 180_000;
/** The HTTP receiver's port (this suite's own range). */
const RECEIVER_PORT = 19951;
/** Nothing listens here: a failing connection test. */
const DEAD_PORT = 19952;
const PG_ADMIN = process.env.NEXUS_TEST_PG_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

describe.skipIf(skipped)("console integration screens in a real browser", () => {
  let nexus: NexusProcess;
  let data: { dir: string; remove: () => void };
  let rx: Receiver;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let ownerKey = "";
  let platformKey = "";
  let appKey = "";
  const database = `console_int_${randomBytes(4).toString("hex")}`;
  const db = () => new pg.Client({ connectionString: PG_ADMIN.replace(/\/postgres$/, `/${database}`) });

  const axe = async (screen: string) => {
    expect(await seriousAxeViolations(page), `axe on ${screen}`).toEqual([]);
  };
  const shot = (name: string) => screenshot(page, name);
  const section = async (label: string) => {
    await page.getByRole("navigation", { name: "Integration sections" }).getByRole("link", { name: label }).click();
    await expect
      .poll(() => page.getByRole("link", { name: label, exact: true }).getAttribute("aria-current"), { timeout: WAIT })
      .toBe("page");
  };
  const signIn = async (key: string) => {
    await page.goto(`${nexus.url}/console/`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("who").waitFor();
  };
  const ingress = async (body: Record<string, unknown>) => {
    const res = await fetch(`${nexus.url}/ingress`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": appKey },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { message_id: string }).message_id;
  };

  /** An edge agent's configuration sync with its token (what `nexus edge` calls). */
  const edgeSync = (token: string) =>
    fetch(`${nexus.url}/nexus.integration.v1.EdgeService/GetEdgeConfig`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: "{}",
    });

  beforeAll(async () => {
    buildConsole({ production: true });
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    const c = db();
    await c.connect();
    await c.query("CREATE TABLE orders (id text PRIMARY KEY, amount numeric NOT NULL, customer text, note text)");
    await c.end();
    rx = await startReceiver(RECEIVER_PORT);
    data = tempDir("nexus-console-int-");
    nexus = await startNexus({ args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", data.dir], timeoutMs: 120_000 });
    ownerKey = await eventually(
      "nexus dev printed the demo owner key",
      () => /owner key \([0-9a-f]+\):\s+(nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43})/.exec(nexus.output())?.[1],
      WAIT,
    );
    platformKey = /platform operator key \([0-9a-f]+\):\s+(nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43})/.exec(nexus.output())?.[1] ?? "";
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    context.setDefaultTimeout(WAIT);
    page = await context.newPage();
    page.on("dialog", (d) => void d.accept());
  }, 240_000);

  // A failing step leaves a picture of what the person would have seen (in the temp directory).
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail") writeFileSync(`${tmpdir()}/console-integration-nexus.log`, nexus?.output() ?? "");
    if (ctx.task.result?.state === "fail")
      await page
        ?.screenshot({
          path: `${tmpdir()}/console-integration-failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, "-")}.png`,
          fullPage: true,
        })
        .catch(() => undefined);
  });

  afterAll(async () => {
    await browser?.close();
    await nexus?.stop();
    await rx?.close();
    data?.remove();
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }, STEP);

  it(
    "creates a sender app with a field schema; the app key is shown once with a copy button",
    async () => {
      await signIn(ownerKey);
      await page.getByRole("navigation", { name: "Screens" }).getByRole("link", { name: "Integration" }).click();
      await page.getByRole("heading", { level: 1, name: "Integration" }).waitFor();
      await page.getByText("No sender apps yet.").waitFor();
      await axe("integration: sender apps (empty)");

      await page.locator("#app-name").fill("orders-app");
      for (const [i, name, type, required] of [
        [0, "order_id", "string", true],
        [1, "amount", "number", true],
        [2, "customer", "string", false],
      ] as const) {
        await page.getByRole("button", { name: "Add field" }).click();
        await page.locator(`#new-app-f${i}-name`).fill(name);
        await page.locator(`#new-app-f${i}-type`).selectOption({ label: type });
        if (required) await page.locator(`#new-app-f${i}-name`).locator("..").getByRole("checkbox").check();
      }
      await page.getByRole("button", { name: "Create sender app" }).click();
      appKey = (await page.getByTestId("new-secret").textContent()) ?? "";
      expect(appKey).toMatch(/^nxa_/);
      await expect.poll(() => page.getByRole("button", { name: "Copy" }).count()).toBe(1);
      const row = page.getByTestId("app-orders-app");
      await expect.poll(() => row.textContent(), { timeout: WAIT }).toContain("order_id: string (required)");
      await axe("integration: sender apps");
      await shot("integration-apps");
      await page.getByRole("button", { name: "Done" }).click();
      expect(await page.getByTestId("new-secret").count()).toBe(0);
      // The key works at ingress (no workflow yet: accepted for none).
      const res = await fetch(`${nexus.url}/ingress`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": appKey },
        body: JSON.stringify({ order_id: "o-0", amount: 1 }),
      });
      expect(res.status).toBe(202);
      // A payload against the schema is refused, naming the field.
      const bad = await fetch(`${nexus.url}/ingress`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": appKey },
        body: JSON.stringify({ order_id: "o-x", amount: "lots" }),
      });
      expect(bad.status).toBe(400);
      expect(await bad.text()).toContain("payload.amount");
    },
    STEP,
  );

  it(
    "creates REST and PostgreSQL destinations, tests connections (latency or the error) and browses tables and columns",
    async () => {
      await section("Destinations");
      await page.getByText("No destinations yet.").waitFor();
      // A connection that fails is shown with its error, before saving anything.
      await page.locator("#new-d-name").fill("receiver");
      await page.locator("#new-d-url").fill(`http://127.0.0.1:${DEAD_PORT}`);
      await page.getByRole("button", { name: "Test connection" }).click();
      await expect
        .poll(() => page.getByTestId("test-result").textContent(), { timeout: WAIT })
        .toMatch(/Connection failed after \d+ ms: .+/);
      await page.locator("#new-d-url").fill(`http://127.0.0.1:${RECEIVER_PORT}`);
      await page.getByRole("button", { name: "Test connection" }).click();
      await expect.poll(() => page.getByTestId("test-result").textContent(), { timeout: WAIT }).toMatch(/Connected in \d+ ms/);
      await page.getByRole("button", { name: "Create destination" }).click();
      await page.getByTestId("destination-receiver").waitFor();

      await page.locator("#new-d-name").fill("orders-db");
      await page.locator("#new-d-kind").selectOption({ label: "PostgreSQL" });
      await page.locator("#new-d-host").fill("127.0.0.1");
      await page.locator("#new-d-port").fill("5432");
      await page.locator("#new-d-db").fill(database);
      await page.locator("#new-d-dbuser").fill("postgres");
      await page.getByRole("button", { name: "Create destination" }).click();
      const dest = page.getByTestId("destination-orders-db");
      await dest.waitFor();
      await dest.getByRole("button", { name: "Test connection of orders-db" }).click();
      await expect.poll(() => dest.getByTestId("test-result").textContent(), { timeout: WAIT }).toMatch(/Connected in \d+ ms \(.*\d/);
      await dest.getByRole("button", { name: "Browse schema of orders-db" }).click();
      await dest.getByRole("button", { name: "public.orders" }).click();
      const columns = dest.getByRole("table", { name: "Columns of public.orders" });
      await columns.waitFor();
      expect(await columns.getByRole("row").count()).toBe(5);
      expect(await columns.textContent()).toContain("numeric");
      // Secrets are write-only: stored, never shown; the edit form starts with the field empty.
      await page.locator("#new-d-name").fill("vault-api");
      await page.locator("#new-d-url").fill(`http://127.0.0.1:${RECEIVER_PORT}/vault`);
      await page.locator("#new-d-auth").selectOption({ label: "bearer token" });
      await page.locator("#new-d-secret").fill("s3cret-token");
      await page.getByRole("button", { name: "Create destination" }).click();
      const vault = page.getByTestId("destination-vault-api");
      await vault.waitFor();
      expect(await vault.textContent()).toContain("secret stored");
      // The form empties after the save; the page never shows the secret again.
      await expect.poll(() => page.locator("#new-d-name").inputValue(), { timeout: WAIT }).toBe("");
      expect(await page.content()).not.toContain("s3cret-token");
      await vault.getByRole("button", { name: "Edit vault-api" }).click();
      expect(await vault.locator("input[type=password]").inputValue()).toBe("");
      await vault.getByRole("button", { name: "Cancel" }).click();
      await axe("integration: destinations");
      await shot("integration-destinations");
    },
    STEP,
  );

  it(
    "builds a fan-out workflow in the editor with the field mapper, shows the JSONata error on its node, saves after the fix",
    async () => {
      await section("Workflows");
      await page.getByText("No workflows yet.").waitFor();
      await page.getByRole("button", { name: "New workflow" }).click();
      await page.locator("#wf-name").fill("orders-fanout");
      await page.locator("#wf-app").selectOption({ label: "orders-app" });
      // Keyboard: the editor's buttons and the node list work without a mouse.
      await page.getByRole("button", { name: "Add destination" }).focus();
      await page.keyboard.press("Enter");
      await page.locator("#tg-dest").selectOption({ label: "receiver (REST API)" });
      await page.getByRole("button", { name: "Add destination" }).click();
      await page.locator("#tg-dest").selectOption({ label: "orders-db (PostgreSQL)" });
      const mapper = page.getByTestId("field-mapper");
      await mapper.getByLabel("Table", { exact: true }).selectOption("orders");
      await mapper.getByLabel("Source field for id").fill("order_id");
      await mapper.getByLabel("Source field for amount").fill("amount");
      await mapper.getByLabel("Source field for customer").fill("customer");
      await mapper.getByLabel("Default for customer").fill("unknown");
      await mapper.getByLabel("Null strategy for customer").selectOption({ label: "write the default" });
      await expect.poll(() => page.locator(".react-flow__edge").count(), { timeout: WAIT }).toBe(2);

      await page.getByRole("button", { name: "receiver", exact: true }).focus();
      await page.keyboard.press("Enter");
      expect(await page.getByRole("button", { name: "receiver", exact: true }).getAttribute("aria-pressed")).toBe("true");
      const receiverNode = page.getByTestId("node-receiver");
      await receiverNode.locator("textarea").focus();
      await page.keyboard.type('{"id": order_id, "total": amount *}');
      await page.getByRole("button", { name: "Create workflow" }).click();
      const nodeError = receiverNode.getByRole("alert");
      await expect.poll(() => nodeError.textContent(), { timeout: WAIT }).toContain("JSONata expression does not compile");
      expect(await nodeError.textContent()).toContain("transform");
      await axe("integration: workflow editor with an error");

      await receiverNode.locator("textarea").fill('{"id": order_id, "total": amount, "customer": customer}');
      await page.getByRole("button", { name: "Create workflow" }).click();
      await page.getByRole("status").filter({ hasText: "Saved as version 1." }).waitFor();
      expect(await receiverNode.getByRole("alert").count()).toBe(0);
      await page.getByTestId("version-1").waitFor();
      await axe("integration: workflow editor");
      await shot("integration-workflow");
    },
    STEP,
  );

  it(
    "a message sent through ingress appears in the live execution log for both destinations",
    async () => {
      await section("Execution log");
      await page.getByRole("button", { name: "Live tail" }).click();
      await page.getByText("Live: new entries appear as they are written.").waitFor();
      const messageId = await ingress({ order_id: "o-1", amount: 12.5 });
      const tail = page.getByTestId("tail");
      await expect
        .poll(async () => (await tail.getByTestId("execution-status").allTextContents()).filter((s) => s === "succeeded").length, {
          timeout: STEP - 30_000,
        })
        .toBe(2);
      expect(await tail.textContent()).toContain(messageId);
      expect(await tail.textContent()).toContain("orders-db");
      await axe("integration: live execution log");
      await shot("integration-executions");
      // Delivered for real: the row in PostgreSQL (default for the missing customer), the body at the receiver.
      const c = db();
      await c.connect();
      const rows = (await c.query("SELECT id, amount::float AS amount, customer FROM orders")).rows;
      await c.end();
      expect(rows).toEqual([{ id: "o-1", amount: 12.5, customer: "unknown" }]);
      expect(rx.received.map((r) => r.body)).toContainEqual({ id: "o-1", total: 12.5 });

      // The filtered list: succeeded entries of this message.
      await page.getByRole("button", { name: "Stop live tail" }).click();
      await page.locator("#ex-status").selectOption({ label: "succeeded" });
      await page.locator("#ex-msg").fill(messageId);
      await expect.poll(() => page.getByTestId("executions").getByTestId("execution-status").count(), { timeout: WAIT }).toBe(2);
      await page.locator("#ex-status").selectOption({ label: "dead-lettered" });
      await page.getByText("No entries match.").waitFor();
      await page.getByText(/No dead letters/).waitFor();
      await axe("integration: execution log");
    },
    STEP,
  );

  it(
    "saving creates a new version; rolling back makes the first one current again",
    async () => {
      await section("Workflows");
      await page.getByRole("button", { name: "Open orders-fanout" }).click();
      const receiverNode = page.getByTestId("node-receiver");
      await receiverNode.locator("textarea").fill('{"id": order_id, "total": amount, "v": 2}');
      await page.getByRole("button", { name: "Save new version" }).click();
      await page.getByRole("status").filter({ hasText: "Saved as version 2." }).waitFor();
      await page.getByTestId("version-2").waitFor();
      await page.getByRole("button", { name: "Roll back to version 1" }).click();
      await expect.poll(() => page.getByTestId("version-3").textContent(), { timeout: WAIT }).toContain("(current)");
      expect(await page.getByTestId("node-receiver").locator("textarea").inputValue()).toBe(
        '{"id": order_id, "total": amount, "customer": customer}',
      );
      await ingress({ order_id: "o-2", amount: 3, customer: "ACME" });
      await eventually(
        "the receiver got o-2 from version 3 (= version 1)",
        () => rx.received.find((r) => (r.body as { id?: string })?.id === "o-2"),
        WAIT,
      );
      expect(rx.received.map((r) => r.body)).toContainEqual({ id: "o-2", total: 3, customer: "ACME" });
    },
    STEP,
  );

  it(
    "edge agents: register one (token shown once), assign an app, revoke it",
    async () => {
      await section("Edge agents");
      await page.getByText("No edge agents registered.").waitFor();
      await page.getByLabel("Name").fill("plant-1");
      await page.getByRole("button", { name: "Register edge agent" }).click();
      const token = (await page.getByTestId("new-secret").textContent()) ?? "";
      expect(token).toMatch(/^nxe_/);
      const row = page.getByTestId("edge-plant-1");
      await row.waitFor();
      expect(await row.getByTestId("edge-state").textContent()).toBe("active");
      expect(await row.textContent()).toContain("none (it accepts nothing)");
      // The token works (the agent's sync), and the page shows it only once.
      expect((await edgeSync(token)).status).toBe(200);
      await axe("integration: edge agents (token shown)");
      await page.getByRole("button", { name: "Done" }).click();
      expect(await page.getByTestId("new-secret").count()).toBe(0);
      await row.getByLabel("Assign app to plant-1").selectOption({ label: "orders-app" });
      await row.getByRole("button", { name: "Assign to plant-1" }).click();
      await row.getByRole("button", { name: "Unassign orders-app from plant-1" }).waitFor();
      await expect.poll(() => row.getByTestId("edge-status").textContent(), { timeout: WAIT }).toMatch(/Last seen (?!never)/);
      await axe("integration: edge agents");
      await shot("integration-edge");
      await row.getByRole("button", { name: "Revoke plant-1" }).click();
      await expect.poll(() => row.getByTestId("edge-state").textContent(), { timeout: WAIT }).toMatch(/^revoked/);
      expect(await row.getByRole("button").count()).toBe(0);
      expect((await edgeSync(token)).status).toBe(401);
    },
    STEP,
  );

  it(
    "objects managed by Kubernetes are read-only",
    async () => {
      const platform = createNexusClient({ baseUrl: nexus.url, apiKey: platformKey });
      const owner = createNexusClient({ baseUrl: nexus.url, apiKey: ownerKey });
      const { principal } = await owner.auth.whoAmI({});
      await platform.integration.createSenderApp({
        tenantId: principal?.tenantId ?? "",
        name: "k8s-app",
        kubernetesResource: "SenderApp default/k8s-app",
      });
      await section("Sender apps");
      await page.reload();
      const row = page.getByTestId("app-k8s-app");
      await row.waitFor();
      expect(await row.getByTestId("managed").textContent()).toContain("SenderApp default/k8s-app");
      expect(await row.getByRole("button").count()).toBe(0);
      // The ordinary app next to it stays editable.
      expect(await page.getByTestId("app-orders-app").getByRole("button", { name: "Edit schema of orders-app" }).count()).toBe(1);
      await axe("integration: managed app");
    },
    STEP,
  );

  it(
    "a viewer sees the integration objects but no create, edit or delete controls",
    async () => {
      const owner = createNexusClient({ baseUrl: nexus.url, apiKey: ownerKey });
      const { plaintextKey } = await owner.auth.createApiKey({ name: "int-viewer", role: Role.VIEWER });
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByLabel("API key").waitFor();
      await signIn(plaintextKey);
      await page.goto(`${nexus.url}/console/integration/apps`);
      await page.getByTestId("app-orders-app").waitFor();
      expect(await page.getByRole("heading", { name: "Create a sender app" }).count()).toBe(0);
      expect(await page.getByTestId("app-orders-app").getByRole("button").count()).toBe(0);
      await section("Destinations");
      await page.getByTestId("destination-receiver").waitFor();
      expect(await page.getByRole("button", { name: /Create destination|Edit|Delete|Test connection/ }).count()).toBe(0);
      await section("Workflows");
      await page.getByTestId("workflow-orders-fanout").waitFor();
      expect(await page.getByRole("button", { name: "New workflow" }).count()).toBe(0);
      await page.getByRole("button", { name: "Open orders-fanout" }).click();
      await page.getByTestId("node-receiver").waitFor();
      expect(await page.getByRole("button", { name: /Save new version|Add destination|Roll back/ }).count()).toBe(0);
      expect(await page.getByTestId("node-receiver").locator("textarea").getAttribute("readonly")).not.toBeNull();
      // Edge agents: listed for a viewer, without register, assign or revoke controls.
      await section("Edge agents");
      await page.getByTestId("edge-plant-1").waitFor();
      expect(await page.getByRole("heading", { name: "Register an edge agent" }).count()).toBe(0);
      expect(await page.getByRole("button", { name: /Register|Assign|Unassign|Revoke/ }).count()).toBe(0);
      await axe("integration: viewer");
    },
    STEP,
  );
});
