package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/decode"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/feed"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// setting is one row of the table: how a variable (and its flag) is read.
type setting struct {
	env     string
	flag    string // "" when the setting has no flag
	def     string // applied before the environment, spelled as the variable
	shown   string // the default as shown, when another package applies it
	accepts string
	help    string
	// set applies a value; nil for variables the OTLP exporters read
	// themselves, listed so the table is complete.
	set func(c *Config, v string) error
	// setFlag, when set, applies the flag's value where it differs from
	// the variable's (a duration instead of milliseconds, an endpoint).
	setFlag  func(c *Config, v string) error
	boolFlag bool
	// keepEmpty: an empty value is a value (it turns something off),
	// not an unset variable.
	keepEmpty bool
}

// optInLatestGenAI is the OTEL_SEMCONV_STABILITY_OPT_IN value that asks for
// the newest GenAI names only.
const optInLatestGenAI = "gen_ai_latest_experimental"

const (
	acceptsBool     = "`true` or `false`"
	acceptsMillis   = "milliseconds, more than 0"
	acceptsCount    = "a whole number, more than 0"
	acceptsDuration = "a Go duration such as `500ms`, `2s`, `5m`"
	acceptsExporter = "`otlp` or `none`"
	acceptsProtocol = "`grpc` or `http/protobuf`"
)

