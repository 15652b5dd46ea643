{{- /*
Fine-tuned policies (docs/custom-policies.md): PEFT LoRA adapters from one volume (a PersistentVolumeClaim or
an OCI image volume), served beside the model by vLLM's multi-LoRA, and a merged adapter served as the model.
The flag names, the profile's caps and vLLM's ranks come from the profile (deploy/profiles.py, through
_profiles.tpl); the gateway reads each adapter's policy file from the same volume.
*/ -}}

{{- /* "true" when the adapters volume is mounted. */ -}}
{{- define "qwen3guard.hasAdapters" -}}
{{- if ne .Values.adapters.source "none" -}}
true
{{- end -}}
{{- end -}}

{{- /* Fails on adapters values the schema cannot check: a source to read from, ranks within the profile's cap. */ -}}
{{- define "qwen3guard.adaptersCheck" -}}
{{- $a := .Values.adapters -}}
{{- $lora := (include "qwen3guard.profile" . | fromJson).lora -}}
{{- if and (or $a.served $a.merged) (eq $a.source "none") -}}
{{- fail "adapters.source: adapters.served or adapters.merged needs a volume to read them from (persistentVolumeClaim or image)" -}}
{{- end -}}
{{- if and $a.merged .Values.model -}}
{{- fail "adapters.merged: it replaces the model; leave model empty" -}}
{{- end -}}
{{- range $index, $adapter := $a.served -}}
{{- if gt (int $adapter.rank) (int $lora.maxRank) -}}
{{- fail (printf "adapters.served[%d].rank: %d exceeds the %d the %s profile allows (max_lora_rank)" $index (int $adapter.rank) (int $lora.maxRank) (include "qwen3guard.profileName" $)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* The model argument: a merged adapter on the volume, else the model value, else the profile's. */ -}}
{{- define "qwen3guard.modelArg" -}}
{{- $a := .Values.adapters -}}
{{- if $a.merged -}}
{{- printf "%s/%s" $a.mountPath $a.merged -}}
{{- else -}}
{{- .Values.model | default (include "qwen3guard.profile" . | fromJson).model -}}
{{- end -}}
{{- end -}}

{{- /* vLLM's multi-LoRA flags as a JSON list: empty without served adapters, as ServingProfile.lora_flags. */ -}}
{{- define "qwen3guard.loraArgs" -}}
{{- include "qwen3guard.adaptersCheck" . -}}
{{- $a := .Values.adapters -}}
{{- $lora := (include "qwen3guard.profile" . | fromJson).lora -}}
{{- $args := list -}}
{{- if $a.served -}}
{{- $modules := list -}}
{{- $rank := 1 -}}
{{- range $a.served -}}
{{- $modules = append $modules (printf "%s=%s/%s" .name $a.mountPath (.path | default .name)) -}}
{{- $rank = max $rank (int .rank) -}}
{{- end -}}
{{- $maxRank := 0 -}}
{{- range $lora.ranks -}}
{{- if and (eq $maxRank 0) (ge (int .) $rank) -}}
{{- $maxRank = int . -}}
{{- end -}}
{{- end -}}
{{- $args = concat (list $lora.enable $lora.modules) $modules (list $lora.maxRankFlag (toString $maxRank) $lora.maxLorasFlag (toString (min (len $a.served) (int $lora.maxLoras)))) -}}
{{- end -}}
{{- toJson $args -}}
{{- end -}}

{{- /* The gateway configuration's part for the adapters: each by name with its policy, a merged model's policy. */ -}}
{{- define "qwen3guard.adapterModels" -}}
{{- $a := .Values.adapters -}}
{{- $policyFile := (include "qwen3guard.profile" . | fromJson).lora.policyFile -}}
{{- $config := dict -}}
{{- $models := dict -}}
{{- range $a.served -}}
{{- $_ := set $models .name (dict "policy" (printf "%s/%s/%s" $a.mountPath (.path | default .name) $policyFile)) -}}
{{- end -}}
{{- if $models -}}
{{- $_ := set $config "models" $models -}}
{{- end -}}
{{- if $a.merged -}}
{{- $_ := set $config "guard" (dict "policy" (printf "%s/%s/%s" $a.mountPath $a.merged $policyFile)) -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{- /* The adapters volume, as list items (empty without one). */ -}}
{{- define "qwen3guard.adapterVolumes" -}}
{{- $a := .Values.adapters -}}
{{- if eq $a.source "persistentVolumeClaim" }}
- name: qwen3guard-adapters
  persistentVolumeClaim:
    claimName: {{ required "adapters.claimName: the claim holding the adapter directories" $a.claimName }}
    readOnly: true
{{- else if eq $a.source "image" }}
- name: qwen3guard-adapters
  image:
    reference: {{ required "adapters.image.reference: the OCI image holding the adapter directories" $a.image.reference }}
    pullPolicy: {{ $a.image.pullPolicy }}
{{- end -}}
{{- end -}}

{{- /* The adapters volume's mount (guard and gateway), as list items (empty without one). */ -}}
{{- define "qwen3guard.adapterMounts" -}}
{{- if include "qwen3guard.hasAdapters" . }}
- name: qwen3guard-adapters
  mountPath: {{ .Values.adapters.mountPath }}
  readOnly: true
{{- end -}}
{{- end -}}
