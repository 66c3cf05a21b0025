{{/*
Chart name, truncated to 63 characters (the DNS label limit of Kubernetes names).
*/}}
{{- define "genesys-kafka-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: "<release>-<chart>", or just "<release>" when it already contains the chart name.
Every resource of one release shares it, so two releases (two orgs) never collide.
*/}}
{{- define "genesys-kafka-connector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Namespace of namespaced resources.
*/}}
{{- define "genesys-kafka-connector.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "genesys-kafka-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: name + instance only, because a StatefulSet's selector is immutable.
*/}}
{{- define "genesys-kafka-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "genesys-kafka-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels on every resource.
*/}}
{{- define "genesys-kafka-connector.labels" -}}
helm.sh/chart: {{ include "genesys-kafka-connector.chart" . }}
{{ include "genesys-kafka-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: connector
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "genesys-kafka-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "genesys-kafka-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "genesys-kafka-connector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
True ("true") when Kafka uses SASL, so the SASL username/password are wired in.
*/}}
{{- define "genesys-kafka-connector.saslEnabled" -}}
{{- if hasPrefix "SASL_" (toString .Values.config.kafka.security_protocol) }}true{{- end }}
{{- end }}

{{/*
Name of the Secret with the credentials: the existing one, or the one this chart creates. Fails with a
readable message when neither an existing Secret nor the credentials are given (the schema says the same).
*/}}
{{- define "genesys-kafka-connector.secretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- $_ := required "auth.clientId is required (or set auth.existingSecret)" .Values.auth.clientId }}
{{- $_ := required "auth.clientSecret is required (or set auth.existingSecret)" .Values.auth.clientSecret }}
{{- if include "genesys-kafka-connector.saslEnabled" . }}
{{- $_ := required "auth.kafkaSaslUsername is required when config.kafka.security_protocol is SASL_* (or set auth.existingSecret)" .Values.auth.kafkaSaslUsername }}
{{- $_ := required "auth.kafkaSaslPassword is required when config.kafka.security_protocol is SASL_* (or set auth.existingSecret)" .Values.auth.kafkaSaslPassword }}
{{- end }}
{{- printf "%s-credentials" (include "genesys-kafka-connector.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The connector's config.yaml: the user's `config` block plus the keys the chart owns (checkpoint directory,
metrics listener, secret file paths), so the volume mounts and the config can never disagree.
*/}}
{{- define "genesys-kafka-connector.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $checkpoint := $cfg.checkpoint | default dict }}
{{- $_ := set $checkpoint "directory" .Values.persistence.mountPath }}
{{- $_ := set $cfg "checkpoint" $checkpoint }}
{{- $_ := set $cfg "metrics" (dict "host" "0.0.0.0" "port" (int .Values.metrics.port)) }}
{{- $genesys := $cfg.genesys | default dict }}
{{- $_ := set $genesys "client_secret_file" (printf "%s/%s" .Values.auth.mountPath .Values.auth.secretKeys.clientSecret) }}
{{- $_ := set $cfg "genesys" $genesys }}
{{- if include "genesys-kafka-connector.saslEnabled" . }}
{{- $kafka := $cfg.kafka | default dict }}
{{- $_ := set $kafka "sasl_password_file" (printf "%s/%s" .Values.auth.mountPath .Values.auth.secretKeys.kafkaSaslPassword) }}
{{- $_ := set $cfg "kafka" $kafka }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
PromQL label matchers selecting this release's series in alert expressions.
*/}}
{{- define "genesys-kafka-connector.ruleSelector" -}}
{{- if .Values.metrics.prometheusRule.selector }}
{{- .Values.metrics.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "genesys-kafka-connector.fullname" .) (include "genesys-kafka-connector.namespace" .) }}
{{- end }}
{{- end }}
