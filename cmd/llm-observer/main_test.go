package main

import (
	"flag"
	"reflect"
	"testing"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/observer"
)

func TestParseProviders(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{in: "", want: map[string]string{}},
		{in: "LLM.internal:8000=vllm, :11434=ollama", want: map[string]string{"llm.internal:8000": "vllm", ":11434": "ollama"}},
		{in: "host", wantErr: true},
		{in: "=vllm", wantErr: true},
		{in: "host=", wantErr: true},
	} {
		got, err := parseProviders(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("parseProviders(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestSettingsFromEnvAndFlags(t *testing.T) {
	t.Setenv("LLM_OBSERVER_PATHS", "/api/chat, /v1/messages")
	t.Setenv("LLM_OBSERVER_PORTS", "11434,8000")
	t.Setenv("LLM_OBSERVER_RING_BYTES", "4194304")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var s settings
	if err := s.register(fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"-ports", "9000"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.captureConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := capture.Config{Paths: []string{"/api/chat", "/v1/messages"}, Ports: []uint16{9000}, RingBytes: 4 << 20}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config %+v, want %+v (the flag must win over the environment)", cfg, want)
	}

	t.Setenv("LLM_OBSERVER_RING_BYTES", "lots")
	if err := new(settings).register(flag.NewFlagSet("bad", flag.ContinueOnError)); err == nil {
		t.Error("a non-numeric LLM_OBSERVER_RING_BYTES was accepted")
	}
	for _, ports := range []string{"0", "70000", "http"} {
		s := settings{ports: ports}
		if _, err := s.captureConfig(); err == nil {
			t.Errorf("port list %q accepted", ports)
		}
	}
}

func TestPromName(t *testing.T) {
	for _, tc := range []struct {
		s    observer.SelfSample
		want string
	}{
		{observer.SelfSample{Name: "llm_observer.dropped.records"}, "dropped_records_total"},
		{observer.SelfSample{Name: "llm_observer.connections.active", Gauge: true}, "connections_active"},
	} {
		if got := promName(tc.s); got != tc.want {
			t.Errorf("promName(%q) = %q, want %q", tc.s.Name, got, tc.want)
		}
	}
}
