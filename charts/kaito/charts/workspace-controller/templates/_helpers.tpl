{{/* Names and labels of the workspace controller's objects. */}}
{{- define "wc.name" -}}workspace-controller{{- end -}}

{{- define "wc.labels" -}}
app.kubernetes.io/name: {{ include "wc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kaito
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wc.serviceAccountName" -}}
{{- default (include "wc.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/*
The project's images all come from one registry and tag (global.image.registry, global.image.tag;
the tag defaults to the chart's appVersion); each can be named on its own instead.
*/}}
{{- define "wc.registry" -}}
{{- $registry := ((.Values.global | default dict).image | default dict).registry | default "" -}}
{{- $msg := "global.image.registry is required: the registry your Kaito images were pushed to (make images-push REGISTRY=...), e.g. --set global.image.registry=myregistry.azurecr.io/kaito. The project publishes no images; see docs/installation.md" -}}
{{- required $msg $registry | trimSuffix "/" -}}
{{- end -}}

{{- define "wc.tag" -}}
{{- ((.Values.global | default dict).image | default dict).tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "wc.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if not $repository -}}
{{- $repository = printf "%s/workspace-controller" (include "wc.registry" .) -}}
{{- end -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default (include "wc.tag" .)) -}}
{{- end -}}

{{/* The runtime images the controller puts in workload pods (NOTES.txt names them). */}}
{{- define "wc.serverImage" -}}
{{- .Values.runtimeImages.inferenceServer | default (printf "%s/inference-server:%s" (include "wc.registry" .) (include "wc.tag" .)) -}}
{{- end -}}

{{- define "wc.serverVllmImage" -}}
{{- if .Values.runtimeImages.inferenceServerVllm -}}
{{- .Values.runtimeImages.inferenceServerVllm -}}
{{- else -}}
{{- regexReplaceAll "^(.*/)?([^/:@]+)([:@][^/]*)?$" (include "wc.serverImage" .) "${1}${2}-vllm${3}" -}}
{{- end -}}
{{- end -}}

{{- define "wc.runnerImage" -}}
{{- .Values.runtimeImages.tuningRunner | default (printf "%s/tuning-runner:%s" (include "wc.registry" .) (include "wc.tag" .)) -}}
{{- end -}}

{{- define "wc.weightsImages" -}}
{{- $registry := .Values.presets.registry | default (include "wc.registry" .) | trimSuffix "/" -}}
{{- printf "%s/kaito-model-<preset>:%s" $registry (.Values.presets.imageTag | default (include "wc.tag" .)) -}}
{{- end -}}

{{/* Image pull Secrets of the controller pods: the sub-chart's own and global.imagePullSecrets. */}}
{{- define "wc.imagePullSecrets" -}}
{{- $secrets := list -}}
{{- range .Values.imagePullSecrets -}}
{{- $secrets = append $secrets . -}}
{{- end -}}
{{- range ((.Values.global | default dict).imagePullSecrets | default list) -}}
{{- $secrets = append $secrets (dict "name" .) -}}
{{- end -}}
{{- if $secrets -}}
{{- toYaml (uniq $secrets) -}}
{{- end -}}
{{- end -}}

{{/* global.imagePullSecrets (names): also passed to the controller for the workload pods. */}}
{{- define "wc.pullSecretNames" -}}
{{- join "," ((.Values.global | default dict).imagePullSecrets | default list) -}}
{{- end -}}

{{- define "wc.certSecretName" -}}
{{- default (printf "%s-webhook-cert" (include "wc.name" .)) .Values.webhook.existingSecret -}}
{{- end -}}

{{- define "wc.webhookConfigName" -}}validation.workspace.kaito.sh{{- end -}}

{{- define "wc.featureGates" -}}
{{- $gates := list -}}
{{- range $name, $on := .Values.featureGates -}}
{{- $gates = append $gates (printf "%s=%v" $name $on) -}}
{{- end -}}
{{- join "," $gates -}}
{{- end -}}
