package export

import (
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

func chatStreamCall() *genai.Call {
	return &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOpenAI, API: "openai.chat_completions",
		Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "api.openai.com", ServerPort: 443, ClientAddress: "10.0.0.5", ClientPort: 51000},
		Method:   "POST", Path: "/v1/chat/completions", Status: 200,
		RequestModel: "gpt-4o-mini", ResponseModel: "gpt-4o-mini-2024-07-18", ResponseID: "chatcmpl-123",
		ConversationID: "conv-9", Stream: true,
		MaxTokens: i64(256), Temperature: f64(0.2), TopP: f64(0.9), FrequencyPenalty: f64(0.5), PresencePenalty: f64(-0.5),
		Seed: i64(7), StopSequences: []string{"END"}, ChoiceCount: 2, OutputType: "text",
		ServiceTier: "auto", ResponseServiceTier: "default", SystemFingerprint: "fp_abc", Messages: 3,
		FinishReasons: []string{"stop", "length"},
		Usage:         genai.Usage{InputTokens: i64(12), OutputTokens: i64(40), CacheReadInputTokens: i64(4), ReasoningOutputTokens: i64(3)},
		EndUserHash:   "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		Start:         at(0), End: at(1210), ContentChunks: chunksAt(52, 80, 130, 1200), Chunks: 7,
		RequestID: "req_abc", RateLimit: map[string]string{"x-ratelimit-remaining-tokens": "9000"},
	}
}

func embeddingsCall() *genai.Call {
	return &genai.Call{
		Operation: genai.OpEmbeddings, Provider: genai.ProviderOllama, API: "ollama.embed",
		Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "127.0.0.1", ServerPort: 11434, ClientAddress: "127.0.0.1", ClientPort: 40001},
		Method:   "POST", Path: "/api/embed", Status: 200,
		RequestModel: "nomic-embed-text", ResponseModel: "nomic-embed-text",
		Usage: genai.Usage{InputTokens: i64(8)},
		Start: at(0), End: at(35),
	}
}

func errorCall() *genai.Call {
	return &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderAnthropic, API: "anthropic.messages",
		Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "api.anthropic.com", ServerPort: 443, ClientAddress: "10.0.0.5", ClientPort: 51002},
		Method:   "POST", Path: "/v1/messages", Status: 429,
		RequestModel: "claude-sonnet-4", MaxTokens: i64(1024),
		ErrorType:    "rate_limit_error",
		ErrorMessage: "rate limit exceeded for key sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		RateLimit:    map[string]string{"retry-after": "20"},
		Start:        at(0), End: at(240),
	}
}

func ollamaServerCall() *genai.Call {
	return &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOllama, API: "ollama.chat",
		Endpoint: genai.Endpoint{ClientSide: false, ServerAddress: "127.0.0.1", ServerPort: 11434, ClientAddress: "192.168.1.20", ClientPort: 40002},
		Method:   "POST", Path: "/api/chat", Status: 200,
		RequestModel: "llama3.2", ResponseModel: "llama3.2", Stream: true, FinishReasons: []string{"stop"},
		Usage:        genai.Usage{InputTokens: i64(20), OutputTokens: i64(31)},
		ServerTiming: genai.ServerTiming{Source: "ollama", TimeToFirstToken: 150 * time.Millisecond, TimePerOutputToken: 20 * time.Millisecond, Total: 900 * time.Millisecond},
		Start:        at(0), End: at(1000), ContentChunks: chunksAt(160, 180, 200, 990), Chunks: 32,
	}
}

func anthropicCacheCall() *genai.Call {
	return &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderAnthropic, API: "anthropic.messages",
		Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "api.anthropic.com", ServerPort: 443, ClientAddress: "10.0.0.5", ClientPort: 51003},
		Method:   "POST", Status: 200,
		RequestModel: "claude-sonnet-4", ResponseModel: "claude-sonnet-4-20250514", ResponseID: "msg_01",
		FinishReasons: []string{"end_turn"},
		Usage:         genai.Usage{InputTokens: i64(1210), OutputTokens: i64(50), CacheReadInputTokens: i64(1000), CacheCreationInputTokens: i64(200)},
		Start:         at(0), End: at(800),
	}
}

const (
	appTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	appSpanID  = "00f067aa0ba902b7"
)

func tracedCall() *genai.Call {
	c := embeddingsCall()
	c.Operation, c.RequestModel, c.ResponseModel = genai.OpTextCompletion, "", ""
	c.TraceParent = "00-" + appTraceID + "-" + appSpanID + "-01"
	c.TraceState = "vendor=x"
	return c
}

