{{/*
Pod template of a Ray node. Call with (dict "ctx" $ "role" "head"|"worker" "group" <values> "gpu" bool "groupName" name).
KubeRay injects Ray's own readiness/liveness probes (raylet and Serve proxy health) into these
containers; Serve's gRPC proxy does not speak grpc.health.v1, so native gRPC probes are not used here.
*/}}
{{- define "motion-control.ray.podTemplate" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
{{- $useGpu := and .gpu $v.gpu.enabled -}}
metadata:
  labels:
    {{- include "motion-control.componentLabels" (dict "ctx" $ctx "component" "ray") | nindent 4 }}
    motion-control/ray-role: {{ .role }}
    motion-control/ray-group: {{ .groupName }}
spec:
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq .role "worker" }}
  # Only the head's autoscaler sidecar talks to the Kubernetes API.
  automountServiceAccountToken: false
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  containers:
    - name: ray-{{ .role }}
      {{- include "motion-control.workerImage" (dict "ctx" $ctx "gpu" .gpu) | nindent 6 }}
      securityContext:
        {{- include "motion-control.containerSecurityContext" $ctx | nindent 8 }}
      ports:
        {{- if eq .role "head" }}
        - name: gcs-server
          containerPort: 6379
        - name: dashboard
          containerPort: 8265
        - name: client
          containerPort: 10001
        {{- end }}
        - name: serve
          containerPort: {{ $v.ray.serve.httpPort }}
        - name: grpc-serve
          containerPort: {{ $v.ray.serve.grpcPort }}
        - name: metrics
          containerPort: {{ $v.ray.metricsPort }}
        - name: app-metrics
          containerPort: {{ $v.ray.appMetricsPort }}
      env:
        {{- include "motion-control.commonEnv" $ctx | nindent 8 }}
        - name: MOTION_METRICS_PORT
          value: {{ $v.ray.appMetricsPort | quote }}
        - name: RAY_USAGE_STATS_ENABLED
          value: "0"
        {{- if $useGpu }}
        # graphics: the NVIDIA EGL driver for moderngl; video: NVENC for the encoder.
        - name: NVIDIA_DRIVER_CAPABILITIES
          value: compute,utility,graphics,video
        {{- end }}
      {{- if eq .role "worker" }}
      lifecycle:
        preStop:
          # Let Ray drain the node (Serve replicas finish in-flight requests) before the pod dies.
          exec:
            command: ["/bin/sh", "-c", "ray stop"]
      {{- end }}
      resources:
        requests:
          {{- toYaml .group.resources.requests | nindent 10 }}
        limits:
          {{- toYaml .group.resources.limits | nindent 10 }}
          {{- if $useGpu }}
          {{ $v.gpu.resourceName }}: {{ .group.gpusPerNode | quote }}
          {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: shm
          mountPath: /dev/shm
        - name: cache
          mountPath: /var/cache/motion
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.ray.tmpSizeLimit }}
    # Ray's object store lives in shared memory; the container default (64Mi) is far too small.
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $v.ray.shmSizeLimit }}
    - name: cache
      emptyDir:
        sizeLimit: 4Gi
  {{- with .group.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .group.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if or .group.tolerations }}
  tolerations:
    {{- toYaml .group.tolerations | nindent 4 }}
  {{- end }}
{{- end }}
