{{/*
Names. The release named imagestream-operator (what deploy/ is rendered with) names every
object imagestream-operator; another release name is used as a prefix. The Lease, the webhook
CA Secret and the two webhook configurations have names fixed by the operator binary
(imagestream-operator, imagestream-operator-webhook-ca): one release per cluster.
*/}}
{{- define "imagestream-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imagestream-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The labels the Deployment selects its Pods by (immutable once installed). */}}
{{- define "imagestream-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imagestream-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "imagestream-operator.labels" -}}
{{ include "imagestream-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: imagestream-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "imagestream-operator.serviceAccountName" -}}
{{- default (include "imagestream-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The container image: repository, then @digest, or :tag (default: the chart's appVersion). */}}
{{- define "imagestream-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else if .Values.image.tag -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- else -}}
{{- .Values.image.repository -}}
{{- end -}}
{{- end -}}

{{/* The namespaced objects' namespace. */}}
{{- define "imagestream-operator.namespace" -}}
{{- .Release.Namespace -}}
{{- end -}}
