import { execFile, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { createLogger } from "../logger.js";
import type { BoundAddress, NexusServer } from "./server.js";
import { createServer } from "./server.js";

// A Python grpcio client (Debian's python3-grpcio and python3-grpc-tools, which CI installs)
// calls the health service with stubs generated from the proto: no reflection, no Connect.
// The system interpreter is used on purpose: the python3 on PATH may be another one.
const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("../../../tests/support/python/health_check.py", import.meta.url));

const probe = spawnSync(PYTHON, ["-c", "import grpc, grpc_tools"], { encoding: "utf8" });
const pythonGrpc = probe.status === 0;
if (!pythonGrpc) {
  console.warn(
    `[nexus tests] skipping the Python grpcio client test: ${PYTHON} cannot import grpc and grpc_tools ` +
      "(apt-get install -y python3-grpcio python3-grpc-tools; CI installs them)",
  );
}

describe.skipIf(!pythonGrpc)("a Python grpcio client", () => {
  let server: NexusServer;
  let addr: BoundAddress;

  beforeAll(async () => {
    server = createServer({
      logger: createLogger({ name: "test", level: "silent" }),
      services: [{ name: RetrievalService.typeName, register: (r) => r.service(RetrievalService, {}) }],
    });
    addr = await server.listen({ port: 0, host: "127.0.0.1" });
  });
  afterAll(() => server?.close());

  it("checks health over gRPC (HTTP/2) on the same port", async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        PYTHON,
        [SCRIPT, `127.0.0.1:${addr.port}`, "", RetrievalService.typeName, "nope.v1.Nope"],
        { timeout: 60_000 },
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
      );
    });
    expect(JSON.parse(stdout)).toEqual({
      "": "SERVING",
      [RetrievalService.typeName]: "SERVING",
      "nope.v1.Nope": "NOT_FOUND",
    });
  });
});
