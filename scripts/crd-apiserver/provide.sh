#!/usr/bin/env bash
# Provides a real Kubernetes CRD API server (k8s.io/apiextensions-apiserver on etcd) for the
# operator's tests, in .ci-tools/crd-apiserver/bin/{crd-apiserver,etcd} (gitignored):
#   1. already there → nothing to do;
#   2. the shared prebuilt copy (NEXUS_K8S_KIT_DIR, default ../shared/k8s-crd-apiserver next to
#      the repository) is present and its SHA256SUMS match → unpack it (a second);
#   3. else build from Debian sid's packaged Go sources with build.sh (~4 min on 2 cores).
# Prints which path ran. Exits non-zero only when the build itself fails.
#
#   bash scripts/crd-apiserver/provide.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/scripts/crd-apiserver"
OUT="$ROOT/.ci-tools/crd-apiserver"
BIN="$OUT/bin"
KIT="${NEXUS_K8S_KIT_DIR:-$ROOT/../shared/k8s-crd-apiserver}"

if [ -x "$BIN/crd-apiserver" ] && [ -x "$BIN/etcd" ]; then
  echo "crd-apiserver: already provided in $BIN"
  exit 0
fi
mkdir -p "$BIN"

if [ -f "$KIT/bin/SHA256SUMS" ] && [ -f "$KIT/bin/crd-apiserver.gz" ] && [ -f "$KIT/bin/etcd.gz" ]; then
  # The kit is read-only: check the sums there, unpack here.
  if (cd "$KIT/bin" && sha256sum --quiet -c SHA256SUMS); then
    for b in crd-apiserver etcd; do
      gzip -dc "$KIT/bin/$b.gz" > "$BIN/$b.tmp" && chmod +x "$BIN/$b.tmp" && mv "$BIN/$b.tmp" "$BIN/$b"
    done
    echo "crd-apiserver: PREBUILT copy from $KIT/bin (checksums match)"
    exit 0
  fi
  echo "crd-apiserver: prebuilt copy in $KIT/bin fails its checksums; building instead" >&2
else
  echo "crd-apiserver: no prebuilt copy at $KIT/bin; building"
fi

bash "$HERE/build.sh" "$OUT/build"
cp "$OUT/build/bin/crd-apiserver" "$OUT/build/bin/etcd" "$BIN/"
echo "crd-apiserver: BUILT from Debian sid sources into $BIN"
