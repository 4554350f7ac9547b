{{/* Names and labels of the gpu-provisioner's objects. */}}
{{- define "gp.name" -}}gpu-provisioner{{- end -}}

{{- define "gp.labels" -}}
app.kubernetes.io/name: {{ include "gp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kaito
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gp.serviceAccountName" -}}
{{- default (include "gp.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/*
<global.image.registry>/gpu-provisioner:<global.image.tag> (the tag defaults to the chart's
appVersion), unless image.repository / image.tag name another.
*/}}
{{- define "gp.image" -}}
{{- $global := (.Values.global | default dict).image | default dict -}}
{{- $repository := .Values.image.repository -}}
{{- if not $repository -}}
{{- $msg := "global.image.registry is required: the registry your Kaito images were pushed to (make images-push REGISTRY=...), e.g. --set global.image.registry=myregistry.azurecr.io/kaito. The project publishes no images; see docs/installation.md" -}}
{{- $repository = printf "%s/gpu-provisioner" (required $msg ($global.registry | default "") | trimSuffix "/") -}}
{{- end -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default $global.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Image pull Secrets of the pods: the sub-chart's own and global.imagePullSecrets (names). */}}
{{- define "gp.imagePullSecrets" -}}
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

{{- define "gp.workloadIdentity" -}}
{{- and (eq .Values.cloud "azure") .Values.azure.workloadIdentity.enabled -}}
{{- end -}}

{{/*
Upstream's gpu-provisioner chart names some values differently; both spellings work, ours first:
replicas (replicaCount), settings.azure.clusterName (azure.clusterName),
workloadIdentity.clientId / tenantId (azure.workloadIdentity.clientId, azure.tenantId).
*/}}
{{- define "gp.replicas" -}}
{{- if hasKey .Values "replicas" }}{{ .Values.replicas }}{{ else }}{{ .Values.replicaCount }}{{ end -}}
{{- end -}}

{{- define "gp.clusterName" -}}
{{- .Values.azure.clusterName | default (dig "azure" "clusterName" "" (.Values.settings | default dict)) -}}
{{- end -}}

{{- define "gp.clientId" -}}
{{- .Values.azure.workloadIdentity.clientId | default (dig "clientId" "" (.Values.workloadIdentity | default dict)) -}}
{{- end -}}

{{- define "gp.tenantId" -}}
{{- .Values.azure.tenantId | default (dig "tenantId" "" (.Values.workloadIdentity | default dict)) -}}
{{- end -}}
