import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type AuditDraft, ChainVerifier, canonicalForm, canonicalJson, chainEntry, GENESIS_HASH } from "./audit-entry.js";

const draft = (n: number): AuditDraft => ({
  tenantId: "t1",
  occurredAt: new Date(Date.UTC(2025, 2, 10, 12, 0, n)),
  eventType: "corpora.updated",
  actor: { kind: "tenant", keyId: "k1", name: "deploy", role: "admin" },
  action: "nexus.retrieval.v1.RetrievalService/UpdateCorpus",
  resource: { type: "corpus", id: `c${n}` },
  outcome: "success",
  requestId: `r${n}`,
  correlationId: "",
  before: { b: 1, a: [2, { z: null, y: "x" }] },
  after: undefined,
  metadata: { n },
  sourceEventId: `e${n}`,
});

describe("audit entry hashing", () => {
  it("canonical JSON sorts keys at every depth and keeps array order", () => {
    expect(canonicalJson({ b: 1, a: [2, { z: null, y: "x" }] })).toBe('{"a":[2,{"y":"x","z":null}],"b":1}');
  });

  it("hashes prev_hash and the canonical form", () => {
    const e = chainEntry(draft(1), "id-1", undefined);
    expect(e).toMatchObject({ sequence: 1, prevHash: GENESIS_HASH });
    expect(e.hash).toBe(
      createHash("sha256")
        .update(`${GENESIS_HASH}\n${canonicalForm(e)}`)
        .digest("hex"),
    );
    expect(canonicalForm(e)).toContain('"occurred_at":"2025-03-10T12:00:01.000Z"');
    expect(canonicalForm(e)).toContain('"sequence":"1"');
  });

  it("the verifier accepts an intact chain and names the first broken link", () => {
    const chain = [chainEntry(draft(1), "id-1", undefined)];
    for (let i = 2; i <= 4; i++) chain.push(chainEntry(draft(i), `id-${i}`, chain[chain.length - 1]));
    const ok = new ChainVerifier();
    expect(chain.map((e) => ok.check(e)).filter(Boolean)).toEqual([]);
    expect(ok.headHash).toBe(chain[3]!.hash);

    const altered = chain.map((e) => (e.sequence === 3 ? { ...e, requestId: "forged" } : e));
    const v = new ChainVerifier();
    altered.forEach((e) => v.check(e));
    expect(v.firstBrokenLink).toMatchObject({ sequence: 3, eventId: "id-3", problem: "hash_mismatch" });
    expect(v.checked).toBe(3);

    const gap = new ChainVerifier();
    chain.filter((e) => e.sequence !== 2).forEach((e) => gap.check(e));
    expect(gap.firstBrokenLink).toMatchObject({ sequence: 2, problem: "sequence_gap" });

    const relinked = new ChainVerifier();
    chain.map((e) => (e.sequence === 4 ? { ...e, prevHash: "f".repeat(64) } : e)).forEach((e) => relinked.check(e));
    expect(relinked.firstBrokenLink).toMatchObject({ sequence: 4, problem: "prev_hash_mismatch", expectedHash: chain[2]!.hash });
  });
});
