{{- /*
Names, labels and the checks every mode shares. Helpers used by the guard's container template read
only .Values and .Release, so a parent chart can call them with
(dict "Values" .Values.qwen3guard "Release" .Release): its own .Chart and .Files are not this chart's.
*/ -}}

{{- define "qwen3guard.name" -}}
{{- default "qwen3guard" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qwen3guard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "qwen3guard.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "qwen3guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qwen3guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qwen3guard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "qwen3guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- /* The serving profile of the guard in this mode: its name, and the profile as JSON (`| fromJson`). */ -}}
{{- define "qwen3guard.profileName" -}}
{{- ternary .Values.profile .Values.sidecar.profile (eq .Values.mode "standalone") -}}
{{- end -}}

{{- define "qwen3guard.profile" -}}
{{- get (include "qwen3guard.profiles" . | fromJson) (include "qwen3guard.profileName" .) | toJson -}}
{{- end -}}

{{- /* "true" when the guard shares the pod's GPUs with the main container through one ResourceClaim. */ -}}
{{- define "qwen3guard.sharesGpuByDra" -}}
{{- if and (ne .Values.mode "standalone") (gt (int .Values.gpu.count) 0) (eq .Values.sidecar.gpuSharing "dra") -}}
true
{{- end -}}
{{- end -}}

{{- /* The pod-level name of that claim, for the main container's resources.claims. */ -}}
{{- define "qwen3guard.gpuClaim" -}}
qwen3guard-gpu
{{- end -}}

{{- /*
The Secret behind apiKey or hfToken: (list $ctx "api-key" .Values.apiKey). An existing Secret wins;
otherwise the chart's own, created from `value` by secrets.yaml.
*/ -}}
{{- define "qwen3guard.secretName" -}}
{{- $ctx := index . 0 -}}{{- $suffix := index . 1 -}}{{- $secret := index . 2 -}}
{{- $secret.existingSecret | default (printf "%s-%s" (include "qwen3guard.fullname" $ctx) $suffix) -}}
{{- end -}}

{{- /* Refusals the schema cannot express, or not with a message that says what to do. */ -}}
{{- define "qwen3guard.check" -}}
{{- $profile := include "qwen3guard.profile" . | fromJson -}}
{{- if has .Values.image.tag (list "latest" "nightly") -}}
{{- fail (printf "image.tag: %q moves under a running release; pin a release tag (vX.Y.Z)" .Values.image.tag) -}}
{{- end -}}
{{- if not (or .Values.apiKey.existingSecret .Values.apiKey.value) -}}
{{- fail "apiKey: set apiKey.existingSecret (a Secret holding the key) or apiKey.value; the guard never serves without an API key" -}}
{{- end -}}
{{- if and (eq $profile.device "gpu") (eq (int .Values.gpu.count) 0) -}}
{{- fail (printf "gpu.count: the %s profile runs on a GPU, so gpu.count must be at least 1 (or choose the cpu profile)" (include "qwen3guard.profileName" .)) -}}
{{- end -}}
{{- if and (eq $profile.device "cpu") (eq .Values.mode "standalone") (gt (int .Values.gpu.count) 0) -}}
{{- fail "gpu.count: the cpu profile uses no GPU; set gpu.count to 0 rather than reserve GPUs it leaves idle" -}}
{{- end -}}
{{- end -}}

{{- /* vllm-router in front of the guard replicas (router.enabled): its name and its pods' labels, which the
guard's Service, PodDisruptionBudget and autoscaler never select. */ -}}
{{- define "qwen3guard.routerName" -}}
{{- printf "%s-router" (include "qwen3guard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qwen3guard.routerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "qwen3guard.name" . }}-router
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qwen3guard.routerEnabled" -}}
{{- if and .Values.router.enabled (ne .Values.mode "embedded") -}}
true
{{- end -}}
{{- end -}}

{{- /* Where clients and the gateway reach the guard: the router's Service when it is on, else the guard itself. */ -}}
{{- define "qwen3guard.guardUrl" -}}
{{- $profile := include "qwen3guard.profile" . | fromJson -}}
{{- if include "qwen3guard.routerEnabled" . -}}
{{- printf "http://%s.%s.svc:%d" (include "qwen3guard.routerName" .) .Release.Namespace ($profile.port | int) -}}
{{- else -}}
{{- printf "http://localhost:%d" ($profile.port | int) -}}
{{- end -}}
{{- end -}}

{{- define "qwen3guard.routerLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "qwen3guard.routerSelectorLabels" . }}
app.kubernetes.io/component: router
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
