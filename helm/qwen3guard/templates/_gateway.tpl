{{- /*
The gateway (guard_gateway) as a container in this chart's pod, beside the guard: standalone (the
guard's pod) and sidecar (the main LLM's pod) modes. Its command comes from _gateway_command.tpl
(generated from deploy/launcher.py); every setting comes from one file, the ConfigMap rendered here
from gateway.config plus what the chart knows: host, port, the guard's URL and, in sidecar mode, the
main LLM's. Keys come from Secrets: the guard's as an environment variable, the clients' as a file.
*/ -}}

{{- define "qwen3guard.gatewayKeysDir" -}}
/var/run/guard-gateway/keys
{{- end -}}

{{- /* "true" when the clients' keys come from a Secret (existing or the chart's). */ -}}
{{- define "qwen3guard.gatewayHasKeys" -}}
{{- if or .Values.gateway.apiKeys.existingSecret .Values.gateway.apiKeys.value -}}
true
{{- end -}}
{{- end -}}

{{- /* The main container's first port, the gateway's upstream in sidecar mode (0 when it has none). */ -}}
{{- define "qwen3guard.mainPort" -}}
{{- $ports := .Values.sidecar.mainContainer.ports | default list -}}
{{- if $ports -}}{{ (first $ports).containerPort | int }}{{- else -}}0{{- end -}}
{{- end -}}

