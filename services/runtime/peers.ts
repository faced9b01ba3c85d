import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { NexusConfig, ServiceName } from "../kernel/config.js";
import { ConfigError } from "../kernel/config.js";
import { clientInterceptor } from "../kernel/interceptors/index.js";
import { meshTokenInterceptor } from "../kernel/limits/mesh-token.js";
import type { Peers } from "../kernel/service/index.js";

export type { Peers };

const URL_KEYS: Record<ServiceName, keyof NexusConfig> = {
  auth: "authUrl",
  metering: "meteringUrl",
  ingestion: "ingestionUrl",
  retrieval: "retrievalUrl",
  agent: "agentUrl",
  modules: "modulesUrl",
};

/**
 * Builds the peer resolver of a process. `selfUrl()` is read lazily, at the first call, because
 * the process's own address is known only once it listens.
 */
export function createPeers(
  config: NexusConfig,
  hosted: readonly ServiceName[],
  selfUrl: () => string | undefined,
  options: { meshToken?: string } = {},
): Peers {
  const interceptors = [clientInterceptor(), ...(options.meshToken ? [meshTokenInterceptor(options.meshToken)] : [])];
  const transports = new Map<string, Transport>();
  const url = (service: ServiceName): string => {
    const configured = config[URL_KEYS[service]] as string | undefined;
    if (configured) return configured.replace(/\/$/, "");
    const self = hosted.includes(service) ? selfUrl() : undefined;
    if (self) return self;
    const variable = `NEXUS_${service.toUpperCase()}_URL`;
    throw new ConfigError([
      {
        variable,
        message: `${variable} is not set and this process does not host the ${service} service: set it to the ${service} service's base URL`,
      },
    ]);
  };
  return {
    url,
    transport(service) {
      const base = url(service);
      let t = transports.get(base);
      if (!t) {
        t = createGrpcTransport({ baseUrl: base, interceptors });
        transports.set(base, t);
      }
      return t;
    },
  };
}
