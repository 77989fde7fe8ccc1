{{/*
Expand the name of the chart.
*/}}
{{- define "motion-control.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated at 63 chars (DNS label limit). Component suffixes are added by
callers, so keep room: names longer than 40 chars are cut further where a suffix follows.
*/}}
{{- define "motion-control.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "motion-control.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "motion-control.labels" -}}
helm.sh/chart: {{ include "motion-control.chart" . }}
{{ include "motion-control.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: motion-control
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "motion-control.selectorLabels" -}}
app.kubernetes.io/name: {{ include "motion-control.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Per-component labels: call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "motion-control.componentLabels" -}}
{{ include "motion-control.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "motion-control.componentSelectorLabels" -}}
{{ include "motion-control.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Names of the parts. */}}
{{- define "motion-control.gateway.fullname" -}}
{{- printf "%s-gateway" (include "motion-control.fullname" .) }}
{{- end }}

{{- define "motion-control.ray.fullname" -}}
{{- printf "%s-ray" (include "motion-control.fullname" .) }}
{{- end }}

{{/* The Service KubeRay points at the healthy cluster's Serve proxies (stable across upgrades). */}}
{{- define "motion-control.ray.serveServiceName" -}}
{{- printf "%s-ray-serve" (include "motion-control.fullname" .) }}
{{- end }}

{{- define "motion-control.minio.fullname" -}}
{{- printf "%s-minio" (include "motion-control.fullname" .) }}
{{- end }}

{{- define "motion-control.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "motion-control.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Worker image for a group: call with (dict "ctx" $ "gpu" true|false); GPU groups use the CUDA image. */}}
{{- define "motion-control.workerImage" -}}
{{- $v := .ctx.Values -}}
{{- $img := $v.ray.image -}}
{{- if and .gpu $v.gpu.enabled }}{{ $img = $v.ray.gpuImage }}{{ end -}}
image: {{ printf "%s:%s" $img.repository (default .ctx.Chart.AppVersion $img.tag) | quote }}
imagePullPolicy: {{ $img.pullPolicy }}
{{- end }}

{{/* Object store: endpoint and credentials Secret. */}}
{{- define "motion-control.s3.endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "%s:%d" (include "motion-control.minio.fullname" .) (int .Values.minio.apiPort) }}
{{- else }}
{{- required "objectStore.endpoint is required when minio.enabled is false" .Values.objectStore.endpoint }}
{{- end }}
{{- end }}

{{- define "motion-control.s3.secretName" -}}
{{- default (printf "%s-s3" (include "motion-control.fullname" .)) .Values.objectStore.existingSecret }}
{{- end }}

{{/* Secret with the gateway's API keys file; empty when none is configured. */}}
{{- define "motion-control.gateway.apiKeysSecretName" -}}
{{- if .Values.gateway.apiKeys.existingSecret }}
{{- .Values.gateway.apiKeys.existingSecret }}
{{- else if .Values.gateway.apiKeys.keys }}
{{- printf "%s-api-keys" (include "motion-control.gateway.fullname" .) }}
{{- end }}
{{- end }}

{{- define "motion-control.internalAuth.secretName" -}}
{{- default (printf "%s-internal-auth" (include "motion-control.fullname" .)) .Values.internalAuth.existingSecret }}
{{- end }}

{{/* Environment every motion process shares (motion.settings.Settings reads MOTION_*). */}}
{{- define "motion-control.commonEnv" -}}
- name: MOTION_STORE_URL
  value: {{ printf "s3://%s" .Values.objectStore.bucket | quote }}
- name: MOTION_S3_ENDPOINT
  value: {{ include "motion-control.s3.endpoint" . | quote }}
- name: MOTION_S3_SECURE
  value: {{ .Values.objectStore.secure | quote }}
- name: MOTION_S3_REGION
  value: {{ .Values.objectStore.region | quote }}
- name: MOTION_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "motion-control.s3.secretName" . }}
      key: {{ .Values.objectStore.accessKeyKey }}
- name: MOTION_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "motion-control.s3.secretName" . }}
      key: {{ .Values.objectStore.secretKeyKey }}
- name: MOTION_INTERNAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "motion-control.internalAuth.secretName" . }}
      key: {{ .Values.internalAuth.tokenKey }}
- name: MOTION_CACHE_DIR
  value: /var/cache/motion
- name: MOTION_MODEL_DIR
  value: /opt/motion/models
- name: MOTION_LOG_JSON
  value: "true"
- name: HOME
  value: /tmp
{{- end }}

{{/* Container security context (read-only root, no capabilities). */}}
{{- define "motion-control.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}