func TestSpans(t *testing.T) {
	tests := []struct {
		name       string
		process    *Process
		call       *genai.Call
		wantName   string
		wantKind   tracepb.Span_SpanKind
		wantAttrs  map[string]any
		wantAbsent []string
		wantError  string // status message; empty: status unset
		check      func(t *testing.T, s otlptest.Span)
	}{{
		name: "chat streaming with usage", process: curl, call: chatStreamCall(),
		wantName: "chat gpt-4o-mini", wantKind: tracepb.Span_SPAN_KIND_CLIENT,
		wantAttrs: map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
			"gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
			"gen_ai.response.id": "chatcmpl-123", "gen_ai.response.finish_reasons": []string{"stop", "length"},
			"gen_ai.request.max_tokens": 256, "gen_ai.request.temperature": 0.2, "gen_ai.request.top_p": 0.9,
			"gen_ai.request.frequency_penalty": 0.5, "gen_ai.request.presence_penalty": -0.5,
			"gen_ai.request.seed": 7, "gen_ai.request.stop_sequences": []string{"END"},
			"gen_ai.request.choice.count": 2, "gen_ai.request.stream": true, "gen_ai.output.type": "text",
			"gen_ai.response.time_to_first_chunk": secs(52),
			"gen_ai.usage.input_tokens":           12, "gen_ai.usage.output_tokens": 40,
			"gen_ai.usage.cache_read.input_tokens": 4, "gen_ai.usage.reasoning.output_tokens": 3,
			"gen_ai.conversation.id": "conv-9", "server.address": "api.openai.com", "server.port": 443,
			"http.request.method": "POST", "http.response.status_code": 200,
			"openai.api.type": "chat_completions", "openai.request.service_tier": "auto",
			"openai.response.service_tier": "default", "openai.response.system_fingerprint": "fp_abc",
			"user.hash":        "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
			"llm_observer.api": "openai.chat_completions", "llm_observer.request_id": "req_abc",
			"http.response.header.x-ratelimit-remaining-tokens": []string{"9000"},
		},
		wantAbsent: []string{"error.type", "gen_ai.system", "client.address", "llm_observer.truncated",
			"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"},
	}, {
		name: "embeddings", process: curl, call: embeddingsCall(),
		wantName: "embeddings nomic-embed-text", wantKind: tracepb.Span_SPAN_KIND_CLIENT,
		wantAttrs: map[string]any{
			"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "ollama",
			"gen_ai.usage.input_tokens": 8, "server.address": "127.0.0.1", "server.port": 11434,
			"llm_observer.api": "ollama.embed",
		},
		wantAbsent: []string{"gen_ai.usage.output_tokens", "gen_ai.request.stream", "gen_ai.response.time_to_first_chunk",
			"gen_ai.request.choice.count", "openai.api.type"},
	}, {
		name: "error", process: curl, call: errorCall(),
		wantName: "chat claude-sonnet-4", wantKind: tracepb.Span_SPAN_KIND_CLIENT,
		wantAttrs: map[string]any{
			"error.type": "rate_limit_error", "http.response.status_code": 429, "gen_ai.provider.name": "anthropic",
			"http.response.header.retry-after": []string{"20"},
		},
		wantAbsent: []string{"gen_ai.usage.input_tokens", "gen_ai.response.model"},
		wantError:  "rate limit exceeded for key [REDACTED]",
	}, {
		name: "server side with Ollama timings", process: ollama, call: ollamaServerCall(),
		wantName: "chat llama3.2", wantKind: tracepb.Span_SPAN_KIND_SERVER,
		wantAttrs: map[string]any{
			"gen_ai.provider.name": "ollama", "server.address": "127.0.0.1", "server.port": 11434,
			"client.address": "192.168.1.20", "client.port": 40002,
			"llm_observer.server_timing.source":                "ollama",
			"llm_observer.server_timing.time_to_first_token":   0.15,
			"llm_observer.server_timing.time_per_output_token": 0.02,
			"llm_observer.server_timing.duration":              0.9,
			"gen_ai.response.time_to_first_chunk":              secs(160),
		},
	}, {
		name: "anthropic cache tokens", process: curl, call: anthropicCacheCall(),
		wantName: "chat claude-sonnet-4", wantKind: tracepb.Span_SPAN_KIND_CLIENT,
		wantAttrs: map[string]any{
			"gen_ai.usage.input_tokens": 1210, "gen_ai.usage.output_tokens": 50,
			"gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cache_creation.input_tokens": 200,
			"gen_ai.response.finish_reasons": []string{"end_turn"},
		},
		wantAbsent: []string{"openai.api.type", "openai.response.system_fingerprint"},
	}, {
		name: "traceparent present", process: curl, call: tracedCall(),
		wantName: "text_completion", wantKind: tracepb.Span_SPAN_KIND_CLIENT,
		wantAbsent: []string{"gen_ai.request.model"},
		check: func(t *testing.T, s otlptest.Span) {
			if s.TraceID.String() != appTraceID || s.ParentSpanID.String() != appSpanID {
				t.Errorf("span is in trace %s under %s, want trace %s under %s", s.TraceID, s.ParentSpanID, appTraceID, appSpanID)
			}
			if s.TraceState != "vendor=x" {
				t.Errorf("tracestate = %q, want vendor=x", s.TraceState)
			}
		},
	}}

	for _, proto := range protocols {
		for _, tt := range tests {
			t.Run(string(proto)+"/"+tt.name, func(t *testing.T) {
				e, rcv := newTestExporter(t, proto, nil)
				end(e, tt.process, tt.call)
				shutdown(t, e)

				spans := rcv.WaitSpans(t, 1, waitLong)
				if len(spans) != 1 {
					t.Fatalf("got %d spans, want 1", len(spans))
				}
				s := spans[0]
				if s.Protocol != proto {
					t.Errorf("span arrived over %s, want %s", s.Protocol, proto)
				}
				if s.Name != tt.wantName || s.Kind != tt.wantKind {
					t.Errorf("span %q kind %v, want %q kind %v", s.Name, s.Kind, tt.wantName, tt.wantKind)
				}
				if !s.Start.Equal(tt.call.Start) || !s.End.Equal(tt.call.End) {
					t.Errorf("span runs %v – %v, want the call's %v – %v", s.Start, s.End, tt.call.Start, tt.call.End)
				}
				checkAttrs(t, "span", s.Attributes, tt.wantAttrs)
				checkAbsent(t, "span", s.Attributes, tt.wantAbsent...)
				if tt.wantError == "" && s.Status != tracepb.Status_STATUS_CODE_UNSET {
					t.Errorf("status %v %q, want unset", s.Status, s.StatusMsg)
				}
				if tt.wantError != "" && (s.Status != tracepb.Status_STATUS_CODE_ERROR || s.StatusMsg != tt.wantError) {
					t.Errorf("status %v %q, want error %q", s.Status, s.StatusMsg, tt.wantError)
				}
				checkAttrs(t, "resource", s.Resource, map[string]any{
					"service.name": tt.process.ServiceName, "process.pid": tt.process.PID,
					"process.executable.name": tt.process.ExecutableName, "host.name": "testhost",
				})
				if tt.check != nil {
					tt.check(t, s)
				}
			})
		}
	}
}

