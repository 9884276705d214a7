package config

import (
	"flag"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/decode"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/feed"
	"github.com/llm-observer/llm-observer/internal/genai"
)

var update = flag.Bool("update", false, "rewrite README.md's settings table from the settings list")

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func load(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, lookupIn(env))
}

// defaults is what Load gives with nothing set: every default applied once.
func defaults() Config {
	return Config{
		Export: export.Config{
			TracesProtocol: export.ProtocolGRPC, MetricsProtocol: export.ProtocolGRPC, LogsProtocol: export.ProtocolGRPC,
			Temporality:    export.TemporalityCumulative,
			MetricInterval: export.DefaultMetricInterval, MetricTimeout: export.DefaultMetricTimeout,
			ContentMaxBytes: export.DefaultContentMaxBytes, PairWait: export.DefaultPairWait,
			ProcessIdleTimeout: export.DefaultProcessIdleTimeout, MaxProcesses: export.DefaultMaxProcesses,
			SpanQueue: export.DefaultSpanQueue, LogQueue: export.DefaultLogQueue,
		},
		Capture:         capture.Config{Paths: capture.DefaultPaths, RingBytes: capture.DefaultRingBytes},
		MCPPaths:        genai.DefaultMCPPaths,
		Limits:          decode.Limits{MaxBodyBytes: decode.DefaultMaxBodyBytes, MaxHeaderBytes: decode.DefaultMaxHeaderBytes},
		ProcRoot:        "/proc",
		HealthAddr:      "127.0.0.1:9464",
		Feed:            feed.DefaultSocket,
		ShutdownTimeout: DefaultShutdownTimeout,
		TLS:             true,
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want func(*Config)
	}{{
		name: "nothing set: the defaults, console only",
		want: func(*Config) {},
	}, {
		name: "endpoint and protocols",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":         "http://collector:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL":         "http/protobuf",
			"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
		},
		want: func(c *Config) {
			c.Export.OTLP = true
			c.Export.TracesProtocol, c.Export.LogsProtocol = export.ProtocolHTTPProtobuf, export.ProtocolHTTPProtobuf
		},
	}, {
		name: "a per-signal endpoint is enough",
		env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4317", "OTEL_LOGS_EXPORTER": "none"},
		want: func(c *Config) { c.Export.OTLP, c.Export.DisableLogs = true, true },
	}, {
		name: "everything else from the environment",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
			"OTEL_METRIC_EXPORT_INTERVAL":                       "15000",
			"OTEL_METRIC_EXPORT_TIMEOUT":                        "5000",
			"OTEL_BSP_SCHEDULE_DELAY":                           "100",
			"OTEL_BSP_MAX_QUEUE_SIZE":                           "64",
			"OTEL_BLRP_EXPORT_TIMEOUT":                          "2000",
			"OTEL_RESOURCE_ATTRIBUTES":                          "deployment.environment.name=prod,host.name=node-7,team=a%2Cb",
			"OTEL_SERVICE_NAME":                                 "observer-7",
			"OTEL_SEMCONV_STABILITY_OPT_IN":                     "http, gen_ai_latest_experimental",
			"LLM_OBSERVER_CONSOLE":                              "true",
			"LLM_OBSERVER_CAPTURE_CONTENT":                      "output",
			"LLM_OBSERVER_CONTENT_DESTINATION":                  "both",
			"LLM_OBSERVER_CONTENT_MAX_BYTES":                    "4096",
			"LLM_OBSERVER_REDACT":                               `ticket-\d+`,
			"LLM_OBSERVER_EMIT_GEN_AI_SYSTEM":                   "1",
			"LLM_OBSERVER_PAIR_WAIT":                            "500ms",
			"LLM_OBSERVER_PROCESS_IDLE_TIMEOUT":                 "10m",
			"LLM_OBSERVER_MAX_PROCESSES":                        "64",
			"OTEL_TRACES_EXPORTER":                              "otlp",
			"OTEL_METRICS_EXPORTER":                             "none",
			"LLM_OBSERVER_PATHS":                                "/api/chat, /v1/messages",
			"LLM_OBSERVER_PORTS":                                "11434,8000",
			"LLM_OBSERVER_RING_BYTES":                           "16777216",
			"LLM_OBSERVER_MAX_BODY_BYTES":                       "2048",
			"LLM_OBSERVER_HEALTH_ADDR":                          "",
			"LLM_OBSERVER_FEED":                                 "127.0.0.1:7464",
			"LLM_OBSERVER_SHUTDOWN_TIMEOUT":                     "25s",
			"LLM_OBSERVER_PROVIDERS":                            "LLM.internal:8000=vllm, :11434=ollama",
			"LLM_OBSERVER_TLS":                                  "false",
			"LLM_OBSERVER_TLS_PIDS":                             "1, 42",
			"LLM_OBSERVER_PPROF_ADDR":                           "127.0.0.1:6060",
			"K8S_NODE_NAME":                                     "node-7",
		},
		want: func(c *Config) {
			e := &c.Export
			e.DisableMetrics = true
			e.Temporality, e.MetricInterval, e.MetricTimeout = export.TemporalityDelta, 15*time.Second, 5*time.Second
			e.SpanQueue.Delay, e.SpanQueue.Size, e.LogQueue.Timeout = 100*time.Millisecond, 64, 2*time.Second
			e.ResourceAttributes = []attribute.KeyValue{attribute.String("deployment.environment.name", "prod"), attribute.String("team", "a,b")}
			e.SelfServiceName, e.HostName = "observer-7", "node-7"
			e.LatestGenAIConventions, e.EmitGenAISystem, e.Console = true, true, true
			e.CaptureContent, e.ContentDestination, e.ContentMaxBytes = export.CaptureOutput, export.DestinationBoth, 4096
			e.Redact = []string{`ticket-\d+`}
			e.PairWait, e.ProcessIdleTimeout, e.MaxProcesses = 500*time.Millisecond, 10*time.Minute, 64
			c.Capture = capture.Config{Paths: []string{"/api/chat", "/v1/messages"}, Ports: []uint16{11434, 8000}, RingBytes: 16 << 20}
			c.Limits.MaxBodyBytes = 2048
			c.HealthAddr = "" // set empty: off
			c.Feed = "127.0.0.1:7464"
			c.ShutdownTimeout = 25 * time.Second
			c.Providers = map[string]string{"llm.internal:8000": "vllm", ":11434": "ollama"}
			c.TLS, c.TLSPIDs = false, []int{1, 42}
			c.PprofAddr, c.NodeName = "127.0.0.1:6060", "node-7"
		},
	}, {
		name: "flags win over the environment",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_PROTOCOL":  "http/protobuf",
			"LLM_OBSERVER_CAPTURE_CONTENT": "input",
			"LLM_OBSERVER_REDACT":          "from-env",
			"LLM_OBSERVER_PAIR_WAIT":       "1s",
			"LLM_OBSERVER_PORTS":           "11434",
			"LLM_OBSERVER_CONSOLE":         "true",
		},
		args: []string{
			"-otlp-endpoint", "https://collector:4317", "-otlp-protocol", "grpc",
			"-capture-content", "all", "-content-destination", "log", "-redact", "a+", "-redact", "b+",
			"-metrics-exporter", "none", "-otlp-metrics-temporality", "lowmemory", "-metric-export-interval", "30s",
			"-resource-attributes", "region=eu", "-semconv-stability-opt-in", "gen_ai_latest_experimental",
			"-console=false", "-emit-gen-ai-system", "-content-max-bytes", "2048", "-process-idle-timeout", "1m", "-max-processes", "8",
			"-ports", "9000", "-shutdown-timeout", "3s", "-tls=false", "-feed", "",
		},
		want: func(c *Config) {
			e := &c.Export
			e.Endpoint, e.OTLP = "https://collector:4317", true
			e.DisableMetrics, e.Temporality, e.MetricInterval = true, export.TemporalityLowMemory, 30*time.Second
			e.ResourceAttributes = []attribute.KeyValue{attribute.String("region", "eu")}
			e.LatestGenAIConventions, e.EmitGenAISystem = true, true
			e.CaptureContent, e.ContentDestination, e.ContentMaxBytes = export.CaptureAll, export.DestinationLog, 2048
			e.Redact = []string{"from-env", "a+", "b+"}
			e.PairWait, e.ProcessIdleTimeout, e.MaxProcesses = time.Second, time.Minute, 8
			c.Capture.Ports = []uint16{9000}
			c.ShutdownTimeout, c.TLS = 3*time.Second, false
			c.Feed = "" // set empty: off
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestInvalidValues: each bad value fails Load with a message that names
// the variable and says what it accepts.
func TestInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		env, value, accepts string
	}{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "grpc"},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift", "http/protobuf"},
		{"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes", "lowmemory"},
		{"OTEL_TRACES_EXPORTER", "zipkin", "none"},
		{"OTEL_METRIC_EXPORT_INTERVAL", "1m", "milliseconds"},
		{"OTEL_BSP_SCHEDULE_DELAY", "-5", "milliseconds"},
		{"OTEL_BSP_MAX_QUEUE_SIZE", "0", "whole number"},
		{"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "lots", "whole number"},
		{"OTEL_RESOURCE_ATTRIBUTES", "novalue", "key=value"},
		{"LLM_OBSERVER_CONSOLE", "maybe", "true"},
		{"LLM_OBSERVER_CAPTURE_CONTENT", "everything", "output"},
		{"LLM_OBSERVER_CONTENT_DESTINATION", "disk", "both"},
		{"LLM_OBSERVER_CONTENT_MAX_BYTES", "10", "at least 256"},
		{"LLM_OBSERVER_REDACT", "(", "RE2"},
		{"LLM_OBSERVER_PAIR_WAIT", "2", "duration"},
		{"LLM_OBSERVER_PROCESS_IDLE_TIMEOUT", "-1m", "duration"},
		{"LLM_OBSERVER_MAX_PROCESSES", "-1", "whole number"},
		{"LLM_OBSERVER_PATHS", "api/chat", "starting with `/`"},
		{"LLM_OBSERVER_PORTS", "70000", "1–65535"},
		{"LLM_OBSERVER_RING_BYTES", "lots", "power of two"},
		{"LLM_OBSERVER_RING_BYTES", "5000000", "power of two"},
		{"LLM_OBSERVER_MAX_BODY_BYTES", "1MB", "bytes"},
		{"LLM_OBSERVER_HEALTH_ADDR", "9464", "host:port"},
		{"LLM_OBSERVER_FEED", "run/feed.sock", "absolute path"},
		{"LLM_OBSERVER_FEED", "0.0.0.0:7464", "loopback"},
		{"LLM_OBSERVER_SHUTDOWN_TIMEOUT", "10", "duration"},
		{"LLM_OBSERVER_TLS", "yes please", "true"},
		{"LLM_OBSERVER_TLS_PIDS", "init", "pids"},
		{"LLM_OBSERVER_PROVIDERS", "vllm", "host[:port]=name"},
		{"LLM_OBSERVER_PPROF_ADDR", "0.0.0.0:6060", "loopback"},
	} {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			_, err := load(t, map[string]string{tc.env: tc.value})
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.env, tc.value)
			}
			for _, want := range []string{tc.env, tc.value, tc.accepts} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestInvalidFlag(t *testing.T) {
	_, err := load(t, nil, "-capture-content", "some")
	if err == nil || !strings.Contains(err.Error(), "-capture-content") || !strings.Contains(err.Error(), "`all`") {
		t.Errorf("bad flag value: %v", err)
	}
}

