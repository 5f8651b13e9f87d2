{{/* The chart's name, at most 63 characters. */}}
{{- define "mia.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The objects' base name: RELEASE-server when the release name contains the
chart's ("mia" -> mia-server), else RELEASE-mia-server; fullnameOverride wins.
At most 52 characters: the StatefulSet's pods add a controller-revision-hash
label of name + 11 characters, which must fit in 63.
*/}}
{{- define "mia.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else if contains (include "mia.name" .) .Release.Name }}
{{- printf "%s-server" .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s-server" .Release.Name (include "mia.name" .) | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "mia.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mia.name" . }}-server
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mia.labels" -}}
{{ include "mia.selectorLabels" . }}
app.kubernetes.io/part-of: mia
app.kubernetes.io/component: server
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where the TLS Secret (tls.secretName) is mounted. */}}
{{- define "mia.tlsDir" -}}
/etc/mia-tls
{{- end }}

{{/*
The server's config file: the derived keys (tls_* from tls.secretName), then
.Values.config. Fails on a derived key set in .Values.config, on a drain
timeout the grace period does not cover, and on tls.requireClientCert without
tls.secretName.
*/}}
{{- define "mia.config" -}}
{{- range $key := list "listen_address" "data_dir" "data_roots" "metrics_port" "tls_cert_file" "tls_key_file" "tls_client_ca_file" "store" "replica_id" "artifact_store" "s3_endpoint" "s3_region" "auth_tokens_file" "auth_jwt_keys" "auth_jwt_issuer" "auth_jwt_audience" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s is derived by the chart; set it through its own value (see values.yaml)" $key) }}
{{- end }}
{{- end }}
{{- include "mia.checkReplicated" . }}
{{- if and .Values.tls.requireClientCert (not .Values.tls.secretName) }}
{{- fail "tls.requireClientCert needs tls.secretName (mutual TLS is TLS first)" }}
{{- end }}
{{- $drain := 30.0 }}
{{- if hasKey .Values.config "drain_timeout_seconds" }}
{{- $drain = float64 .Values.config.drain_timeout_seconds }}
{{- end }}
{{- $preStop := 0.0 }}
{{- if eq .Values.mode "replicated" }}
{{- $preStop = float64 .Values.preStopSleepSeconds }}
{{- end }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (addf $drain $preStop) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.drain_timeout_seconds (%v) plus, in replicated mode, preStopSleepSeconds (%v)" .Values.terminationGracePeriodSeconds $drain $preStop) }}
{{- end }}
{{- if not .Values.dataRoots }}
{{- fail "dataRoots is empty: the server could audit only uploads" }}
{{- end }}
listen_address: {{ printf "0.0.0.0:%d" (int .Values.service.grpcPort) | quote }}
data_dir: {{ .Values.persistence.mountPath | quote }}
data_roots:
{{- range .Values.dataRoots }}
  - {{ .mountPath | quote }}
{{- end }}
metrics_port: {{ int .Values.metrics.port }}
{{- if .Values.tls.secretName }}
tls_cert_file: {{ printf "%s/tls.crt" (include "mia.tlsDir" .) | quote }}
tls_key_file: {{ printf "%s/tls.key" (include "mia.tlsDir" .) | quote }}
{{- if .Values.tls.requireClientCert }}
tls_client_ca_file: {{ printf "%s/ca.crt" (include "mia.tlsDir" .) | quote }}
{{- end }}
{{- end }}
{{- with .Values.config }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Where the auth Secrets (auth.tokens, auth.jwt) are mounted. */}}
{{- define "mia.authDir" -}}
/etc/mia-auth
{{- end }}

{{/*
Replicated mode's required values: the store Secret and the artifact store.
Empty output; fails with a message naming the value.
*/}}
{{- define "mia.checkReplicated" -}}
{{- if not (has .Values.mode (list "single" "replicated")) }}
{{- fail (printf "mode must be single or replicated, not %v" .Values.mode) }}
{{- end }}
{{- if eq .Values.mode "replicated" }}
{{- if not .Values.store.existingSecret }}
{{- fail "mode replicated needs store.existingSecret: a Secret holding the PostgreSQL URL (MIA_STORE)" }}
{{- end }}
{{- if eq .Values.artifactStore.type "volume" }}
{{- if not .Values.artifactStore.volume.existingClaim }}
{{- fail "artifactStore.type volume needs artifactStore.volume.existingClaim: a ReadWriteMany PersistentVolumeClaim" }}
{{- end }}
{{- else if eq .Values.artifactStore.type "s3" }}
{{- if not (hasPrefix "s3://" .Values.artifactStore.s3.url) }}
{{- fail "artifactStore.type s3 needs artifactStore.s3.url: s3://BUCKET/PREFIX" }}
{{- end }}
{{- else }}
{{- fail (printf "artifactStore.type must be volume or s3, not %v" .Values.artifactStore.type) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
mia-server's flags (container args): the settings that name Secrets' files or
the pod, and replicated mode's stores. The store URL itself is never a flag
(argv is readable in /proc): MIA_STORE comes from the Secret (mia.env).
*/}}
{{- define "mia.args" -}}
{{- if eq .Values.mode "replicated" }}
{{- if eq .Values.artifactStore.type "volume" }}
- {{ printf "--artifact_store=%s" .Values.artifactStore.volume.mountPath | quote }}
{{- else }}
- {{ printf "--artifact_store=%s" .Values.artifactStore.s3.url | quote }}
{{- with .Values.artifactStore.s3.endpoint }}
- {{ printf "--s3_endpoint=%s" . | quote }}
{{- end }}
- {{ printf "--s3_region=%s" .Values.artifactStore.s3.region | quote }}
{{- end }}
- "--replica_id=$(POD_NAME)"
{{- end }}
{{- if .Values.auth.tokens.existingSecret }}
- {{ printf "--auth_tokens_file=%s/tokens/%s" (include "mia.authDir" .) .Values.auth.tokens.key | quote }}
{{- end }}
{{- if .Values.auth.jwt.existingSecret }}
- {{ printf "--auth_jwt_keys=%s/jwt/%s" (include "mia.authDir" .) .Values.auth.jwt.key | quote }}
{{- with .Values.auth.jwt.issuer }}
- {{ printf "--auth_jwt_issuer=%s" . | quote }}
{{- end }}
{{- with .Values.auth.jwt.audience }}
- {{ printf "--auth_jwt_audience=%s" . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The container's environment, both modes. */}}
{{- define "mia.env" -}}
- name: MIA_CONFIG
  value: /etc/mia/config.yaml
{{- if .Values.threadsPerJobFromCpuLimit }}
- name: MIA_THREADS_PER_JOB
  valueFrom:
    resourceFieldRef:
      containerName: mia-server
      resource: limits.cpu
      divisor: "1"
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
- name: TMPDIR
  value: /tmp
{{- if eq .Values.mode "replicated" }}
# --replica_id=$(POD_NAME): each replica's leases carry its pod's name.
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
# The PostgreSQL URL, password included: from the Secret, never a flag or a
# value (the server never logs it).
- name: MIA_STORE
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.existingSecret }}
      key: {{ .Values.store.key }}
{{- if and (eq .Values.artifactStore.type "s3") .Values.artifactStore.s3.existingSecret }}
{{- $s3 := .Values.artifactStore.s3 }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.secretAccessKeyKey }}
{{- with $s3.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The probes: native gRPC, or TCP with TLS on the gRPC port. */}}
{{- define "mia.probes" -}}
{{- if .Values.tls.secretName }}
# TLS on the gRPC port: the kubelet's native gRPC probes speak only
# plaintext, so the probes check that the port accepts connections (it opens
# once the store is open and jobs are resumed).
startupProbe:
  tcpSocket:
    port: {{ .Values.service.grpcPort }}
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  tcpSocket:
    port: {{ .Values.service.grpcPort }}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  tcpSocket:
    port: {{ .Values.service.grpcPort }}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- else }}
startupProbe:
  grpc:
    port: {{ .Values.service.grpcPort }}
    service: ""
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  grpc:
    port: {{ .Values.service.grpcPort }}
    service: ""
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  grpc:
    port: {{ .Values.service.grpcPort }}
    service: mia.v1.AuditService
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end }}
{{- end }}

