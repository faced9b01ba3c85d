import { hostname } from "node:os";

/**
 * The operator's configuration, read from environment variables (the chart sets them; the
 * operator is a separate program from the services, so it has its own table here rather than
 * in services/kernel/config.ts). Command-line flags of `nexus operator` override some.
 *
 * | Variable | Default | Meaning |
 * |---|---|---|
 * | KUBECONFIG | (in-cluster service account) | kubeconfig file; `--kubeconfig` wins. |
 * | NEXUS_OPERATOR_NAMESPACE | POD_NAMESPACE, else "default" | Namespace of the leader Lease, failover Lease, runtime and regions ConfigMaps, and the Nexus Deployments. |
 * | NEXUS_OPERATOR_WATCH_NAMESPACE | (all namespaces) | Watch Tenants/Quotas/Failovers in one namespace only. |
 * | NEXUS_AUTH_URL | http://nexus-auth:8080 | Auth service base URL. |
 * | NEXUS_METERING_URL | http://nexus-metering:8080 | Metering service base URL. |
 * | NEXUS_INTEGRATION_URL | http://nexus-integration:8080 | Integration service base URL (Workflow, Destination, SenderApp). |
 * | NEXUS_OPERATOR_PLATFORM_KEY | (required) | Platform API key the operator acts with; secret. |
 * | NEXUS_OPERATOR_PORT | 8081 | Port of /healthz, /readyz, /metrics; `--port` wins. |
 * | NEXUS_OPERATOR_IDENTITY | POD_NAME, else the host name | Leader Lease holder identity. |
 * | NEXUS_OPERATOR_LEADER_ELECTION | true | Elect a leader through a Lease (run 2+ replicas safely). |
 * | NEXUS_OPERATOR_LEADER_LEASE | nexus-operator-leader | Leader Lease name. |
 * | NEXUS_OPERATOR_APPLY_CRDS | true | Apply the CRDs server-side at start-up (how upgrades reach them). |
 * | NEXUS_OPERATOR_RESYNC_SECONDS | 60 | How often Tenants (keys) and Quotas (usage) are checked again. |
 * | NEXUS_FAILOVER_RUNTIME_CONFIGMAP | nexus-runtime | Shared flags ConfigMap (writeFrozen, databaseRegion, databaseEndpoint). |
 * | NEXUS_FAILOVER_REGIONS_CONFIGMAP | nexus-regions | Region catalog ConfigMap. |
 * | NEXUS_FAILOVER_PRIMARY_REGION | (unset) | Region recorded as primary when the runtime ConfigMap is first created. |
 * | NEXUS_FAILOVER_LEASE | nexus-failover | Lease letting one failover run at a time. |
 * | NEXUS_FAILOVER_COOLDOWN_SECONDS | 600 | Minimum time between two failovers. |
 * | NEXUS_FAILOVER_FREEZE_SETTLE_SECONDS | 60 | Wait after freezing writes (kubelet refreshes mounted ConfigMaps within about a minute). |
 * | NEXUS_FAILOVER_VERIFICATION_TIMEOUT_SECONDS | 300 | How long verification waits for healthy services. |
 * | NEXUS_FAILOVER_HEALTH_URLS | NEXUS_AUTH_URL,NEXUS_METERING_URL | Comma list of service base URLs whose /readyz must be 200. |
 * | NEXUS_FAILOVER_DEPLOYMENT_SELECTOR | app.kubernetes.io/part-of=nexus,nexus.dev/database-client=true | Deployments rolled onto a new database endpoint. |
 * | LOG_LEVEL | info | pino level. |
 */
export interface OperatorConfig {
  kubeconfig: string | undefined;
  namespace: string;
  watchNamespace: string | undefined;
  authUrl: string;
  meteringUrl: string;
  integrationUrl: string;
  platformKey: string;
  port: number;
  identity: string;
  leaderElection: boolean;
  leaderLease: string;
  applyCrds: boolean;
  resyncSeconds: number;
  failover: {
    runtimeConfigMap: string;
    regionsConfigMap: string;
    primaryRegion: string | undefined;
    leaseName: string;
    cooldownSeconds: number;
    freezeSettleSeconds: number;
    verificationTimeoutSeconds: number;
    healthUrls: string[];
    deploymentSelector: string;
  };
  logLevel: string;
}

