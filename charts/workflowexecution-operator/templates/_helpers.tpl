{{/* Name prefix of every object. */}}
{{- define "wfe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if or (contains .Chart.Name .Release.Name) (contains "wfe" .Release.Name) -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name "wfe" | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The leader-election Lease: controller.flags.lease-name, or <fullname>-leader. */}}
{{- define "wfe.leaseName" -}}
{{- default (printf "%s-leader" (include "wfe.fullname" .)) (index .Values.controller.flags "lease-name") -}}
{{- end -}}

{{- define "wfe.controller" -}}{{ include "wfe.fullname" . }}-controller{{- end -}}
{{- define "wfe.webhook" -}}{{ include "wfe.fullname" . }}-webhook{{- end -}}
{{- define "wfe.tlsSecret" -}}
{{- if eq .Values.webhook.tls.mode "secret" -}}{{ required "webhook.tls.secretName is required in secret mode" .Values.webhook.tls.secretName }}{{- else -}}{{ include "wfe.webhook" . }}-tls{{- end -}}
{{- end -}}

{{- define "wfe.labels" -}}
app.kubernetes.io/name: workflowexecution-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "controller"). */}}
{{- define "wfe.selector" -}}
app.kubernetes.io/name: workflowexecution-operator
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "wfe.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .image.name (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* `--name=value` for every flag with a value, in name order (a YAML list). */}}
{{- define "wfe.flags" -}}
{{- $args := list -}}
{{- range $name, $value := . -}}
{{- if kindIs "float64" $value -}}{{- $value = int64 $value -}}{{- end -}}
{{- if ne (toString $value) "" -}}{{- $args = append $args (printf "--%s=%v" $name $value) -}}{{- end -}}
{{- end -}}
{{- toYaml $args -}}
{{- end -}}

{{/* Host of webhook.url without its port ("" without a URL). */}}
{{- define "wfe.urlHost" -}}
{{- if .Values.webhook.url -}}
{{- $host := (urlParse .Values.webhook.url).host -}}
{{- regexReplaceAll "^\\[?([^\\]]*?)\\]?(:[0-9]+)?$" $host "${1}" -}}
{{- end -}}
{{- end -}}

{{/* DNS names of the serving certificate. */}}
{{- define "wfe.dnsNames" -}}
{{- $svc := include "wfe.webhook" . -}}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- $host := include "wfe.urlHost" . -}}
{{- if and $host (not (include "wfe.isIP" $host)) -}}{{- $names = append $names $host -}}{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* IP addresses of the serving certificate (the URL's host when it is an IP). */}}
{{- define "wfe.ipAddresses" -}}
{{- $host := include "wfe.urlHost" . -}}
{{- if and $host (include "wfe.isIP" $host) -}}{{- toJson (list $host) -}}{{- else -}}[]{{- end -}}
{{- end -}}

{{/* "true" when a host (without port or brackets) is an IPv4 or IPv6 address, else "". */}}
{{- define "wfe.isIP" -}}
{{- if or (regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$" .) (contains ":" .) -}}true{{- end -}}
{{- end -}}

{{/* Restricted pod security, shared by both Deployments. */}}
{{- define "wfe.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "wfe.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Soft anti-affinity: replicas of one component on different nodes where possible. */}}
{{- define "wfe.affinity" -}}
{{- if .affinity -}}
{{- toYaml .affinity -}}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 100
    podAffinityTerm:
      topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "wfe.selector" (dict "root" .root "component" .component) | nindent 10 }}
{{- end -}}
{{- end -}}

{{/* A webhook's clientConfig: the URL when webhook.url is set, else the Service. */}}
{{- define "wfe.clientConfig" -}}
{{- if .root.Values.webhook.url -}}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path | quote }}
{{- else -}}
service:
  name: {{ include "wfe.webhook" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- with .caBundle }}
caBundle: {{ . }}
{{- end }}
{{- end -}}

{{/* Settings that only make sense together, checked before anything is rendered. */}}
{{- define "wfe.checks" -}}
{{- $flags := .Values.controller.flags -}}
{{- $duration := index $flags "lease-duration-seconds" | default 15 | int -}}
{{- $grace := index $flags "lease-grace-seconds" | default 5 | int -}}
{{- if ge $grace $duration -}}
{{- fail (printf "controller.flags.lease-grace-seconds (%d) must be less than controller.flags.lease-duration-seconds (%d)" $grace $duration) -}}
{{- end -}}
{{- if and (eq (int .Values.webhook.replicas) 0) (not .Values.webhook.url) -}}
{{- fail "webhook.replicas is 0 while the webhook configurations (failurePolicy Fail) point at its Service: every WorkflowExecution create would be refused; set webhook.url or replicas >= 1" -}}
{{- end -}}
{{- end -}}
