package export

import (
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Console || cfg.OTLP || cfg.ContentMaxBytes != DefaultContentMaxBytes || cfg.SelfServiceName != "llm-observer" ||
		cfg.PairWait != DefaultPairWait || cfg.MetricInterval != time.Minute || cfg.Temporality != TemporalityCumulative ||
		cfg.SpanQueue != DefaultSpanQueue || cfg.LogQueue != DefaultLogQueue || cfg.ErrorWriter == nil {
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
