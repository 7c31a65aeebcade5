{{/* Full name of the release's objects. */}}
{{- define "testlayer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Common labels. */}}
{{- define "testlayer.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels. */}}
{{- define "testlayer.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount's name. */}}
{{- define "testlayer.serviceAccountName" -}}
{{- default (include "testlayer.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Whether leader election is on. */}}
{{- define "testlayer.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* The job label of the controller's series in Prometheus: the metrics
Service's name, as a ServiceMonitor names its job, unless told. */}}
{{- define "testlayer.metricsJob" -}}
{{- default (printf "%s-metrics" (include "testlayer.fullname" .)) .Values.metrics.prometheusRule.job -}}
{{- end -}}