{{- /* Refusals of gateway values the schema cannot express. */ -}}
{{- define "qwen3guard.gatewayCheck" -}}
{{- $gw := .Values.gateway -}}
{{- $config := $gw.config -}}
{{- $profile := include "qwen3guard.profile" . | fromJson -}}
{{- if eq .Values.mode "embedded" -}}
{{- fail "gateway.enabled: embedded mode renders no pod for the gateway; run it in your own chart from deploy/Dockerfile.gateway, or use standalone or sidecar mode" -}}
{{- end -}}
{{- if has $gw.image.tag (list "latest" "nightly") -}}
{{- fail (printf "gateway.image.tag: %q moves under a running release; pin a release tag" $gw.image.tag) -}}
{{- end -}}
{{- if eq (int $gw.port) ($profile.port | int) -}}
{{- fail (printf "gateway.port: port %d is the guard's (profile %s); give the gateway another" (int $gw.port) (include "qwen3guard.profileName" .)) -}}
{{- end -}}
{{- if eq .Values.mode "sidecar" -}}
{{- range .Values.sidecar.mainContainer.ports -}}
{{- if eq (int .containerPort) (int $gw.port) -}}
{{- fail (printf "gateway.port: port %d is the main container's (%s); give the gateway another" (int $gw.port) .name) -}}
{{- end -}}
{{- end -}}
{{- if and (not (dig "upstream" "url" "" $config)) (eq (include "qwen3guard.mainPort" .) "0") -}}
{{- fail "gateway.config.upstream.url: the main container declares no port to guard; add one to sidecar.mainContainer.ports or set the URL" -}}
{{- end -}}
{{- end -}}
{{- if and $gw.apiKeys.required (not (include "qwen3guard.gatewayHasKeys" .)) -}}
{{- fail "gateway.apiKeys: set gateway.apiKeys.existingSecret (a Secret holding the clients' keys, one a line) or gateway.apiKeys.value; or gateway.apiKeys.required=false to serve without keys behind a NetworkPolicy" -}}
{{- end -}}
{{- range $field := list "host" "port" -}}
{{- if hasKey $config $field -}}
{{- fail (printf "gateway.config.%s: set by the chart (gateway.port; it listens on all addresses); remove it" $field) -}}
{{- end -}}
{{- end -}}
{{- if dig "guard" "url" "" $config -}}
{{- fail "gateway.config.guard.url: set by the chart (the guard in the same pod, on localhost); remove it" -}}
{{- end -}}
{{- range $path := list (list "guard" "api_key") (list "upstream" "api_key") (list "auth" "api_keys") (list "auth" "api_keys_file") -}}
{{- if dig (index $path 0) (index $path 1) "" $config -}}
{{- fail (printf "gateway.config.%s: a key in values would land in a ConfigMap; use gateway.apiKeys (clients), the guard's apiKey, or gateway.extraEnv from a Secret (upstream)" (join "." $path)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* The gateway's configuration file, as YAML. */ -}}
{{- define "qwen3guard.gatewayConfig" -}}
{{- $gw := .Values.gateway -}}
{{- $profile := include "qwen3guard.profile" . | fromJson -}}
{{- $set := dict "host" "0.0.0.0" "port" (int $gw.port) "guard" (dict "url" (printf "http://localhost:%d" ($profile.port | int))) -}}
{{- if include "qwen3guard.gatewayHasKeys" . -}}
{{- $_ := set $set "auth" (dict "api_keys_file" (printf "%s/%s" (include "qwen3guard.gatewayKeysDir" .) $gw.apiKeys.secretKey)) -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") (not (dig "upstream" "url" "" $gw.config)) -}}
{{- $_ := set $set "upstream" (dict "url" (printf "http://localhost:%s/v1" (include "qwen3guard.mainPort" .))) -}}
{{- end -}}
{{- $adapters := include "qwen3guard.adapterModels" . | fromJson -}}
{{- if $adapters.guard -}}
{{- $_ := set $set.guard "policy" $adapters.guard.policy -}}
{{- end -}}
{{- if $adapters.models -}}
{{- $_ := set $set "models" (mergeOverwrite (deepCopy ($gw.config.models | default dict)) $adapters.models) -}}
{{- end -}}
{{- mergeOverwrite (deepCopy $gw.config) $set | toYaml -}}
{{- end -}}

{{- /* The gateway container, as a one-item list. */ -}}
{{- define "qwen3guard.gatewayContainer" -}}
{{- include "qwen3guard.gatewayCheck" . -}}
{{- $gw := .Values.gateway -}}
{{- $run := include "qwen3guard.gatewayCommand" . | fromJson -}}
{{- $profile := include "qwen3guard.profile" . | fromJson -}}
- name: gateway
  image: "{{ $gw.image.repository }}:{{ $gw.image.tag }}"
  imagePullPolicy: {{ $gw.image.pullPolicy }}
  # deploy/launcher.py's gateway_container_command(): every setting from the mounted file.
  command:
    {{- toYaml $run.command | nindent 4 }}
  ports:
    - name: gateway
      containerPort: {{ $gw.port | int }}
      protocol: TCP
  env:
    # The guard's key, which the gateway sends to the guard only.
    - name: GUARD_GATEWAY_GUARD__API_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "qwen3guard.secretName" (list . "api-key" .Values.apiKey) }}
          key: {{ .Values.apiKey.secretKey }}
    {{- with $gw.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  readinessProbe:
    httpGet:
      path: /ready
      port: gateway
    {{- toYaml $gw.probes.readiness | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /health
      port: gateway
    {{- toYaml $gw.probes.liveness | nindent 4 }}
  resources:
    {{- toYaml $gw.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: gateway-config
      mountPath: {{ $run.configDir }}
      readOnly: true
    {{- if include "qwen3guard.gatewayHasKeys" . }}
    - name: gateway-keys
      mountPath: {{ include "qwen3guard.gatewayKeysDir" . }}
      readOnly: true
    {{- end }}
    {{- if include "qwen3guard.hasAdapters" . }}
    {{- include "qwen3guard.adapterMounts" . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- /* The gateway's volumes, as list items. */ -}}
{{- define "qwen3guard.gatewayVolumes" -}}
{{- $run := include "qwen3guard.gatewayCommand" . | fromJson -}}
- name: gateway-config
  configMap:
    name: {{ include "qwen3guard.fullname" . }}-gateway
    items:
      - key: {{ $run.configFile }}
        path: {{ $run.configFile }}
{{- if include "qwen3guard.gatewayHasKeys" . }}
- name: gateway-keys
  secret:
    secretName: {{ include "qwen3guard.secretName" (list . "gateway-api-keys" .Values.gateway.apiKeys) }}
    items:
      - key: {{ .Values.gateway.apiKeys.secretKey }}
        path: {{ .Values.gateway.apiKeys.secretKey }}
{{- end }}
{{- end -}}
