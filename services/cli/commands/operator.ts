import type { Command } from "../command.js";

/** `nexus operator`: the Kubernetes operator (Tenant, Quota, Failover). */
export const operatorCommand: Command = {
  path: ["operator"],
  summary: "Run the Kubernetes operator (Tenant, Quota, Failover custom resources)",
  usage: "nexus operator [--kubeconfig FILE] [--port 8081]   (settings: NEXUS_OPERATOR_* variables, see docs/kubernetes.md)",
  // Loaded on use: the operator's Kubernetes client is not needed by other commands.
  run: async (args) => (await import("../../../operator/main.js")).operatorMain(args),
};
