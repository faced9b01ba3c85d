import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CONFIG_VARIABLES, ConfigError, configVariablesMarkdown, loadConfig, loadConfigValue, SERVICE_NAMES } from "./config.js";

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

/**
 * First-column names (backticks stripped) of the Markdown table that documents NEXUS_PORT —
 * the environment variable table, whatever its header says.
 */
function tableNames(markdown: string): string[] {
  const tables: string[][] = [];
  let current: string[] | undefined;
  for (const line of markdown.split("\n")) {
    if (line.trim().startsWith("|")) {
      if (!current) tables.push((current = []));
      current.push(line.split("|")[1]!.trim().replace(/`/g, ""));
    } else {
      current = undefined;
    }
  }
  // Drop each table's header and separator rows.
  return tables.map((rows) => rows.slice(2)).find((names) => names.includes("NEXUS_PORT")) ?? [];
}

describe("loadConfig", () => {
  it("has a default for everything, and leaves the embedded backends on when URLs are unset", () => {
    const config = loadConfig({});
    // The kernel's own variables; services' variables are checked by their own tests.
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 8080,
      logLevel: "info",
      logPretty: false,
      databaseUrl: undefined,
      dataDir: ".nexus",
      natsUrl: undefined,
      natsStream: "NEXUS_EVENTS",
      subjectPrefix: "nexus",
      dlqStream: "NEXUS_DLQ",
      maxDeliver: 5,
      maxRequestBytes: 4194304,
      shutdownTimeoutMs: 15000,
      corsOrigins: "*",
      services: [...SERVICE_NAMES],
      serviceName: "nexus",
      authUrl: undefined,
      meteringUrl: undefined,
      ingestionUrl: undefined,
      retrievalUrl: undefined,
      agentUrl: undefined,
      modulesUrl: undefined,
    });
  });

  it("parses given values and treats empty ones as unset", () => {
    const config = loadConfig({
      NEXUS_HOST: "127.0.0.1",
      NEXUS_PORT: "9090",
      LOG_LEVEL: "DEBUG",
      NEXUS_LOG_PRETTY: "yes",
      DATABASE_URL: "postgres://postgres@127.0.0.1:5432/nexus",
      NATS_URL: "nats://a:4222, nats://b:4222",
      NEXUS_CORS_ORIGINS: "https://app.example.com, http://localhost:3000",
      NEXUS_SERVICES: "retrieval, auth",
      NEXUS_SHUTDOWN_TIMEOUT_MS: "0",
      NEXUS_DATA_DIR: "",
    });
    expect(config.host).toBe("127.0.0.1");
    expect(config.port).toBe(9090);
    expect(config.logLevel).toBe("debug");
    expect(config.logPretty).toBe(true);
    expect(config.databaseUrl).toBe("postgres://postgres@127.0.0.1:5432/nexus");
    expect(config.natsUrl).toEqual(["nats://a:4222", "nats://b:4222"]);
    expect(config.corsOrigins).toEqual(["https://app.example.com", "http://localhost:3000"]);
    expect(config.services).toEqual(["retrieval", "auth"]);
    expect(config.shutdownTimeoutMs).toBe(0);
    expect(config.dataDir).toBe(".nexus");
  });

  it("returns a frozen object, lists included", () => {
    const config = loadConfig({ NEXUS_SERVICES: "auth" });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.services)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it("names the variable, the bad value and what is expected", () => {
    const err = configError({ NEXUS_PORT: "80a" });
    expect(err.variables).toEqual(["NEXUS_PORT"]);
    expect(err.message).toContain('NEXUS_PORT="80a"');
    expect(err.message).toContain("expected an integer from 0 to 65535");
    expect(err.message).toContain("default 8080");

    expect(configError({ LOG_LEVEL: "loud" }).message).toContain("one of fatal, error, warn, info, debug, trace, silent");
    expect(configError({ NEXUS_SERVICES: "auth,billing" }).message).toContain("NEXUS_SERVICES");
    expect(configError({ NEXUS_CORS_ORIGINS: "https://app.example.com/path" }).message).toContain("NEXUS_CORS_ORIGINS");
    expect(configError({ NEXUS_MAX_DELIVER: "0" }).message).toContain("NEXUS_MAX_DELIVER");
    expect(configError({ NEXUS_NATS_STREAM: "events.all" }).message).toContain("NEXUS_NATS_STREAM");
  });

  it("reads the refused-authentication limiter and the trusted proxies (0 turns the limiter off)", () => {
    expect(loadConfig({})).toMatchObject({ authAttemptBurst: 20, authAttemptRatePerSecond: 1, authAttemptMaxEntries: 10000 });
    expect(loadConfig({}).trustedProxies).toBeUndefined();
    const config = loadConfig({
      NEXUS_AUTH_ATTEMPT_BURST: "0",
      NEXUS_AUTH_ATTEMPT_RATE_PER_SECOND: "0.5",
      NEXUS_TRUSTED_PROXIES: " 10.0.0.0/8, 192.168.1.7 ,FD00::/8,::1",
    });
    expect(config).toMatchObject({ authAttemptBurst: 0, authAttemptRatePerSecond: 0.5 });
    expect(config.trustedProxies).toEqual(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"]);
    for (const bad of ["proxy.internal", "10.0.0.0/33", "10.0.0.1/8/1", "::1/129"]) {
      expect(configError({ NEXUS_TRUSTED_PROXIES: bad }).message).toContain("a comma list of IP addresses or CIDRs");
    }
    expect(configError({ NEXUS_AUTH_ATTEMPT_BURST: "-1" }).message).toContain("NEXUS_AUTH_ATTEMPT_BURST");
  });

  it("reports every bad variable at once and never echoes a secret", () => {
    const err = configError({
      DATABASE_URL: "mysql://nexus:s3cr3t-pw@db/nexus",
      NATS_URL: "http://user:natspass@nats:4222",
      NEXUS_LOG_PRETTY: "maybe",
    });
    expect(err.variables.sort()).toEqual(["DATABASE_URL", "NATS_URL", "NEXUS_LOG_PRETTY"]);
    expect(err.message).toContain("DATABASE_URL=(value hidden) is invalid: expected a postgres:// or postgresql:// URL");
    expect(err.message).not.toContain("s3cr3t-pw");
    expect(err.message).not.toContain("natspass");
    expect(err.message).toContain('NEXUS_LOG_PRETTY="maybe"');
  });
});

describe("loadConfigValue", () => {
  it("reads one variable with its default, validated like loadConfig, ignoring the others", () => {
    expect(loadConfigValue("eventsPartitionMaxCopyRows", {})).toBe(2_000_000);
    expect(loadConfigValue("eventsPartitionMaxCopyRows", { NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS: "50000000", NEXUS_PORT: "nope" })).toBe(
      50_000_000,
    );
    const err = (() => {
      try {
        return loadConfigValue("eventsPartitionMaxCopyRows", { NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS: "2M" });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS="2M" is invalid: expected an integer');
  });
});

describe("CONFIG_VARIABLES (the documentation of every variable)", () => {
  it("covers every parsed variable and the OpenTelemetry ones, each with a default and a description", () => {
    const names = CONFIG_VARIABLES.map((v) => v.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "NEXUS_HOST",
        "NEXUS_PORT",
        "LOG_LEVEL",
        "NEXUS_LOG_PRETTY",
        "DATABASE_URL",
        "NEXUS_DATA_DIR",
        "NATS_URL",
        "NEXUS_NATS_STREAM",
        "NEXUS_SUBJECT_PREFIX",
        "NEXUS_DLQ_STREAM",
        "NEXUS_MAX_DELIVER",
        "NEXUS_MAX_REQUEST_BYTES",
        "NEXUS_SHUTDOWN_TIMEOUT_MS",
        "NEXUS_CORS_ORIGINS",
        "NEXUS_SERVICES",
        "NEXUS_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SERVICE_NAME",
      ]),
    );
    expect(new Set(names).size).toBe(names.length);
    for (const v of CONFIG_VARIABLES) {
      expect(v.default.length, v.name).toBeGreaterThan(0);
      expect(v.description.length, v.name).toBeGreaterThan(10);
    }
  });

  it("renders every variable into the Markdown table the README is generated from", () => {
    expect(tableNames(configVariablesMarkdown())).toEqual(CONFIG_VARIABLES.map((v) => v.name));
  });

  const readme = fileURLToPath(new URL("../../README.md", import.meta.url));
  it.skipIf(!existsSync(readme))("matches the README's table of environment variables", () => {
    const names = tableNames(readFileSync(readme, "utf8"));
    expect(names.sort()).toEqual(CONFIG_VARIABLES.map((v) => v.name).sort());
  });
});
