{{/*
Chart name, truncated to 63 characters (a label value's limit).
*/}}
{{- define "warmpool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every object this release owns. The release name alone when it
already contains the chart name (`helm install warmpool ...` gives `warmpool`, not
`warmpool-warmpool`). 52 characters leave room for the longest suffix ("-activator").
*/}}
{{- define "warmpool.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "warmpool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object. Call with a dict: (dict "ctx" $ "component" "operator").
*/}}
{{- define "warmpool.labels" -}}
helm.sh/chart: {{ include "warmpool.chart" .ctx }}
{{ include "warmpool.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: warmpool
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (immutable in a Deployment: never add to them). Same dict as warmpool.labels.
*/}}
{{- define "warmpool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "warmpool.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Operator ServiceAccount name.
*/}}
{{- define "warmpool.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "warmpool.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Activator name and ServiceAccount name.
*/}}
{{- define "warmpool.activator.fullname" -}}
{{- printf "%s-activator" (include "warmpool.fullname" .) }}
{{- end }}

{{- define "warmpool.activator.serviceAccountName" -}}
{{- if .Values.activator.serviceAccount.create }}
{{- default (include "warmpool.activator.fullname" .) .Values.activator.serviceAccount.name }}
{{- else }}
{{- required "activator.serviceAccount.name is required when activator.serviceAccount.create is false" .Values.activator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the ClusterRole the operator binds, per pool, to the pool's `<pool>-warmup`
ServiceAccount (get pods, patch pods/status: the warm-up sidecar opens the readiness gate).
Fixed, not release-scoped: warmpool.render writes this name into every pool's RoleBinding, so
two releases share it and the operator may bind only it (`bind` with resourceNames).
*/}}
{{- define "warmpool.warmupClusterRoleName" -}}
warmpool-warmup
{{- end }}

{{/*
Image reference: repository[:tag][@digest]; the tag defaults to the chart's appVersion.
Call with a dict: (dict "image" .Values.operator.image "ctx" $).
*/}}
{{- define "warmpool.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
`<namespace>/<name>` of the activator Service, for the operator's --activator-service.
*/}}
{{- define "warmpool.activator.serviceRef" -}}
{{- printf "%s/%s" .Release.Namespace (include "warmpool.activator.fullname" .) }}
{{- end }}
