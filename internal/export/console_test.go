package export

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

func TestConsoleLine(t *testing.T) {
	ollamaChat := &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOllama, RequestModel: "llama3.2",
		Endpoint: genai.Endpoint{ClientSide: true},
		Usage:    genai.Usage{InputTokens: i64(12), OutputTokens: i64(40)},
		Start:    t0, End: at(1210), ContentChunks: chunksAt(52, 900),
	}
	clock := t0.Local().Format("15:04:05.000")
	tests := []struct {
		name string
		p    *Process
		call *genai.Call
		want string
	}{
		{"streamed chat", curl, ollamaChat, clock + " curl[4242] ollama chat llama3.2 in=12 out=40 ttfc=52ms dur=1.21s ok\n"},
		{"embeddings, input only", curl, embeddingsCall(), clock + " curl[4242] ollama embeddings nomic-embed-text in=8 dur=35ms ok\n"},
		{"error", curl, errorCall(), clock + " curl[4242] anthropic chat claude-sonnet-4 dur=240ms error=rate_limit_error\n"},
		{"server side", ollama, ollamaServerCall(), clock + " ollama[812] (server) ollama chat llama3.2 in=20 out=31 ttfc=160ms dur=1.00s ok\n"},
		{"sub-millisecond, no model, truncated, no process", nil,
			&genai.Call{Operation: genai.OpChat, Provider: genai.ProviderVLLM, Endpoint: genai.Endpoint{ClientSide: true},
				Start: t0, End: t0.Add(400 * time.Microsecond), Truncated: true},
			clock + " unknown_service[0] vllm chat - dur=0.4ms ok truncated\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendConsoleLine(nil, tt.p, tt.call)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestConsoleWithoutEndpoint(t *testing.T) {
	var out bytes.Buffer
	e, err := New(context.Background(), Config{ConsoleWriter: &out})
	if err != nil {
		t.Fatal(err)
	}
	end(e, curl, embeddingsCall())
	end(e, ollama, ollamaServerCall())
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "curl[4242] ollama embeddings") || !strings.Contains(lines[1], "(server)") {
		t.Errorf("console output:\n%s", out.String())
	}
	if e.procs.len() != 0 {
		t.Error("console mode built providers")
	}
}

func TestConsoleBesideOTLP(t *testing.T) {
	var out bytes.Buffer
	e, rcv := newTestExporter(t, otlptest.GRPC, func(c *Config) {
		c.Console = true
		c.ConsoleWriter = &out
	})
	end(e, curl, embeddingsCall())
	shutdown(t, e)
	if len(rcv.WaitSpans(t, 1, waitLong)) != 1 || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("want one span and one console line, got console %q", out.String())
	}

	var quiet bytes.Buffer
	e2, _ := newTestExporter(t, otlptest.GRPC, func(c *Config) { c.ConsoleWriter = &quiet })
	end(e2, curl, embeddingsCall())
	shutdown(t, e2)
	if quiet.Len() != 0 {
		t.Errorf("console printed while OTLP is on and the console was not asked for: %q", quiet.String())
	}
}
