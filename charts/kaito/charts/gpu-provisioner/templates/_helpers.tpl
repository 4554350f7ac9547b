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

{{- define "gp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "gp.workloadIdentity" -}}
{{- and (eq .Values.cloud "azure") .Values.azure.workloadIdentity.enabled -}}
{{- end -}}