func TestResourcePerProcess(t *testing.T) {
	for _, proto := range protocols {
		t.Run(string(proto), func(t *testing.T) {
			e, rcv := newTestExporter(t, proto, func(c *Config) {
				if err := c.AddResourceAttributes("deployment.environment.name=test,team=ml%20ops"); err != nil {
					t.Fatal(err)
				}
			})
			end(e, curl, embeddingsCall())
			end(e, ollama, ollamaServerCall())
			shutdown(t, e)

			spans := rcv.WaitSpans(t, 2, waitLong)
			byService := map[string]otlptest.Attributes{}
			for _, s := range spans {
				byService[s.Resource.Str("service.name")] = s.Resource
			}
			common := map[string]any{"deployment.environment.name": "test", "team": "ml ops", "host.name": "testhost"}
			checkAttrs(t, "curl resource", byService["curl"], common)
			checkAttrs(t, "curl resource", byService["curl"], map[string]any{
				"process.pid": 4242, "process.executable.name": "curl", "process.executable.path": "/usr/bin/curl",
				"process.creation.time": curl.StartTime.UTC().Format(time.RFC3339Nano),
			})
			if cmd := byService["curl"].Str("process.command"); strings.Contains(cmd, "sk-proj") || !strings.Contains(cmd, redactedText) {
				t.Errorf("process.command = %q, want the credential redacted", cmd)
			}
			checkAttrs(t, "ollama resource", byService["ollama"], common)
			checkAttrs(t, "ollama resource", byService["ollama"], map[string]any{
				"process.pid": 812, "process.executable.path": "/usr/local/bin/ollama", "k8s.pod.name": "ollama-0",
			})

			// Metrics carry the same resources.
			for _, p := range rcv.DataPoints("llm_observer.client.requests") {
				if p.Resource.Str("service.name") != "curl" {
					t.Errorf("client request counted under %q", p.Resource.Str("service.name"))
				}
			}
			if pts := rcv.DataPoints("llm_observer.server.requests"); len(pts) != 1 || pts[0].Resource.Str("service.name") != "ollama" {
				t.Errorf("server requests: %+v, want one point under ollama", pts)
			}
		})
	}
}

