package export

import (
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{{
		name: "nothing set: console only",
		env:  map[string]string{},
		want: Config{TracesProtocol: ProtocolGRPC, MetricsProtocol: ProtocolGRPC, LogsProtocol: ProtocolGRPC},
	}, {
		name: "endpoint and protocols",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":         "http://collector:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL":         "http/protobuf",
			"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
		},
		want: Config{OTLP: true, TracesProtocol: ProtocolHTTPProtobuf, MetricsProtocol: ProtocolGRPC, LogsProtocol: ProtocolHTTPProtobuf},
	}, {
		name: "a per-signal endpoint is enough",
		env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4317", "OTEL_LOGS_EXPORTER": "none"},
		want: Config{OTLP: true, TracesProtocol: ProtocolGRPC, MetricsProtocol: ProtocolGRPC, LogsProtocol: ProtocolGRPC, DisableLogs: true},
	}, {
		name: "everything else",
		env: map[string]string{
			"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
			"OTEL_METRIC_EXPORT_INTERVAL":                       "15000",
			"OTEL_METRIC_EXPORT_TIMEOUT":                        "5000",
			"OTEL_RESOURCE_ATTRIBUTES":                          "deployment.environment.name=prod,host.name=node-7,service.name=ignored-by-service-name,team=a%2Cb",
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
		},
		want: Config{
			TracesProtocol: ProtocolGRPC, MetricsProtocol: ProtocolGRPC, LogsProtocol: ProtocolGRPC,
			DisableMetrics: true,
			Temporality:    TemporalityDelta, MetricInterval: 15 * time.Second, MetricTimeout: 5 * time.Second,
			ResourceAttributes: []attribute.KeyValue{attribute.String("deployment.environment.name", "prod"), attribute.String("team", "a,b")},
			SelfServiceName:    "observer-7", HostName: "node-7",
			LatestGenAIConventions: true, EmitGenAISystem: true, Console: true,
			CaptureContent: CaptureOutput, ContentDestination: DestinationBoth, ContentMaxBytes: 4096,
			Redact:   []string{`ticket-\d+`},
			PairWait: 500 * time.Millisecond, ProcessIdleTimeout: 10 * time.Minute, MaxProcesses: 64,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configFrom(lookupIn(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConfigFromEnvRejects(t *testing.T) {
	bad := map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL":                       "http/json",
		"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes",
		"OTEL_TRACES_EXPORTER":                              "zipkin",
		"OTEL_METRIC_EXPORT_INTERVAL":                       "1m",
		"OTEL_RESOURCE_ATTRIBUTES":                          "novalue",
		"LLM_OBSERVER_CONSOLE":                              "maybe",
		"LLM_OBSERVER_CAPTURE_CONTENT":                      "everything",
		"LLM_OBSERVER_CONTENT_DESTINATION":                  "disk",
		"LLM_OBSERVER_CONTENT_MAX_BYTES":                    "10",
		"LLM_OBSERVER_REDACT":                               "(",
		"LLM_OBSERVER_PAIR_WAIT":                            "2",
		"LLM_OBSERVER_MAX_PROCESSES":                        "-1",
	}
	_, err := configFrom(lookupIn(bad))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for name := range bad {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	cfg, err := configFrom(lookupIn(map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL":  "http/protobuf",
		"LLM_OBSERVER_CAPTURE_CONTENT": "input",
		"LLM_OBSERVER_REDACT":          "from-env",
		"LLM_OBSERVER_PAIR_WAIT":       "1s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	err = fs.Parse([]string{
		"-otlp-endpoint", "https://collector:4317", "-otlp-protocol", "grpc",
		"-capture-content", "all", "-content-destination", "log", "-redact", "a+", "-redact", "b+",
		"-metrics-exporter", "none", "-otlp-metrics-temporality", "lowmemory",
		"-resource-attributes", "region=eu", "-semconv-stability-opt-in", "gen_ai_latest_experimental",
		"-console", "-emit-gen-ai-system", "-content-max-bytes", "2048", "-process-idle-timeout", "1m", "-max-processes", "8",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Endpoint:       "https://collector:4317",
		TracesProtocol: ProtocolGRPC, MetricsProtocol: ProtocolGRPC, LogsProtocol: ProtocolGRPC,
		DisableMetrics: true, Temporality: TemporalityLowMemory,
		ResourceAttributes:     []attribute.KeyValue{attribute.String("region", "eu")},
		LatestGenAIConventions: true, EmitGenAISystem: true, Console: true,
		CaptureContent: CaptureAll, ContentDestination: DestinationLog, ContentMaxBytes: 2048,
		Redact:   []string{"from-env", "a+", "b+"},
		PairWait: time.Second, ProcessIdleTimeout: time.Minute, MaxProcesses: 8,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	if err := fs.Parse([]string{"-capture-content", "some"}); err == nil {
		t.Error("a bad flag value was accepted")
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Console || cfg.OTLP || cfg.ContentMaxBytes != defaultContentMaxBytes || cfg.SelfServiceName != "llm-observer" ||
		cfg.PairWait != defaultPairWait || cfg.MetricInterval != time.Minute || cfg.Temporality != TemporalityCumulative {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, _ = Config{Endpoint: "http://localhost:4317", PairWait: -1}.withDefaults()
	if !cfg.OTLP || cfg.Console || cfg.PairWait >= 0 {
		t.Errorf("an endpoint must switch OTLP on and the console off, a negative wait stay off: %+v", cfg)
	}
	for _, bad := range []Config{
		{Endpoint: "collector:4317"}, {TracesProtocol: "http/json"}, {CaptureContent: 9},
		{OTLP: true, DisableLogs: true, CaptureContent: CaptureInput, ContentDestination: DestinationBoth},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestSignalURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://c:4318":        "http://c:4318/v1/traces",
		"http://c:4318/":       "http://c:4318/v1/traces",
		"https://c/otlp":       "https://c/otlp/v1/traces",
		"https://c/otlp/?x=1y": "https://c/otlp/v1/traces?x=1y",
	} {
		if got := signalURL(in, "/v1/traces"); got != want {
			t.Errorf("signalURL(%q) = %q, want %q", in, got, want)
		}
	}
}
