import { describe, expect, it } from "vitest";
import { agentSection } from "./grpc-corpus-settings.js";

describe("corpus model settings", () => {
  it("reads provider and model from provider_config.agent", () => {
    expect(agentSection({ retrieval: { provider: "local_pgvector" }, agent: { provider: "openai", model: "gpt-4o-mini" } })).toEqual({
      provider: "openai",
      model: "gpt-4o-mini",
    });
    expect(agentSection({ agent: { model: "m" } })).toEqual({ model: "m" });
  });

  it("names nothing when the section is missing or malformed", () => {
    expect(agentSection(undefined)).toEqual({});
    expect(agentSection({ retrieval: {} })).toEqual({});
    expect(agentSection({ agent: "openai" })).toEqual({});
    expect(agentSection({ agent: { provider: 3, model: "" } })).toEqual({});
  });
});
