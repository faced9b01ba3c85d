/**
 * End to end, as a user: `nexus dev` (PGlite + local bus, auth bootstrapped with real API
 * keys), then the CLI (`nexus corpora|ingest|docs|search`) and the SDK over HTTP/1.1 Connect
 * and HTTP/2 gRPC.
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { SearchMode } from "../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { createNexusClient } from "../services/client/create-nexus-client.js";
import { NEXUS_BIN, type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";
import { makeDocx, makePdf } from "./support/rag/documents.js";

const run = promisify(execFile);

describe("nexus dev: corpora, ingest, docs and search from the CLI and the SDK", () => {
  let dev: NexusProcess;
  let data: ReturnType<typeof tempDir>;
  let files: ReturnType<typeof tempDir>;
  let ownerKey: string;
  let platformKey: string;

  const nexus = async (args: string[], key = ownerKey) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [NEXUS_BIN, ...args], {
        env: { ...process.env, NEXUS_URL: dev.url, NEXUS_API_KEY: key },
        cwd: files.dir,
      });
      return { code: 0, out: stdout + stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? 1, out: (e.stdout ?? "") + (e.stderr ?? "") };
    }
  };

  beforeAll(async () => {
    data = tempDir();
    files = tempDir("nexus-docs-");
    dev = await startNexus({ args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", data.dir] });
    const keys = await waitForKeys(dev);
    platformKey = keys[0]!;
    ownerKey = keys[1]!;
    mkdirSync(path.join(files.dir, "kb", "nested"), { recursive: true });
    writeFileSync(path.join(files.dir, "kb", "lighthouse.txt"), "The lighthouse keeper logs every ship that passes at night.");
    writeFileSync(path.join(files.dir, "kb", "tides.md"), "# Tides\n\nSpring tides follow the full moon and the new moon.");
    writeFileSync(path.join(files.dir, "kb", "nested", "ferry.pdf"), makePdf(["The ferry to the island leaves at seven."]));
    writeFileSync(path.join(files.dir, "kb", "nested", "storm.docx"), makeDocx(["Storm warnings close the harbour."]));
    writeFileSync(path.join(files.dir, "kb", "page.html"), "<html><body><p>Seals rest on the <b>sandbank</b>.</p></body></html>");
    writeFileSync(path.join(files.dir, "kb", "skip.png"), Buffer.from([137, 80, 78, 71]));
  }, 120_000);
  afterAll(async () => {
    await dev?.stop();
    data?.remove();
    files?.remove();
  });

  it("creates a corpus, ingests a folder with progress until every file succeeds, and is idempotent", async () => {
    const created = await nexus(["corpora", "create", "coast", "--name", "Coast"]);
    expect(created.code, created.out).toBe(0);
    expect(created.out).toContain("local_pgvector");
    const ingested = await nexus(["ingest", "kb", "--corpus", "coast"]);
    expect(ingested.code, ingested.out).toBe(0);
    expect(ingested.out).toContain("5 of 5 file(s) ingested into corpus coast");
    for (const f of ["kb/lighthouse.txt", "kb/tides.md", "kb/nested/ferry.pdf", "kb/nested/storm.docx", "kb/page.html"]) {
      expect(ingested.out).toMatch(new RegExp(`${f}: succeeded`));
    }
    expect(ingested.out).not.toContain("skip.png");
    const again = await nexus(["ingest", "kb", "--corpus", "coast"]);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain("unchanged");
    const list = await nexus(["docs", "list", "--corpus", "coast"]);
    expect(list.out.match(/succeeded/g)?.length).toBe(5);
    const corpus = await nexus(["corpora", "get", "coast", "--json"]);
    expect(JSON.parse(corpus.out)).toMatchObject({ id: "coast", documentCount: "5" });
  });

  it("searches from the CLI with citations", async () => {
    const res = await nexus(["search", "which ship passes at night", "--corpus", "coast"]);
    expect(res.code, res.out).toBe(0);
    expect(res.out).toMatch(/hybrid ranking \(hash-256\)/);
    expect(res.out).toMatch(/1\. lighthouse\.txt \[kb:lighthouse\.txt #0, chars 0-59\]/);
    const json = JSON.parse((await nexus(["search", "ferry island", "--corpus", "coast", "--json", "--top-k", "1"])).out);
    expect(json.hits[0].documentId).toBe("kb:nested:ferry.pdf");
  });

  it("reindexes and deletes documents from the CLI", async () => {
    const re = await nexus(["docs", "reindex", "kb:tides.md", "--chunk-size", "200", "--chunk-overlap", "20"]);
    expect(re.code, re.out).toBe(0);
    expect(re.out).toMatch(/status:\s+succeeded/);
    expect(re.out).toMatch(/version:\s+2/);
    const bad = await nexus(["docs", "reindex", "kb:tides.md", "--chunk-size", "200", "--chunk-overlap", "200"]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/invalid_argument/);
    expect((await nexus(["docs", "delete", "kb:page.html"])).code).toBe(0);
    const gone = await nexus(["docs", "get", "kb:page.html"]);
    expect(gone.code).toBe(1);
    expect(gone.out).toMatch(/not_found/);
  });

  it("serves the SDK over Connect and gRPC with the caller's key; platform keys and no key are refused", async () => {
    for (const protocol of ["connect", "grpc"] as const) {
      const sdk = createNexusClient({ baseUrl: dev.url, apiKey: ownerKey, protocol });
      const res = await sdk.retrieval.search({ corpusId: "coast", query: "storm harbour", topK: 2, mode: SearchMode.HYBRID });
      expect(res.hits[0]?.documentId).toBe("kb:nested:storm.docx");
      const { document } = await sdk.ingestion.ingestText({
        corpusId: "coast",
        documentId: `sdk-${protocol}`,
        text: "Gulls follow the fishing boats.",
      });
      let last: DocumentStatus | undefined;
      for await (const u of sdk.ingestion.watchDocument({ documentId: document!.id })) last = u.document?.status;
      expect(last).toBe(DocumentStatus.SUCCEEDED);
    }
    const anonymous = createNexusClient({ baseUrl: dev.url, apiKey: "" });
    await expect(anonymous.retrieval.listCorpora({})).rejects.toSatisfy(
      (e: unknown) => e instanceof ConnectError && e.code === Code.Unauthenticated,
    );
    const platform = createNexusClient({ baseUrl: dev.url, apiKey: platformKey });
    await expect(platform.ingestion.listDocuments({})).rejects.toSatisfy(
      (e: unknown) => e instanceof ConnectError && e.code === Code.PermissionDenied,
    );
    const letters = await platform.ingestion.listDeadLetters({});
    expect(letters.deadLetters).toEqual([]);
  });
});

/** The platform key and the demo owner key `nexus dev` prints on its first start. */
async function waitForKeys(dev: NexusProcess): Promise<string[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const keys = dev.output().match(/nxs_[A-Za-z0-9_-]+/g) ?? [];
    if (keys.length >= 2) return keys;
    if (Date.now() > deadline) throw new Error(`nexus dev printed no keys:\n${dev.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
