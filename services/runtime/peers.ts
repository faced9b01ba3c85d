import type { Transport } from "@connectrpc/connect";
import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-grpc";
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
  integration: "integrationUrl",
};

/** Options of {@link createPeers}. */
export interface PeersOptions {
  /** The mesh token peer calls carry (mesh-token.ts). */
  meshToken?: string;
  /**
   * The process's own server's in-process client (server.ts `inProcessClient`), read at call
   * time: peer calls to a service this process hosts go through it instead of the loopback.
   */
  inProcess?: () => UniversalClientFn | undefined;
}

/** The base URL of in-process calls (their handlers see it as the request URL). */
const IN_PROCESS_URL = "http://in-process";

/**
 * Builds the peer resolver of a process. `selfUrl()` is read lazily, at the first call, because
 * the process's own address is known only once it listens.
 *
 * A service this process hosts, with no NEXUS_<SVC>_URL of its own, is called in this process
 * (`options.inProcess`): the same gRPC call, client interceptors and server side, without the
 * HTTP/2 round trip over the loopback. A configured URL is always called over the network.
 */
export function createPeers(
  config: NexusConfig,
  hosted: readonly ServiceName[],
  selfUrl: () => string | undefined,
  options: PeersOptions = {},
): Peers {
  const interceptors = [clientInterceptor(), ...(options.meshToken ? [meshTokenInterceptor(options.meshToken)] : [])];
  const transports = new Map<string, Transport>();
  let inProcess: { client: UniversalClientFn; transport: Transport } | undefined;
  const inProcessTransport = (service: ServiceName): Transport | undefined => {
    if (config[URL_KEYS[service]] || !hosted.includes(service)) return undefined;
    const client = options.inProcess?.();
    if (client === undefined) return undefined;
    if (inProcess?.client !== client) {
      const transport = createTransport({
        httpClient: client,
        baseUrl: IN_PROCESS_URL,
        useBinaryFormat: true,
        interceptors,
        acceptCompression: [],
        sendCompression: null,
        ...validateReadWriteMaxBytes(undefined, undefined, undefined),
      });
      inProcess = { client, transport };
    }
    return inProcess.transport;
  };
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
      const local = inProcessTransport(service);
      if (local !== undefined) return local;
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
