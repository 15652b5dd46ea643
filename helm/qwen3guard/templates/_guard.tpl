{{- /*
The guard's pod parts, as named templates. This chart's Deployment uses them, and so can a parent
chart that depends on this one (mode: embedded), in its own pod:

  {{- $guard := dict "Values" .Values.qwen3guard "Release" .Release }}
  initContainers:
    {{- include "qwen3guard.container" $guard | nindent 8 }}
  volumes:
    {{- include "qwen3guard.volumes" $guard | nindent 8 }}
  resourceClaims:
    {{- include "qwen3guard.resourceClaims" $guard | nindent 8 }}

and `resources.claims: [{name: {{ include "qwen3guard.gpuClaim" $guard }}}]` on the main container
when sidecar.gpuSharing is dra. helm/examples/llm-with-guard is a complete parent chart.
*/ -}}

{{- /* The guard container, as a one-item list. */ -}}
{{- define "qwen3guard.container" -}}
{{- include "qwen3guard.check" . -}}
{{- $profile := include "qwen3guard.profile" . | fromJson -}}
{{- $gpus := int .Values.gpu.count -}}
{{- $resources := deepCopy .Values.resources -}}
{{- if and (eq .Values.mode "standalone") (gt $gpus 0) -}}
{{- $_ := set $resources "limits" (merge (dict "nvidia.com/gpu" $gpus) ($resources.limits | default dict)) -}}
{{- else if include "qwen3guard.sharesGpuByDra" . -}}
{{- $_ := set $resources "claims" (list (dict "name" (include "qwen3guard.gpuClaim" .))) -}}
{{- end -}}
- name: qwen3guard
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if ne .Values.mode "standalone" }}
  # A native sidecar: it starts, and passes its startup probe, before the main container starts, so the
  # two vLLM engines never measure free GPU memory at the same time; and it stops after the main one.
  restartPolicy: Always
  {{- end }}
  # The profile's command line; only the model and extraArgs may differ from it.
  command:
    {{- toYaml $profile.command | nindent 4 }}
  args:
    {{- toYaml (concat (list (include "qwen3guard.modelArg" .)) $profile.args (include "qwen3guard.loraArgs" . | fromJsonArray) .Values.extraArgs) | nindent 4 }}
  ports:
    - name: guard
      containerPort: {{ $profile.port | int }}
      protocol: TCP
  env:
    - name: {{ $profile.apiKeyEnv }}
      valueFrom:
        secretKeyRef:
          name: {{ include "qwen3guard.secretName" (list . "api-key" .Values.apiKey) }}
          key: {{ .Values.apiKey.secretKey }}
    {{- if or .Values.hfToken.existingSecret .Values.hfToken.value }}
    - name: HF_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "qwen3guard.secretName" (list . "hf-token" .Values.hfToken) }}
          key: {{ .Values.hfToken.secretKey }}
    {{- end }}
    # As a non-root user on a read-only root filesystem, every cache (HF, vLLM, Triton) must live
    # on the cache volume, which HOME points at.
    - name: HOME
      value: /cache
    - name: HF_HOME
      value: /cache/huggingface
    # Python's getpass.getuser() (used for torch's compile cache) fails for a UID the image has no
    # passwd entry for, unless USER is set.
    - name: USER
      value: vllm
    {{- if and (ne .Values.mode "standalone") (gt $gpus 0) (eq .Values.sidecar.gpuSharing "visibleDevicesEnv") }}
    # No GPU is allocated to this container; the runtime exposes the node's GPUs to it instead.
    - name: NVIDIA_VISIBLE_DEVICES
      value: all
    {{- end }}
    {{- range $name, $value := $profile.env }}
    - name: {{ $name }}
      value: {{ $value | quote }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  startupProbe:
    httpGet:
      path: /health
      port: guard
    {{- toYaml .Values.probes.startup | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /health
      port: guard
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /health
      port: guard
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  resources:
    {{- toYaml $resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: qwen3guard-cache
      mountPath: /cache
    - name: qwen3guard-tmp
      mountPath: /tmp
    - name: qwen3guard-shm
      mountPath: /dev/shm
    {{- if include "qwen3guard.hasAdapters" . }}
    {{- include "qwen3guard.adapterMounts" . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- /* The volumes the guard container mounts, as list items. */ -}}
{{- define "qwen3guard.volumes" -}}
- name: qwen3guard-cache
  {{- if eq .Values.modelCache.type "persistentVolumeClaim" }}
  persistentVolumeClaim:
    claimName: {{ .Values.modelCache.existingClaim | default (printf "%s-cache" (include "qwen3guard.fullname" .)) }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.modelCache.size }}
  {{- end }}
- name: qwen3guard-tmp
  emptyDir: {}
- name: qwen3guard-shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.sharedMemory.sizeLimit }}
{{- include "qwen3guard.adapterVolumes" . }}
{{- end -}}

{{- /* The pod's claim on the GPUs the guard shares with the main container, as list items; empty without DRA. */ -}}
{{- define "qwen3guard.resourceClaims" -}}
{{- if include "qwen3guard.sharesGpuByDra" . -}}
- name: {{ include "qwen3guard.gpuClaim" . }}
  resourceClaimTemplateName: {{ include "qwen3guard.fullname" . }}-gpu
{{- end -}}
{{- end -}}

{{- /*
The main container in sidecar mode: sidecar.mainContainer, given the pod's GPUs. Its ports join the
Service beside the guard's, so they must not reuse the guard's port.
*/ -}}
{{- define "qwen3guard.mainContainer" -}}
{{- $main := deepCopy .Values.sidecar.mainContainer -}}
{{- $guardPort := (include "qwen3guard.profile" . | fromJson).port | int -}}
{{- range $main.ports -}}
{{- if eq (int .containerPort) $guardPort -}}
{{- fail (printf "sidecar.mainContainer.ports: port %d is the guard's (profile %s); give the main container another" $guardPort (include "qwen3guard.profileName" $)) -}}
{{- end -}}
{{- end -}}
{{- $resources := $main.resources | default dict -}}
{{- if include "qwen3guard.sharesGpuByDra" . -}}
{{- $_ := set $resources "claims" (append ($resources.claims | default list) (dict "name" (include "qwen3guard.gpuClaim" .))) -}}
{{- else if gt (int .Values.gpu.count) 0 -}}
{{- $_ := set $resources "limits" (merge (dict "nvidia.com/gpu" (int .Values.gpu.count)) ($resources.limits | default dict)) -}}
{{- end -}}
{{- $_ := set $main "resources" $resources -}}
{{- list $main | toYaml -}}
{{- end -}}

{{- /* The Service's ports as JSON ([{name, port}]): the main container's named ports, the guard's, the gateway's. */ -}}
{{- define "qwen3guard.servicePorts" -}}
{{- $ports := list -}}
{{- if eq .Values.mode "sidecar" -}}
{{- range .Values.sidecar.mainContainer.ports -}}
{{- $ports = append $ports (dict "name" .name "port" (int .containerPort)) -}}
{{- end -}}
{{- end -}}
{{- $ports = append $ports (dict "name" "guard" "port" ((include "qwen3guard.profile" . | fromJson).port | int)) -}}
{{- if and .Values.gateway.enabled (ne .Values.mode "embedded") -}}
{{- $ports = append $ports (dict "name" "gateway" "port" (int .Values.gateway.port)) -}}
{{- end -}}
{{- toJson $ports -}}
{{- end -}}
