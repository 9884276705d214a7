{{/* The release's name for its objects, at most 63 characters. */}}
{{- define "llm-observer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "llm-observer.collectorName" -}}
{{- printf "%s-collector" (include "llm-observer.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-observer.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llm-observer.labels" -}}
{{ include "llm-observer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "llm-observer.serviceAccountName" -}}
{{- default (include "llm-observer.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "llm-observer.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The OTLP endpoint: the value, else this chart's gateway, else the
collector of deploy/collector.yaml. */}}
{{- define "llm-observer.otlpEndpoint" -}}
{{- if .Values.otlp.endpoint -}}
{{- .Values.otlp.endpoint -}}
{{- else -}}
{{- $port := ternary "4317" "4318" (eq .Values.otlp.protocol "grpc") -}}
{{- if .Values.gateway.enabled -}}
{{- printf "http://%s.%s.svc:%s" (include "llm-observer.collectorName" .) .Release.Namespace $port -}}
{{- else -}}
{{- printf "http://otel-collector.observability.svc:%s" $port -}}
{{- end -}}
{{- end -}}
{{- end -}}
