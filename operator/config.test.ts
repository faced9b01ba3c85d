import { describe, expect, it } from "vitest";
import { loadOperatorConfig, OperatorConfigError } from "./config.js";

describe("operator configuration", () => {
  it("needs the platform key and names it", () => {
    expect(() => loadOperatorConfig({})).toThrow(OperatorConfigError);
    expect(() => loadOperatorConfig({})).toThrow(/NEXUS_OPERATOR_PLATFORM_KEY is required/);
  });

  it("has documented defaults, and flags win over the environment", () => {
    const c = loadOperatorConfig(
      { NEXUS_OPERATOR_PLATFORM_KEY: "k", POD_NAMESPACE: "nexus", POD_NAME: "op-0", NEXUS_OPERATOR_PORT: "9000" },
      { port: 1234 },
    );
    expect(c).toMatchObject({ namespace: "nexus", identity: "op-0", port: 1234, leaderElection: true, applyCrds: true, resyncSeconds: 60 });
    expect(c.failover).toMatchObject({
      runtimeConfigMap: "nexus-runtime",
      regionsConfigMap: "nexus-regions",
      cooldownSeconds: 600,
      freezeSettleSeconds: 60,
    });
    expect(c.failover.healthUrls).toEqual(["http://nexus-auth:8080", "http://nexus-metering:8080"]);
    expect(c.integrationUrl).toBe("http://nexus-integration:8080");
  });

  it("refuses bad values with the variable, the value and what is expected", () => {
    expect(() => loadOperatorConfig({ NEXUS_OPERATOR_PLATFORM_KEY: "k", NEXUS_FAILOVER_COOLDOWN_SECONDS: "soon" })).toThrow(
      'NEXUS_FAILOVER_COOLDOWN_SECONDS="soon" is invalid: expected an integer from 0 to 86400 (default 600)',
    );
    expect(() => loadOperatorConfig({ NEXUS_OPERATOR_PLATFORM_KEY: "k", NEXUS_AUTH_URL: "nexus-auth:8080" })).toThrow(/NEXUS_AUTH_URL/);
    expect(() => loadOperatorConfig({ NEXUS_OPERATOR_PLATFORM_KEY: "k", NEXUS_OPERATOR_LEADER_ELECTION: "maybe" })).toThrow(
      /true or false/,
    );
  });
});
