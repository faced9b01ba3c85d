"""Calls grpc.health.v1.Health/Check on a Nexus server with a Python grpcio client.

Stubs are generated at run time from proto/grpc/health/v1/health.proto with grpc_tools
(no reflection, no checked-in Python code), exactly as a Python user of Nexus would.

Usage: health_check.py HOST:PORT [SERVICE ...]
Prints one JSON object: {"<service>": "SERVING" | "NOT_SERVING" | "NOT_FOUND" | ...}.
Exit code 3 when grpcio or grpc_tools is missing (the caller skips with a clear message).
"""

import json
import os
import sys
import tempfile

try:
    import grpc
    from grpc_tools import protoc
except ImportError as missing:  # pragma: no cover - environment dependent
    print(f"python grpcio unavailable: {missing}", file=sys.stderr)
    sys.exit(3)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def generate_stubs(out_dir):
    """Generates health_pb2 / health_pb2_grpc into out_dir and makes them importable.

    The .proto is copied to the top of out_dir first: generated from its usual path
    (grpc/health/v1/) the modules would live in a package named "grpc", shadowing grpcio.
    The protobuf package (grpc.health.v1) and so the wire names stay the same.
    """
    with open(os.path.join(REPO, "proto", "grpc", "health", "v1", "health.proto")) as src:
        proto = src.read()
    with open(os.path.join(out_dir, "health.proto"), "w") as dst:
        dst.write(proto)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{out_dir}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            "health.proto",
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    sys.path.insert(0, out_dir)


def main():
    target = sys.argv[1]
    services = sys.argv[2:] or [""]
    with tempfile.TemporaryDirectory() as out_dir:
        generate_stubs(out_dir)
        import health_pb2
        import health_pb2_grpc

        results = {}
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in services:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                    results[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.RpcError as err:
                    results[service] = err.code().name
        print(json.dumps(results))


if __name__ == "__main__":
    main()