var settings = []setting{
	{env: "OTEL_EXPORTER_OTLP_ENDPOINT", flag: "otlp-endpoint",
		accepts: "a URL such as `http://collector:4317`",
		help:    "OTLP endpoint of every signal; setting it, or any per-signal endpoint, turns OTLP on (else calls go to the console)",
		set:     func(c *Config, v string) error { return setEndpointVariable(c, v) },
		setFlag: func(c *Config, v string) error { return setEndpoint(c, v) }},
	{env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", accepts: "a URL", help: "OTLP endpoint of traces alone",
		set: func(c *Config, v string) error { return setEndpointVariable(c, v) }},
	{env: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", accepts: "a URL", help: "OTLP endpoint of metrics alone",
		set: func(c *Config, v string) error { return setEndpointVariable(c, v) }},
	{env: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", accepts: "a URL", help: "OTLP endpoint of logs alone",
		set: func(c *Config, v string) error { return setEndpointVariable(c, v) }},
	{env: "OTEL_EXPORTER_OTLP_PROTOCOL", flag: "otlp-protocol", def: string(export.ProtocolGRPC), accepts: acceptsProtocol,
		help: "OTLP transport of every signal",
		set: func(c *Config, v string) error {
			p, err := export.ParseProtocol(v)
			c.Export.TracesProtocol, c.Export.MetricsProtocol, c.Export.LogsProtocol = p, p, p
			return err
		}},
	{env: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", accepts: acceptsProtocol, help: "OTLP transport of traces alone",
		set: func(c *Config, v string) (err error) {
			c.Export.TracesProtocol, err = export.ParseProtocol(v)
			return err
		}},
	{env: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", accepts: acceptsProtocol, help: "OTLP transport of metrics alone",
		set: func(c *Config, v string) (err error) {
			c.Export.MetricsProtocol, err = export.ParseProtocol(v)
			return err
		}},
	{env: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", accepts: acceptsProtocol, help: "OTLP transport of logs alone",
		set: func(c *Config, v string) (err error) {
			c.Export.LogsProtocol, err = export.ParseProtocol(v)
			return err
		}},
	{env: "OTEL_EXPORTER_OTLP_HEADERS", accepts: "`key=value,…`", help: "headers of every export request, read by the OTLP exporters (and their per-signal forms)"},
	{env: "OTEL_EXPORTER_OTLP_TIMEOUT", shown: "10000", accepts: acceptsMillis, help: "one export attempt's timeout, read by the OTLP exporters"},
	{env: "OTEL_EXPORTER_OTLP_COMPRESSION", accepts: "`gzip` or `none`", help: "read by the OTLP exporters"},
	{env: "OTEL_EXPORTER_OTLP_INSECURE", accepts: acceptsBool, help: "gRPC without TLS, read by the OTLP exporters"},
	{env: "OTEL_EXPORTER_OTLP_CERTIFICATE", accepts: "a file", help: "CA of the collector's certificate, read by the OTLP exporters (also `_CLIENT_KEY`, `_CLIENT_CERTIFICATE`)"},
	{env: "OTEL_TRACES_EXPORTER", flag: "traces-exporter", def: "otlp", accepts: acceptsExporter, help: "`none` turns traces off",
		set: func(c *Config, v string) error { return setDisabled(&c.Export.DisableTraces, v) }},
	{env: "OTEL_METRICS_EXPORTER", flag: "metrics-exporter", def: "otlp", accepts: acceptsExporter, help: "`none` turns metrics off",
		set: func(c *Config, v string) error { return setDisabled(&c.Export.DisableMetrics, v) }},
	{env: "OTEL_LOGS_EXPORTER", flag: "logs-exporter", def: "otlp", accepts: acceptsExporter, help: "`none` turns logs off",
		set: func(c *Config, v string) error { return setDisabled(&c.Export.DisableLogs, v) }},
	{env: "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", flag: "otlp-metrics-temporality", def: string(export.TemporalityCumulative),
		accepts: "`cumulative`, `delta` or `lowmemory`", help: "metric temporality, for backends that need delta",
		set: func(c *Config, v string) (err error) {
			c.Export.Temporality, err = export.ParseTemporality(v)
			return err
		}},
	{env: "OTEL_METRIC_EXPORT_INTERVAL", flag: "metric-export-interval", def: millis(export.DefaultMetricInterval),
		accepts: acceptsMillis + " (the flag also takes a duration such as `30s`)", help: "how often metrics are exported",
		set: func(c *Config, v string) (err error) { c.Export.MetricInterval, err = parseMillis(v); return err },
		setFlag: func(c *Config, v string) (err error) {
			c.Export.MetricInterval, err = parseMillisOrDuration(v)
			return err
		}},
	{env: "OTEL_METRIC_EXPORT_TIMEOUT", def: millis(export.DefaultMetricTimeout), accepts: acceptsMillis,
		help: "bound of one round of metric exports, all processes together",
		set:  func(c *Config, v string) (err error) { c.Export.MetricTimeout, err = parseMillis(v); return err }},
	{env: "OTEL_BSP_SCHEDULE_DELAY", def: millis(export.DefaultSpanQueue.Delay), accepts: acceptsMillis,
		help: "longest a span waits in the export queue",
		set:  func(c *Config, v string) (err error) { c.Export.SpanQueue.Delay, err = parseMillis(v); return err }},
	{env: "OTEL_BSP_EXPORT_TIMEOUT", def: millis(export.DefaultSpanQueue.Timeout), accepts: acceptsMillis,
		help: "bound of one span export request",
		set:  func(c *Config, v string) (err error) { c.Export.SpanQueue.Timeout, err = parseMillis(v); return err }},
	{env: "OTEL_BSP_MAX_QUEUE_SIZE", def: strconv.Itoa(export.DefaultSpanQueue.Size), accepts: acceptsCount,
		help: "spans waiting for export at most; more are dropped and counted (`llm_observer_export_dropped_total`)",
		set:  func(c *Config, v string) (err error) { c.Export.SpanQueue.Size, err = parsePositive(v); return err }},
	{env: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", def: strconv.Itoa(export.DefaultSpanQueue.Batch), accepts: acceptsCount,
		help: "spans per export request at most",
		set:  func(c *Config, v string) (err error) { c.Export.SpanQueue.Batch, err = parsePositive(v); return err }},
	{env: "OTEL_BLRP_SCHEDULE_DELAY", def: millis(export.DefaultLogQueue.Delay), accepts: acceptsMillis,
		help: "longest a log record waits in the export queue",
		set:  func(c *Config, v string) (err error) { c.Export.LogQueue.Delay, err = parseMillis(v); return err }},
	{env: "OTEL_BLRP_EXPORT_TIMEOUT", def: millis(export.DefaultLogQueue.Timeout), accepts: acceptsMillis,
		help: "bound of one log export request",
		set:  func(c *Config, v string) (err error) { c.Export.LogQueue.Timeout, err = parseMillis(v); return err }},
	{env: "OTEL_BLRP_MAX_QUEUE_SIZE", def: strconv.Itoa(export.DefaultLogQueue.Size), accepts: acceptsCount,
		help: "log records waiting for export at most; more are dropped and counted",
		set:  func(c *Config, v string) (err error) { c.Export.LogQueue.Size, err = parsePositive(v); return err }},
	{env: "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", def: strconv.Itoa(export.DefaultLogQueue.Batch), accepts: acceptsCount,
		help: "log records per export request at most",
		set:  func(c *Config, v string) (err error) { c.Export.LogQueue.Batch, err = parsePositive(v); return err }},
	{env: "OTEL_RESOURCE_ATTRIBUTES", flag: "resource-attributes", accepts: "`key=value,…`, percent-encoded",
		help: "added to every resource; `host.name` sets the host, `service.name` names the observer",
		set:  func(c *Config, v string) error { return c.Export.AddResourceAttributes(v) }},
	{env: "OTEL_SERVICE_NAME", shown: export.DefaultSelfServiceName, accepts: "any name", help: "the observer's own service name",
		set: func(c *Config, v string) error { c.Export.SelfServiceName = v; return nil }},
	{env: "OTEL_SEMCONV_STABILITY_OPT_IN", flag: "semconv-stability-opt-in", accepts: "a comma list; `" + optInLatestGenAI + "` is read",
		help: "`" + optInLatestGenAI + "`: only the newest GenAI names",
		set: func(c *Config, v string) error {
			c.Export.LatestGenAIConventions = false
			for _, o := range splitList(v) {
				if o == optInLatestGenAI {
					c.Export.LatestGenAIConventions = true
				}
			}
			return nil
		}},
	{env: "LLM_OBSERVER_EMIT_GEN_AI_SYSTEM", flag: "emit-gen-ai-system", def: "false", accepts: acceptsBool, boolFlag: true,
		help: "also emit the deprecated `gen_ai.system`",
		set:  func(c *Config, v string) (err error) { c.Export.EmitGenAISystem, err = parseBool(v); return err }},
	{env: "LLM_OBSERVER_CONSOLE", flag: "console", def: "false", accepts: acceptsBool, boolFlag: true,
		help: "print one line per call even when exporting OTLP",
		set:  func(c *Config, v string) (err error) { c.Export.Console, err = parseBool(v); return err }},
	{env: "LLM_OBSERVER_CAPTURE_CONTENT", flag: "capture-content", def: export.CaptureNone.String(),
		accepts: "`none`, `input`, `output` or `all`", help: "record message content",
		set: func(c *Config, v string) error { return c.Export.CaptureContent.Set(v) }},
	{env: "LLM_OBSERVER_CONTENT_DESTINATION", flag: "content-destination", def: export.DestinationSpan.String(),
		accepts: "`span`, `log` or `both`", help: "where content goes: span attributes or `gen_ai.client.inference.operation.details` log records",
		set: func(c *Config, v string) error { return c.Export.ContentDestination.Set(v) }},
	{env: "LLM_OBSERVER_CONTENT_MAX_BYTES", flag: "content-max-bytes", def: strconv.Itoa(export.DefaultContentMaxBytes),
		accepts: fmt.Sprintf("bytes, at least %d", export.MinContentMaxBytes), help: "cap per content attribute; the JSON stays valid",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < export.MinContentMaxBytes {
				return fmt.Errorf("%q is too small or not a number", v)
			}
			c.Export.ContentMaxBytes = n
			return nil
		}},
	{env: "LLM_OBSERVER_REDACT", flag: "redact", accepts: "an RE2 expression (one; join several with a vertical bar, or repeat the flag)",
		help: "extra pattern replaced by `[REDACTED]` in content and error messages",
		set: func(c *Config, v string) error {
			if _, err := regexp.Compile(v); err != nil {
				return err
			}
			c.Export.Redact = append(c.Export.Redact, v)
			return nil
		}},
	{env: "LLM_OBSERVER_USER_ID_SALT", flag: "user-id-salt", shown: "random per start", accepts: "any text",
		help: "salt of the SHA-256 of end-user ids; set it to keep hashes stable across restarts",
		set:  func(c *Config, v string) error { c.UserIDSalt = v; return nil }},
	{env: "LLM_OBSERVER_PROVIDERS", flag: "providers", accepts: "`host[:port]=name` or `:port=name`, comma-separated",
		help: "provider overrides, e.g. `llm.internal:8000=vllm,:11434=ollama`",
		set:  func(c *Config, v string) (err error) { c.Providers, err = parseProviders(v); return err }},
	{env: "LLM_OBSERVER_PATHS", flag: "paths", def: strings.Join(capture.DefaultPaths, ", "),
		accepts: "path prefixes starting with `/`, comma-separated (at most 32, 48 bytes each)",
		help:    "request-path prefixes that mark a connection as LLM traffic",
		set: func(c *Config, v string) error {
			paths := splitList(v)
			for _, p := range paths {
				if !strings.HasPrefix(p, "/") {
					return fmt.Errorf("%q does not start with /", p)
				}
			}
			c.Capture.Paths = paths
			return nil
		}},
	{env: "LLM_OBSERVER_MCP_PATHS", flag: "mcp-paths", def: strings.Join(genai.DefaultMCPPaths, ", "), keepEmpty: true,
		accepts: "path prefixes starting with `/`, comma-separated, or empty for none (at most 32 with the LLM paths)",
		help:    "request-path prefixes of MCP (Model Context Protocol) traffic over HTTP, followed like the LLM paths and read as JSON-RPC",
		set: func(c *Config, v string) error {
			paths := splitList(v)
			for _, p := range paths {
				if !strings.HasPrefix(p, "/") {
					return fmt.Errorf("%q does not start with /", p)
				}
			}
			c.MCPPaths = append([]string{}, paths...) // empty, not nil: none
			return nil
		}},
	{env: "LLM_OBSERVER_PORTS", flag: "ports", accepts: "TCP ports 1–65535, comma-separated",
		help: "ports whose every connection is followed, whatever the path",
		set: func(c *Config, v string) error {
			c.Capture.Ports = nil
			for _, p := range splitList(v) {
				n, err := strconv.ParseUint(p, 10, 16)
				if err != nil || n == 0 {
					return fmt.Errorf("port %q is not a number from 1 to 65535", p)
				}
				c.Capture.Ports = append(c.Capture.Ports, uint16(n))
			}
			return nil
		}},
	{env: "LLM_OBSERVER_MAX_BODY_BYTES", flag: "max-body-bytes", def: strconv.Itoa(decode.DefaultMaxBodyBytes), accepts: "bytes, more than 0",
		help: "largest body kept per exchange; larger ones are skipped through and marked truncated",
		set:  func(c *Config, v string) (err error) { c.Limits.MaxBodyBytes, err = parsePositive(v); return err }},
	{env: "LLM_OBSERVER_MAX_HEADER_BYTES", flag: "max-header-bytes", def: strconv.Itoa(decode.DefaultMaxHeaderBytes), accepts: "bytes, more than 0",
		help: "largest HTTP head kept",
		set:  func(c *Config, v string) (err error) { c.Limits.MaxHeaderBytes, err = parsePositive(v); return err }},
	{env: "LLM_OBSERVER_RING_BYTES", flag: "ring-bytes", def: strconv.Itoa(capture.DefaultRingBytes),
		accepts: fmt.Sprintf("a power of two of bytes, at least %d", os.Getpagesize()), help: "kernel ring buffer size",
		set: func(c *Config, v string) error {
			n, err := parsePositive(v)
			if err != nil || n < os.Getpagesize() || n&(n-1) != 0 {
				return fmt.Errorf("%q is not a power of two of at least a page", v)
			}
			c.Capture.RingBytes = n
			return nil
		}},
	{env: "LLM_OBSERVER_PROC_ROOT", flag: "proc-root", def: "/proc", accepts: "a directory", help: "the host's `/proc`",
		set: func(c *Config, v string) error { c.ProcRoot = v; return nil }},
	{env: "LLM_OBSERVER_HEALTH_ADDR", flag: "health-addr", def: "127.0.0.1:9464", accepts: "`host:port`, or empty", keepEmpty: true,
		help: "serves `/healthz`, `/readyz` and `/metrics`; empty turns them off",
		set: func(c *Config, v string) error {
			if v != "" {
				if _, _, err := net.SplitHostPort(v); err != nil {
					return fmt.Errorf("%q is not host:port", v)
				}
			}
			c.HealthAddr = v
			return nil
		}},
	{env: "LLM_OBSERVER_FEED", flag: "feed", def: feed.DefaultSocket, keepEmpty: true,
		accepts: "an absolute path (a Unix socket), a loopback `host:port`, or empty",
		help:    "the live feed of calls and health that `llm-observer top` reads: a Unix socket only root (the observer's user) may use, or a loopback port any local user may read; empty turns it off",
		set: func(c *Config, v string) error {
			if v != "" && !feed.IsUnix(v) {
				host, _, err := net.SplitHostPort(v)
				if err != nil {
					return fmt.Errorf("%q is neither an absolute path nor host:port", v)
				}
				if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
					return fmt.Errorf("%q is not a loopback address: the feed shows every call on the host", v)
				}
			}
			c.Feed = v
			return nil
		}},
	{env: "LLM_OBSERVER_PAIR_WAIT", flag: "pair-wait", def: export.DefaultPairWait.String(), accepts: acceptsDuration + "; negative: off",
		help: "how long a server-side call waits for its client-side twin",
		set:  func(c *Config, v string) (err error) { c.Export.PairWait, err = parseDuration(v); return err }},
	{env: "LLM_OBSERVER_PROCESS_IDLE_TIMEOUT", flag: "process-idle-timeout", def: export.DefaultProcessIdleTimeout.String(), accepts: acceptsDuration,
		help: "a silent process's telemetry providers are flushed and dropped after this",
		set: func(c *Config, v string) (err error) {
			c.Export.ProcessIdleTimeout, err = parsePositiveDuration(v)
			return err
		}},
	{env: "LLM_OBSERVER_MAX_PROCESSES", flag: "max-processes", def: strconv.Itoa(export.DefaultMaxProcesses), accepts: acceptsCount,
		help: "processes with telemetry providers at once",
		set:  func(c *Config, v string) (err error) { c.Export.MaxProcesses, err = parsePositive(v); return err }},
	{env: "LLM_OBSERVER_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: DefaultShutdownTimeout.String(), accepts: acceptsDuration,
		help: "longest time from SIGTERM to exit; what could not be flushed by then is counted and logged",
		set:  func(c *Config, v string) (err error) { c.ShutdownTimeout, err = parsePositiveDuration(v); return err }},
	{env: "LLM_OBSERVER_TLS", flag: "tls", def: "true", accepts: acceptsBool, boolFlag: true,
		help: "probe TLS libraries (OpenSSL) to see HTTPS calls",
		set:  func(c *Config, v string) (err error) { c.TLS, err = parseBool(v); return err }},
	{env: "LLM_OBSERVER_TLS_EXECUTABLES", flag: "tls-executables", accepts: "executable names, comma-separated",
		help: "follow TLS only in these executables (empty: every process)",
		set:  func(c *Config, v string) error { c.TLSExecutables = splitList(v); return nil }},
	{env: "LLM_OBSERVER_TLS_PIDS", flag: "tls-pids", accepts: "pids, comma-separated", help: "follow TLS only in these processes",
		set: func(c *Config, v string) error {
			c.TLSPIDs = nil
			for _, p := range splitList(v) {
				n, err := strconv.Atoi(p)
				if err != nil || n <= 0 {
					return fmt.Errorf("%q is not a pid", p)
				}
				c.TLSPIDs = append(c.TLSPIDs, n)
			}
			return nil
		}},
	{env: "LLM_OBSERVER_TLS_CGROUPS", flag: "tls-cgroups", accepts: "substrings of `/proc/PID/cgroup`, comma-separated",
		help: "follow TLS only in these cgroups (a pod UID, a container id)",
		set:  func(c *Config, v string) error { c.TLSCgroups = splitList(v); return nil }},
	{env: "LLM_OBSERVER_PPROF_ADDR", flag: "pprof-addr", accepts: "a loopback `host:port`",
		help: "serves net/http/pprof, for profiling under load; off when unset",
		set: func(c *Config, v string) error {
			host, _, err := net.SplitHostPort(v)
			if err != nil {
				return fmt.Errorf("%q is not host:port", v)
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return fmt.Errorf("%q is not a loopback address: profiles show memory that holds captured traffic", v)
			}
			c.PprofAddr = v
			return nil
		}},
	{env: "K8S_NODE_NAME", flag: "node-name", accepts: "a node name", help: "in a cluster: the node whose pods are looked up",
		set: func(c *Config, v string) error { c.NodeName = v; return nil }},
}

// setEndpointVariable turns OTLP on for an endpoint variable; the OTLP
// exporters read the variables themselves, per signal.
func setEndpointVariable(c *Config, _ string) error {
	c.Export.OTLP = true
	return nil
}

// setEndpoint sets the one endpoint of every signal, as the flag does.
func setEndpoint(c *Config, v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%q is not a URL like http://collector:4317", v)
	}
	c.Export.Endpoint = v
	c.Export.OTLP = true
	return nil
}

func setDisabled(dst *bool, v string) error {
	switch strings.ToLower(v) {
	case "otlp":
		*dst = false
	case "none":
		*dst = true
	default:
		return fmt.Errorf("exporter %q is not supported (LLM_OBSERVER_CONSOLE=true prints calls)", v)
	}
	return nil
}

func parseMillisOrDuration(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d, nil
	}
	return parseMillis(v)
}

func parsePositiveDuration(v string) (time.Duration, error) {
	d, err := parseDuration(v)
	if err == nil && d <= 0 {
		err = fmt.Errorf("%q is not more than 0", v)
	}
	return d, err
}

func parseProviders(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("override %q is not host[:port]=name or :port=name", kv)
		}
		m[strings.ToLower(k)] = v
	}
	return m, nil
}
