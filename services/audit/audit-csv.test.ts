import { describe, expect, it } from "vitest";
import { csvHeader, csvRow, entriesFromCsv, parseCsv } from "./audit-csv.js";
import { ChainVerifier, chainEntry } from "./domain/audit-entry.js";

describe("audit CSV", () => {
  it("quotes fields with commas, quotes and line breaks and parses them back", () => {
    expect(parseCsv('a,"b,c","d ""e""","f\r\ng"\r\n,\r\n')).toEqual([
      ["a", "b,c", 'd "e"', "f\r\ng"],
      ["", ""],
    ]);
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
        metadata: { reason: 'line1\nline2, "quoted"', n: 1.5, list: [1, "2"] },
        sourceEventId: "e1",
      },
      "00000000-0000-4000-8000-000000000001",
      undefined,
    );
    const second = chainEntry(
      { ...first, eventType: "tenant.resumed", before: undefined, metadata: undefined, sourceEventId: "e2" },
      "id-2",
      first,
    );
    const text = csvHeader() + csvRow(first) + csvRow(second);
    const back = entriesFromCsv(text, "t1");
    expect(back).toEqual([first, second]);
    const v = new ChainVerifier();
    expect(back.map((e) => v.check(e)).filter(Boolean)).toEqual([]);
  });

  it("has a tenant_id column, so a file verifies without being told its tenant and another tenant's file is refused", () => {
    const entry = chainEntry(
      {
        tenantId: "t9",
        occurredAt: new Date("2025-03-10T12:00:00Z"),
        eventType: "auth.access.failure",
        actor: { kind: "anonymous", keyId: "k1", name: "", role: "" },
        action: "nexus.auth.v1.AuthService/WhoAmI",
        resource: { type: "api_key", id: "k1" },
        outcome: "failure",
        requestId: "r",
        correlationId: "c",
        before: undefined,
        after: undefined,
        metadata: undefined,
        sourceEventId: "e",
      },
      "id-1",
      undefined,
    );
    const text = csvHeader() + csvRow(entry);
    expect(parseCsv(text)[0]).toContain("tenant_id");
    expect(parseCsv(text)[1]).toContain("t9");
    expect(entriesFromCsv(text)).toEqual([entry]);
    expect(() => entriesFromCsv(text, "t1")).toThrow(/tenant "t9"/);
    // An export written before the column existed still verifies when told its tenant.
    const legacy = parseCsv(text)
      .map((row) => `${row.filter((_, i) => i !== 2).join(",")}\r\n`)
      .join("");
    const back = entriesFromCsv(legacy, "t9");
    const v = new ChainVerifier();
    expect(back.map((e) => v.check(e)).filter(Boolean)).toEqual([]);
    expect(() => entriesFromCsv(legacy)).toThrow(/no tenant_id column/);
  });

  it("refuses documents that are not audit exports", () => {
    expect(() => entriesFromCsv("a,b\r\n1,2\r\n", "t1")).toThrow(/header/);
  });
});