/** A bad operator setting (names the variable). */
export class OperatorConfigError extends Error {
  override name = "OperatorConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

const get = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim();
  return v ? v : undefined;
};

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = get(env, name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max)
    throw new OperatorConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected an integer from ${min} to ${max} (default ${def})`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = get(env, name)?.toLowerCase();
  if (raw === undefined) return def;
  if (["true", "1", "yes", "on"].includes(raw)) return true;
  if (["false", "0", "no", "off"].includes(raw)) return false;
  throw new OperatorConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected true or false (default ${def})`);
}

function url(env: Env, name: string, def: string): string {
  const raw = get(env, name) ?? def;
  try {
    const u = new URL(raw);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("scheme");
  } catch {
    throw new OperatorConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected an http(s):// URL`);
  }
  return raw.replace(/\/$/, "");
}

/** Reads the operator configuration; `overrides` are the command-line flags. */
export function loadOperatorConfig(env: Env = process.env, overrides: { kubeconfig?: string; port?: number } = {}): OperatorConfig {
  const platformKey = get(env, "NEXUS_OPERATOR_PLATFORM_KEY");
  if (!platformKey) {
    throw new OperatorConfigError(
      "NEXUS_OPERATOR_PLATFORM_KEY is required: the platform API key the operator calls Nexus with (from a Secret)",
    );
  }
  const authUrl = url(env, "NEXUS_AUTH_URL", "http://nexus-auth:8080");
  const meteringUrl = url(env, "NEXUS_METERING_URL", "http://nexus-metering:8080");
  const integrationUrl = url(env, "NEXUS_INTEGRATION_URL", "http://nexus-integration:8080");
  const healthRaw = get(env, "NEXUS_FAILOVER_HEALTH_URLS");
  const healthUrls = healthRaw
    ? healthRaw.split(",").map((s, i) => url({ [`NEXUS_FAILOVER_HEALTH_URLS[${i}]`]: s }, `NEXUS_FAILOVER_HEALTH_URLS[${i}]`, s))
    : [...new Set([authUrl, meteringUrl])];
  return {
    kubeconfig: overrides.kubeconfig ?? get(env, "KUBECONFIG"),
    namespace: get(env, "NEXUS_OPERATOR_NAMESPACE") ?? get(env, "POD_NAMESPACE") ?? "default",
    watchNamespace: get(env, "NEXUS_OPERATOR_WATCH_NAMESPACE"),
    authUrl,
    meteringUrl,
    integrationUrl,
    platformKey,
    port: overrides.port ?? int(env, "NEXUS_OPERATOR_PORT", 8081, 0, 65535),
    identity: get(env, "NEXUS_OPERATOR_IDENTITY") ?? get(env, "POD_NAME") ?? hostname(),
    leaderElection: bool(env, "NEXUS_OPERATOR_LEADER_ELECTION", true),
    leaderLease: get(env, "NEXUS_OPERATOR_LEADER_LEASE") ?? "nexus-operator-leader",
    applyCrds: bool(env, "NEXUS_OPERATOR_APPLY_CRDS", true),
    resyncSeconds: int(env, "NEXUS_OPERATOR_RESYNC_SECONDS", 60, 1, 86_400),
    failover: {
      runtimeConfigMap: get(env, "NEXUS_FAILOVER_RUNTIME_CONFIGMAP") ?? "nexus-runtime",
      regionsConfigMap: get(env, "NEXUS_FAILOVER_REGIONS_CONFIGMAP") ?? "nexus-regions",
      primaryRegion: get(env, "NEXUS_FAILOVER_PRIMARY_REGION"),
      leaseName: get(env, "NEXUS_FAILOVER_LEASE") ?? "nexus-failover",
      cooldownSeconds: int(env, "NEXUS_FAILOVER_COOLDOWN_SECONDS", 600, 0, 86_400),
      freezeSettleSeconds: int(env, "NEXUS_FAILOVER_FREEZE_SETTLE_SECONDS", 60, 0, 3_600),
      verificationTimeoutSeconds: int(env, "NEXUS_FAILOVER_VERIFICATION_TIMEOUT_SECONDS", 300, 1, 86_400),
      healthUrls,
      deploymentSelector:
        get(env, "NEXUS_FAILOVER_DEPLOYMENT_SELECTOR") ?? "app.kubernetes.io/part-of=nexus,nexus.dev/database-client=true",
    },
    logLevel: get(env, "LOG_LEVEL") ?? "info",
  };
}
