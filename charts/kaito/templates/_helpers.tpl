{{/* Whether the NodeClaim CRD is part of this release. */}}
{{- define "kaito.installNodeClaim" -}}
{{- or (index .Values "gpu-provisioner" "enabled") .Values.crds.installNodeClaim -}}
{{- end -}}

{{- define "kaito.labels" -}}
app.kubernetes.io/part-of: kaito
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* A generated CRD file (files/crds, a copy of the repository's crds/) with the chart's metadata. */}}
{{- define "kaito.crd" -}}
{{- $crd := .root.Files.Get .file | fromYaml }}
{{- $meta := $crd.metadata }}
{{- $_ := set $meta "labels" (include "kaito.labels" .root | fromYaml) }}
{{- if .root.Values.crds.keep }}
{{- $_ := set $meta "annotations" (dict "helm.sh/resource-policy" "keep") }}
{{- end }}
{{- toYaml $crd }}
{{- end -}}
