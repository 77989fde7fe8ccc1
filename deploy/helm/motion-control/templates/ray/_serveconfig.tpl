{{/*
Ray Serve config (serveConfigV2): one application per stage behind Serve's gRPC ingress.
Each application's deployment asks for a custom resource that only its worker group advertises,
so the Ray autoscaler grows exactly the group whose queue is long.
*/}}
{{- define "motion-control.ray.groupResource" -}}
{{- $gpu := .ctx.Values.gpu.enabled -}}
{{- if and $gpu (eq .app "pose") }}motion_gpu_small
{{- else if and $gpu (eq .app "render") }}motion_gpu_large
{{- else }}motion_cpu
{{- end }}
{{- end }}

{{- define "motion-control.ray.serveConfig" -}}
{{- $v := .Values -}}
{{- $servicers := dict
  "pose" "motion.v1.pose_service_pb2_grpc.add_PoseServiceServicer_to_server"
  "retarget" "motion.v1.retarget_service_pb2_grpc.add_RetargetServiceServicer_to_server"
  "render" "motion.v1.render_service_pb2_grpc.add_RenderServiceServicer_to_server" -}}
{{- $applications := list -}}
{{- range $name := list "pose" "retarget" "render" }}
{{- $a := index $v.ray.apps $name }}
{{- $resource := include "motion-control.ray.groupResource" (dict "ctx" $ "app" $name) }}
{{- $actor := dict "num_cpus" $a.numCpus "resources" (dict $resource 1) }}
{{- if and $v.gpu.enabled (gt (float64 $a.numGpus) 0.0) }}
{{- $_ := set $actor "num_gpus" $a.numGpus }}
{{- end }}
{{- $autoscaling := dict
  "min_replicas" $a.autoscaling.minReplicas
  "max_replicas" $a.autoscaling.maxReplicas
  "target_ongoing_requests" $a.autoscaling.targetOngoingRequests
  "upscale_delay_s" $a.autoscaling.upscaleDelayS
  "downscale_delay_s" $a.autoscaling.downscaleDelayS }}
{{- $deployment := dict
  "name" $a.deploymentName
  "max_ongoing_requests" $a.maxOngoingRequests
  "max_queued_requests" $a.maxQueuedRequests
  "autoscaling_config" $autoscaling
  "ray_actor_options" $actor }}
{{- $envVars := dict }}
{{- if and (eq $name "pose") $v.gpu.enabled }}
{{- /* Pose runtime on GPU nodes (torch or tensorrt); CPU pods keep the default, auto (openvino with native bf16, else litert). */}}
{{- $_ := set $envVars "MOTION_POSE_RUNTIME" $a.runtime }}
{{- end }}
{{- $app := dict
  "name" $name
  "route_prefix" (printf "/%s" $name)
  "import_path" $a.importPath
  "args" (dict "model_dir" "/opt/motion/models")
  "runtime_env" (ternary (dict "env_vars" $envVars) (dict) (gt (len $envVars) 0))
  "deployments" (list $deployment) }}
{{- $applications = append $applications $app }}
{{- end }}
{{- $config := dict
  "proxy_location" $v.ray.serve.proxyLocation
  "http_options" (dict "host" "0.0.0.0" "port" $v.ray.serve.httpPort "request_timeout_s" $v.ray.serve.requestTimeoutS)
  "grpc_options" (dict
    "port" $v.ray.serve.grpcPort
    "request_timeout_s" $v.ray.serve.requestTimeoutS
    "grpc_servicer_functions" (list (index $servicers "pose") (index $servicers "retarget") (index $servicers "render")))
  "logging_config" (dict "encoding" "JSON" "log_level" "INFO")
  "applications" $applications -}}
{{ toYaml $config }}
{{- end }}