{{/* Container resources, with gpu.count GPUs (requests = limits). */}}
{{- define "mia.resources" -}}
{{- $r := deepCopy .Values.resources }}
{{- if gt (int .Values.gpu.count) 0 }}
{{- $limits := default (dict) $r.limits }}
{{- $_ := set $limits .Values.gpu.resourceName (int .Values.gpu.count) }}
{{- $_ := set $r "limits" $limits }}
{{- $requests := default (dict) $r.requests }}
{{- $_ := set $requests .Values.gpu.resourceName (int .Values.gpu.count) }}
{{- $_ := set $r "requests" $requests }}
{{- end }}
{{- toYaml $r }}
{{- end }}

{{/* Mounts of the auth Secrets; the matching volumes are mia.authVolumes. */}}
{{- define "mia.authMounts" -}}
{{- if .Values.auth.tokens.existingSecret }}
# A whole-Secret mount (no subPath), so that the kubelet's updates of the
# Secret reach the file, which the server reloads when it changes.
- name: auth-tokens
  mountPath: {{ include "mia.authDir" . }}/tokens
  readOnly: true
{{- end }}
{{- if .Values.auth.jwt.existingSecret }}
- name: auth-jwt
  mountPath: {{ include "mia.authDir" . }}/jwt
  readOnly: true
{{- end }}
{{- end }}

{{- define "mia.authVolumes" -}}
{{- if .Values.auth.tokens.existingSecret }}
- name: auth-tokens
  secret:
    secretName: {{ .Values.auth.tokens.existingSecret }}
    items:
      - key: {{ .Values.auth.tokens.key }}
        path: {{ .Values.auth.tokens.key }}
    # 0440: readable by the server through fsGroup 10001, by no one else.
    defaultMode: 288
{{- end }}
{{- if .Values.auth.jwt.existingSecret }}
- name: auth-jwt
  secret:
    secretName: {{ .Values.auth.jwt.existingSecret }}
    items:
      - key: {{ .Values.auth.jwt.key }}
        path: {{ .Values.auth.jwt.key }}
    defaultMode: 288
{{- end }}
{{- end }}

{{/* The pod's scheduling: node selector, affinity, tolerations. */}}
{{- define "mia.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