func TestGenAISystemSwitch(t *testing.T) {
	tests := []struct {
		name       string
		emit, opt  bool
		wantSystem bool
	}{
		{"default", false, false, false},
		{"switch on", true, false, true},
		{"latest conventions win", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, rcv := newTestExporter(t, otlptest.GRPC, func(c *Config) {
				c.EmitGenAISystem, c.LatestGenAIConventions = tt.emit, tt.opt
			})
			end(e, curl, embeddingsCall())
			shutdown(t, e)
			s := rcv.WaitSpans(t, 1, waitLong)[0]
			pts := rcv.DataPoints("gen_ai.client.operation.duration")
			if len(pts) != 1 {
				t.Fatalf("got %d duration points", len(pts))
			}
			for what, attrs := range map[string]otlptest.Attributes{"span": s.Attributes, "metric": pts[0].Attributes} {
				if got := attrs.Has("gen_ai.system"); got != tt.wantSystem {
					t.Errorf("%s has gen_ai.system: %v, want %v", what, got, tt.wantSystem)
				}
				if attrs.Str("gen_ai.provider.name") != "ollama" {
					t.Errorf("%s gen_ai.provider.name = %q", what, attrs.Str("gen_ai.provider.name"))
				}
			}
		})
	}
}

func TestProcessRetirement(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		e, rcv := newTestExporter(t, otlptest.GRPC, func(c *Config) { c.ProcessIdleTimeout = 50 * time.Millisecond })
		end(e, curl, embeddingsCall())
		// No flush: the idle process's last metrics must come out on their own.
		pts := rcv.WaitDataPoints(t, "llm_observer.client.requests", 1, waitLong)
		if pts[0].Resource.Str("service.name") != "curl" {
			t.Errorf("retired metrics under %q", pts[0].Resource.Str("service.name"))
		}
		rcv.Wait(t, waitLong, "the table to empty", func() bool { return e.procs.len() == 0 })
	})
	t.Run("bounded", func(t *testing.T) {
		e, rcv := newTestExporter(t, otlptest.GRPC, func(c *Config) { c.MaxProcesses = 2 })
		for pid := 1; pid <= 3; pid++ {
			end(e, &Process{PID: pid, ExecutableName: "app"}, embeddingsCall())
		}
		if n := e.procs.len(); n != 2 {
			t.Errorf("%d processes kept, want 2", n)
		}
		pts := rcv.WaitDataPoints(t, "llm_observer.client.requests", 1, waitLong)
		if pid, _ := pts[0].Resource.Int("process.pid"); pid != 1 {
			t.Errorf("retired process %d, want the least recently used, 1", pid)
		}
		shutdown(t, e)
		if n := len(rcv.DataPoints("llm_observer.client.requests")); n != 3 {
			t.Errorf("%d request points after shutdown, want one per process, 3", n)
		}
	})
}

func TestSpansOffMetricsOn(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.HTTPProtobuf, func(c *Config) { c.DisableTraces = true })
	end(e, curl, chatStreamCall())
	shutdown(t, e)
	if len(rcv.DataPoints("gen_ai.client.operation.duration")) != 1 {
		t.Error("no duration point with traces off")
	}
	if n := rcv.Requests(otlptest.HTTPProtobuf, otlptest.Traces); n != 0 {
		t.Errorf("%d trace requests with traces off", n)
	}
}

// server.address is the server the request named (its Host header), not the
// address the connection went to: the name, not the resolved IP.
func TestServerAddressFromRequest(t *testing.T) {
	c := chatStreamCall()
	c.Endpoint.ServerAddress, c.Endpoint.ServerPort = "162.159.140.245", 443
	c.ServerAddress, c.ServerPort = "api.openai.com", 8443
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	end(e, curl, c)
	shutdown(t, e)
	want := map[string]any{"server.address": "api.openai.com", "server.port": 8443}
	checkAttrs(t, "span", rcv.WaitSpans(t, 1, waitLong)[0].Attributes, want)
	for _, p := range rcv.DataPoints("gen_ai.client.operation.duration") {
		checkAttrs(t, "metric", p.Attributes, want)
	}
}