// TestSettingsTable: each setting has a unique variable and flag, says what
// it accepts and does, and is either read here or documented as read by the
// OTLP exporters.
func TestSettingsTable(t *testing.T) {
	envs, flags := map[string]bool{}, map[string]bool{}
	for _, s := range settings {
		if envs[s.env] || (s.flag != "" && flags[s.flag]) {
			t.Errorf("%s / -%s listed twice", s.env, s.flag)
		}
		envs[s.env], flags[s.flag] = true, true
		if s.accepts == "" || s.help == "" {
			t.Errorf("%s: say what it accepts and what it does", s.env)
		}
		if s.set == nil && (s.flag != "" || s.def != "") {
			t.Errorf("%s has a flag or default but nothing reads it", s.env)
		}
	}
}

// TestREADMESettings fails when README.md's settings table is not the one
// Markdown renders from the settings list; go test -run TestREADME -update
// rewrites it.
func TestREADMESettings(t *testing.T) {
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "| variable | flag |")
	if start < 0 {
		t.Fatal("README.md has no settings table (a line starting with \"| variable | flag |\")")
	}
	end := strings.Index(readme[start:], "\n\n")
	if end < 0 {
		t.Fatal("README.md's settings table does not end in a blank line")
	}
	end += start + 1
	want := Markdown()
	if readme[start:end] == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(readme[:start]+want+readme[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's settings table differs from the settings list; run go test ./internal/config -run TestREADME -update.\nwant:\n%s", want)
}
