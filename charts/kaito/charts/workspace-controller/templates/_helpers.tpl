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

{{- define "wc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "wc.certSecretName" -}}
{{- default (printf "%s-webhook-cert" (include "wc.name" .)) .Values.webhook.existingSecret -}}
{{- end -}}

{{- define "wc.webhookConfigName" -}}validation.workspace.kaito.sh{{- end -}}

{{- define "wc.featureGates" -}}
{{- $gates := list -}}
{{- range $name, $on := .Values.featureGates -}}
{{- $gates = append $gates (printf "%s=%t" $name $on) -}}
{{- end -}}
{{- join "," $gates -}}
{{- end -}}
