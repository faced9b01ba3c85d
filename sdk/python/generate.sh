#!/usr/bin/env bash
# Generates the Python gRPC stubs of the integration and edge services from proto/ into
# sdk/python/nexus_sdk/_gen/ (gitignored: derived from proto/, like gen/ for TypeScript but
# built, not committed, because Debian's protoc 3.21 and the protobuf runtime must match).
# Idempotent: does nothing when the stubs are newer than every .proto they come from.
# Needs: protoc and grpc_python_plugin (Debian: protobuf-compiler protobuf-compiler-grpc),
# Node 24 for scripts/write-validate-proto.ts.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$HERE/nexus_sdk/_gen"
PROTOS=(nexus/integration/v1/resources.proto nexus/integration/v1/integration_service.proto)
[ -f "$ROOT/proto/nexus/integration/v1/edge_service.proto" ] && PROTOS+=(nexus/integration/v1/edge_service.proto)
[ -f "$ROOT/proto/buf/validate/validate.proto" ] || (cd "$ROOT" && node scripts/write-validate-proto.ts)
stamp="$OUT/.stamp"
if [ -f "$stamp" ]; then
  fresh=1
  for p in "${PROTOS[@]}" buf/validate/validate.proto; do
    [ "$ROOT/proto/$p" -nt "$stamp" ] && fresh=0
  done
  [ "$HERE/generate.sh" -nt "$stamp" ] && fresh=0
  [ "$fresh" = 1 ] && exit 0
fi
rm -rf "$OUT"
mkdir -p "$OUT"
protoc -I "$ROOT/proto" \
  --python_out="$OUT" \
  --grpc_python_out="$OUT" --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  buf/validate/validate.proto "${PROTOS[@]}"
# Packages, and imports rewritten to be relative to nexus_sdk._gen (the generated modules would
# otherwise be top-level "nexus" and "buf" packages).
find "$OUT" -type d -exec touch {}/__init__.py \;
find "$OUT" -name '*.py' -exec sed -i -E \
  -e 's/^from (nexus|buf)\.([a-z0-9_.]+) import /from nexus_sdk._gen.\1.\2 import /' {} +
touch "$stamp"
echo "generated Python stubs in $OUT"
