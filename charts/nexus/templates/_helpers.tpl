{{/* Chart name, cut to 63 characters (DNS label). */}}
{{- define "nexus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix of every object: <release>-nexus (or the release name when it contains "nexus"), cut to 63. */}}
{{- define "nexus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-<suffix>, cut so the result stays a 63-character DNS label. */}}
{{- define "nexus.componentName" -}}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "nexus.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "nexus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "nexus.labels" -}}
helm.sh/chart: {{ include "nexus.chart" . }}
{{ include "nexus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nexus
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select this release's pods (never change them: Deployments' selectors are immutable). */}}
{{- define "nexus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nexus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nexus.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "nexus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nexus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret and key of DATABASE_URL. */}}
{{- define "nexus.databaseSecret" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecret }}{{ else }}{{ include "nexus.componentName" (list . "database") }}{{ end }}
{{- end }}
{{- define "nexus.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/* Whether the embedded NATS runs (no external URL given). */}}
{{- define "nexus.natsEmbedded" -}}
{{- if and .Values.nats.embedded.enabled (not .Values.nats.url) (not .Values.nats.existingSecret) }}true{{ end }}
{{- end }}
{{- define "nexus.natsSecret" -}}
{{- if .Values.nats.existingSecret }}{{ .Values.nats.existingSecret }}{{ else }}{{ include "nexus.componentName" (list . "nats-url") }}{{ end }}
{{- end }}
{{- define "nexus.natsSecretKey" -}}
{{- if .Values.nats.existingSecret }}{{ .Values.nats.existingSecretKey }}{{ else }}NATS_URL{{ end }}
{{- end }}

{{- define "nexus.platformKeySecret" -}}
{{- if .Values.platformKey.existingSecret }}{{ .Values.platformKey.existingSecret }}{{ else }}{{ include "nexus.componentName" (list . "platform-key") }}{{ end }}
{{- end }}

{{/* Secret with the keyring's master keys (key `master-keys`), mounted at /etc/nexus/keyring. */}}
{{- define "nexus.masterKeysSecret" -}}
{{- if .Values.keyring.existingSecret }}{{ .Values.keyring.existingSecret }}{{ else }}{{ include "nexus.componentName" (list . "master-keys") }}{{ end }}
{{- end }}

{{/* In-cluster URL of one service. */}}
{{- define "nexus.serviceUrl" -}}
{{- $root := index . 0 }}
{{- printf "http://%s:%v" (include "nexus.componentName" (list $root (index . 1))) $root.Values.serviceDefaults.port }}
{{- end }}

{{/* The runtime-flags ConfigMap (written by the operator, mounted by the services). */}}
{{- define "nexus.runtimeConfigMap" -}}
{{ include "nexus.componentName" (list . "runtime") }}
{{- end }}
{{- define "nexus.regionsConfigMap" -}}
{{ include "nexus.componentName" (list . "regions") }}
{{- end }}

{{/* Fails rendering when no database is configured: Nexus needs PostgreSQL 15+ with pgvector. */}}
{{- define "nexus.requireDatabase" -}}
{{- if and (not .Values.database.url) (not .Values.database.existingSecret) }}
{{- fail "database.url or database.existingSecret is required: Nexus needs PostgreSQL 15+ with pgvector (e.g. --set database.url=postgres://user:pass@host:5432/nexus)" }}
{{- end }}
{{- end }}
