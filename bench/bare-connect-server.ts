import http from "node:http";
import http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";

/**
 * The baseline of `npm run bench rpc`: connect-node serving grpc.health.v1 Health/Check and
 * nothing else — no Nexus code on the call path. HTTP/1.1 on argv[2], h2c on argv[3]; prints
 * "ready" when both listen. Run as its own process so it never shares an event loop with the
 * server it is compared with or with the load generator.
 */
const handler = connectNodeAdapter({
  routes: (router) =>
    router.service(Health, {
      check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
      // eslint-disable-next-line require-yield
      watch: async function* () {},
      list: () => ({}),
    }),
});
const listen = (server: http.Server | http2.Http2Server, port: number) =>
  new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
await Promise.all([
  listen(http.createServer(handler), Number(process.argv[2])),
  listen(http2.createServer(handler), Number(process.argv[3])),
]);
console.log("ready");
