{{- /*
"true" when the operator replicas elect a leader on a Lease (operator.replicas > 1, or
operator.leaderElection.enabled), else "". Used by the Deployment (flags, POD_NAME, strategy),
the operator's Lease RBAC and its PodDisruptionBudget.
*/}}
{{- define "warmpool.operator.leaderElect" -}}
{{- if or .Values.operator.leaderElection.enabled (gt (int .Values.operator.replicas) 1) -}}
true
{{- end -}}
{{- end }}

{{- /* The Lease's name: the release's full name (two releases in one namespace never share it). */}}
{{- define "warmpool.operator.leaseName" -}}
{{- include "warmpool.fullname" . }}
{{- end }}
