{{- /* Prometheus' targets (file_sd), written by Nomad from Consul's catalog
       with the prometheus job's workload identity and rewritten whenever
       the catalog changes. `|any`: an instance whose checks fail is still
       scraped (it is what an operator wants to see). Labels: kind picks
       the scrape job (prometheus.yml), node names the machine. */ -}}
{{- range $kind, $name := (parseJSON `{"service": ["web", "web-inc"], "traefik": ["traefik"], "nomad": ["nomad-client"], "node": ["node-exporter"]}`) }}
{{- range $name }}
{{- range service (print . "|any") }}
- targets: ["{{ .Address }}:{{ .Port }}"]
  labels: {kind: {{ $kind }}, service: "{{ .Name }}", node: "{{ .Node }}"}
{{- end }}
{{- end }}
{{- end }}
{{- /* Consul's HTTPS port in a cluster (its plain HTTP is loopback only). */ -}}
{{- $tls := env "COUNTER_METRICS_TLS" }}
{{- range nodes }}
- targets: ["{{ .Address }}:{{ if $tls }}8501{{ else }}8500{{ end }}"]
  labels: {kind: consul, node: "{{ .Node }}"}
{{- end }}
{{- /* A Redis is registered by two agents (consul/redis.hcl.j2): the same
       target twice, which Prometheus keeps once (no node label here). */ -}}
{{- /* A Sentinel on every server (the Consul servers' machines), read
       by the same exporter as the metrics user: sentinel: "yes". */ -}}
{{- range service "consul" }}
- targets: ["{{ if $tls }}rediss{{ else }}redis{{ end }}://{{ .Address }}:26380"]
  labels: {kind: redis, exporter: "{{ .Address }}:9121", sentinel: "yes"}
{{- end }}
{{- range $role := (parseJSON `["redis-primary", "redis-replica"]`) }}
{{- range service (print $role "|any") }}
- targets: ["{{ if $tls }}rediss{{ else }}redis{{ end }}://{{ .Address }}:{{ .Port }}"]
  labels: {kind: redis, exporter: "{{ .Address }}:9121"}
{{- end }}
{{- end }}
