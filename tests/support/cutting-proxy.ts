import http from "node:http";
import type { AddressInfo } from "node:net";

/** A reverse proxy that can drop a streaming response mid-way, as a broken network does. */
export interface CuttingProxy {
  /** The proxy's origin, e.g. http://127.0.0.1:19901 (same host as the upstream: cookies are shared). */
  url: string;
  /** Paths of the requests seen, in order. */
  readonly paths: string[];
  /** Drops the next response whose path ends with `pathSuffix` once `marker` went through `times` times. */
  cutNext(pathSuffix: string, marker: string, times: number): void;
  /** Responses dropped so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

/**
 * Starts a plain HTTP/1.1 reverse proxy to `upstream`. A planned cut destroys both the
 * browser's connection and the upstream request once the response body carried a marker
 * (e.g. "tokenDelta") a number of times: the client sees its stream break, the server sees
 * its client go.
 */
export async function startCuttingProxy(upstream: string, port = 0): Promise<CuttingProxy> {
  const target = new URL(upstream);
  const paths: string[] = [];
  const plans: Array<{ pathSuffix: string; marker: string; times: number }> = [];
  let cuts = 0;
  const server = http.createServer((req, res) => {
    const path = req.url ?? "/";
    paths.push(path);
    const planIndex = plans.findIndex((p) => path.split("?")[0]!.endsWith(p.pathSuffix));
    const plan = planIndex >= 0 ? plans.splice(planIndex, 1)[0] : undefined;
    const out = http.request(
      { host: target.hostname, port: target.port, method: req.method, path, headers: { ...req.headers, host: target.host } },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        let seen = 0;
        upstreamRes.on("data", (chunk: Buffer) => {
          res.write(chunk);
          if (plan === undefined) return;
          seen += chunk.toString("latin1").split(plan.marker).length - 1;
          if (seen >= plan.times) {
            cuts += 1;
            res.socket?.destroy();
            out.destroy();
          }
        });
        upstreamRes.on("end", () => res.end());
        upstreamRes.on("error", () => res.socket?.destroy());
      },
    );
    out.on("error", () => res.socket?.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    paths,
    cutNext(pathSuffix, marker, times) {
      plans.push({ pathSuffix, marker, times });
    },
    get cuts() {
      return cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
