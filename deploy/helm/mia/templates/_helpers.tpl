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
{{- range $key := list "listen_address" "data_dir" "data_roots" "metrics_port" "tls_cert_file" "tls_key_file" "tls_client_ca_file" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s is derived by the chart; set it through its own value (see values.yaml)" $key) }}
{{- end }}
{{- end }}
{{- if and .Values.tls.requireClientCert (not .Values.tls.secretName) }}
{{- fail "tls.requireClientCert needs tls.secretName (mutual TLS is TLS first)" }}
{{- end }}
{{- $drain := 30.0 }}
{{- if hasKey .Values.config "drain_timeout_seconds" }}
{{- $drain = float64 .Values.config.drain_timeout_seconds }}
{{- end }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed config.drain_timeout_seconds (%v)" .Values.terminationGracePeriodSeconds $drain) }}
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
