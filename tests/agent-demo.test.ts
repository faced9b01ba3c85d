import { spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DEMO_CORPUS_ID, seedDemoCorpus } from "../services/cli/demo/demo-corpus.js";
import { DEMO_DOCUMENTS } from "../services/cli/demo/demo-documents.js";
import { type AgentMesh, startAgentMesh } from "./support/agent-mesh.js";
import { NEXUS_BIN } from "./support/nexus-process.js";
import { describeWithPostgres } from "./support/services.js";

// A newcomer's first minutes: the demo corpus is seeded through the public API, and
// `nexus ask` / `nexus sessions` answer from it with citations, as a user runs them.

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [NEXUS_BIN, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describeWithPostgres("demo corpus and the ask / sessions commands", () => {
  let mesh: AgentMesh;
  let env: Record<string, string>;
  let key: string;

  beforeAll(async () => {
    mesh = await startAgentMesh();
    // A tenant of its own, so this suite does not depend on what `nexus dev` seeds.
    key = (await mesh.newTenant("pro")).key;
    env = { NEXUS_URL: mesh.url, NEXUS_API_KEY: key, LOG_LEVEL: "silent" };
  }, 120_000);
  afterAll(async () => {
    await mesh?.close();
  });

  it("seeds the demo corpus once; seeding again changes nothing", async () => {
    const first = await seedDemoCorpus(mesh.client(key));
    expect(first).toEqual({
      corpusId: DEMO_CORPUS_ID,
      createdCorpus: true,
      queued: DEMO_DOCUMENTS.length,
      ingested: DEMO_DOCUMENTS.length,
    });
    const again = await seedDemoCorpus(mesh.client(key));
    expect(again).toMatchObject({ createdCorpus: false, queued: 0, ingested: DEMO_DOCUMENTS.length });
    const { corpus } = await mesh.client(key).retrieval.getCorpus({ corpusId: DEMO_CORPUS_ID });
    expect(corpus?.documentCount).toBe(BigInt(DEMO_DOCUMENTS.length));
  }, 120_000);

  it('answers `nexus ask "How do I rotate an API key?"` with citations from the demo corpus', async () => {
    const { code, stdout, stderr } = await cli(["ask", "How do I rotate an API key?"], env);
    expect(code, stderr).toBe(0);
    const [answer, sources] = stdout.split("\nSources:\n");
    expect(answer).toContain("To rotate an API key, run `nexus keys rotate <key id>`");
    expect(sources).toMatch(/^\[1\] api-keys\.md, chars \d+–\d+ \(document api-keys, chunk \d+, score [\d.]+\)/);
    expect(stderr).toMatch(/^session ses_\S+ · extractive\/extractive-v1 · request \S+/);
  });

  it("answers other first questions from the right document", async () => {
    const cases: Array<[string, string, string]> = [
      ["How do I ingest documents?", "ingesting-documents.md", "To ingest documents, run"],
      ["Who can set quotas for a tenant?", "quotas.md", "Platform operators set a tenant's quotas"],
      ["How do I enable the openai provider?", "asking-questions.md", "To enable the openai provider, set NEXUS_OPENAI_BASE_URL"],
    ];
    for (const [question, file, expected] of cases) {
      const { code, stdout, stderr } = await cli(["ask", question], env);
      expect(code, stderr).toBe(0);
      expect(stdout, question).toContain(expected);
      expect(stdout.split("\nSources:\n")[1], question).toContain(file);
    }
  });

  it("prints every event as a JSON line with --json, and lists and shows sessions", async () => {
    const asked = await cli(["ask", "--json", "What is the grace period of a key rotation?"], env);
    expect(asked.code, asked.stderr).toBe(0);
    const lines = asked.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => String(i + 1)));
    expect(Object.keys(lines[0]!)).toContain("accepted");
    expect(Object.keys(lines.at(-1)!)).toContain("done");
    const sessionId = (lines[0]!.accepted as { sessionId: string }).sessionId;

    const list = await cli(["sessions", "list"], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+CORPUS\s+MESSAGES\s+UPDATED\s+TITLE/);
    expect(list.stdout.split("\n")[1]).toContain(sessionId);
    expect(list.stdout).toContain("What is the grace period of a key rotation?");

    const shown = await cli(["sessions", "get", sessionId], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain("you (");
    expect(shown.stdout).toContain("nexus (");
    expect(shown.stdout).toContain("The grace period of a rotation is 24 hours unless you pass --grace");
    expect(shown.stdout).toContain("api-keys.md");

    const removed = await cli(["sessions", "delete", sessionId], env);
    expect(removed.code, removed.stderr).toBe(0);
    const gone = await cli(["sessions", "get", sessionId], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("not_found");
  });

  it("nexus dev seeds the demo corpus for the demo tenant on its first start", async () => {
    const { code, stdout, stderr } = await cli(["ask", "How do I rotate an API key?"], { ...env, NEXUS_API_KEY: mesh.ownerKey });
    expect(code, stderr).toBe(0);
    expect(stdout).toContain("To rotate an API key, run `nexus keys rotate <key id>`");
    expect(stdout).toContain("api-keys.md");
  });

  it("explains a missing key and a missing question", async () => {
    const noKey = await cli(["ask", "hello"], { NEXUS_URL: mesh.url, NEXUS_API_KEY: "" });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("NEXUS_API_KEY");
    const noQuestion = await cli(["ask"], env);
    expect(noQuestion.code).toBe(2);
    expect(noQuestion.stderr).toContain("the question is required");
  });
});
