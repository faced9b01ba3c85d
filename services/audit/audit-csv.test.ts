import { describe, expect, it } from "vitest";
import { csvHeader, csvRow, entriesFromCsv, parseCsv } from "./audit-csv.js";
import { chainEntry, ChainVerifier } from "./domain/audit-entry.js";

describe("audit CSV", () => {
  it("quotes fields with commas, quotes and line breaks and parses them back", () => {
    expect(parseCsv('a,"b,c","d ""e""","f\r\ng"\r\n,\r\n')).toEqual([["a", "b,c", 'd "e"', "f\r\ng"], ["", ""]]);
  });

  it("round-trips entries, hashes included", () => {
    const first = chainEntry(
      {
        tenantId: "t1",
        occurredAt: new Date("2025-03-10T12:00:00.123Z"),
        eventType: "tenant.suspended",
        actor: { kind: "platform", keyId: "kp", name: 'ops, "night"', role: "" },
        action: "nexus.auth.v1.AuthService/SuspendTenant",
        resource: { type: "tenant", id: "t1" },
        outcome: "success",
        requestId: "r1",
        correlationId: "c1",
        before: { status: "active" },
        after: undefined,
        metadata: { reason: "line1\nline2, \"quoted\"", n: 1.5, list: [1, "2"] },
        sourceEventId: "e1",
      },
      "00000000-0000-4000-8000-000000000001",
      undefined,
    );
    const second = chainEntry({ ...first, eventType: "tenant.resumed", before: undefined, metadata: undefined, sourceEventId: "e2" }, "id-2", first);
    const text = csvHeader() + csvRow(first) + csvRow(second);
    const back = entriesFromCsv(text, "t1");
    expect(back).toEqual([first, second]);
    const v = new ChainVerifier();
    expect(back.map((e) => v.check(e)).filter(Boolean)).toEqual([]);
  });

  it("refuses documents that are not audit exports", () => {
    expect(() => entriesFromCsv("a,b\r\n1,2\r\n", "t1")).toThrow(/header/);
  });
});
