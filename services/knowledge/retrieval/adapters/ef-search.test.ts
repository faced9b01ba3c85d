import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../kernel/config.js";
import { efSearchFor } from "./postgres-search-index.js";

describe("HNSW candidate list per search", () => {
  it("is the configured floor, or 4 × top_k for a large top_k (at most 200 candidates)", () => {
    expect(efSearchFor(5)).toBe(100);
    expect(efSearchFor(5, 400)).toBe(400);
    expect(efSearchFor(40, 60)).toBe(160);
    expect(efSearchFor(100, 60)).toBe(200);
  });

  it("comes from NEXUS_SEARCH_EF_SEARCH, validated at start-up", () => {
    expect(loadConfig({}).searchEfSearch).toBe(100);
    expect(loadConfig({ NEXUS_SEARCH_EF_SEARCH: "400" }).searchEfSearch).toBe(400);
    expect(() => loadConfig({ NEXUS_SEARCH_EF_SEARCH: "5" })).toThrow(/NEXUS_SEARCH_EF_SEARCH/);
  });
});
