package export

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

var contentKeys = []string{"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"}

// secrets are planted in contentCall; none may reach the receiver.
var secrets = []string{
	"sk-proj-abcdefghijklmnopqrstuvwxyz0123",
	"eyJhbGciOiJIUzI1NiJ9",
	"AKIAIOSFODNN7EXAMPLE",
	"help@example.com",
	"bob@example.org",
	"internal-ticket-4711", // matched by the user's pattern in the tests
}

const userPattern = `internal-ticket-\d+`

func contentCall() *genai.Call {
	c := chatStreamCall()
	c.SystemInstructions = []genai.Part{{Type: "text", Content: "Be terse. Escalations go to help@example.com."}}
	c.InputMessages = []genai.Message{
		{Role: "user", Parts: []genai.Part{{Type: "text", Content: "My key is sk-proj-abcdefghijklmnopqrstuvwxyz0123, " +
			"and the session is Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl <ok>"}}},
		{Role: "assistant", Parts: []genai.Part{{Type: "tool_call", ID: "call_1", Name: "lookup",
			Arguments: json.RawMessage(`{"aws":"AKIAIOSFODNN7EXAMPLE","city":"Paris"}`)}}},
		{Role: "tool", Parts: []genai.Part{{Type: "tool_call_response", ID: "call_1",
			Response: json.RawMessage(`{"ok":true,"ref":"internal-ticket-4711"}`)}}},
	}
	c.OutputMessages = []genai.Message{{Role: "assistant", FinishReason: "stop",
		Parts: []genai.Part{{Type: "text", Content: "Sunny. Write to bob@example.org for more."}}}}
	c.ToolDefinitions = json.RawMessage(`[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]`)
	return c
}

// leaked returns the planted secrets found anywhere in attrs.
func leaked(attrs otlptest.Attributes) []string {
	var found []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			for _, s := range secrets {
				if strings.Contains(x, s) {
					found = append(found, s)
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, v := range attrs {
		walk(v)
	}
	return found
}

func TestContentOffByDefault(t *testing.T) {
	for _, proto := range protocols {
		t.Run(string(proto), func(t *testing.T) {
			e, rcv := newTestExporter(t, proto, nil)
			end(e, curl, contentCall())
			shutdown(t, e)
			s := rcv.WaitSpans(t, 1, waitLong)[0]
			checkAbsent(t, "span", s.Attributes, append(contentKeys, "llm_observer.content.truncated")...)
			if n := rcv.Requests(proto, otlptest.Logs); n != 0 {
				t.Errorf("%d log requests with content capture off", n)
			}
		})
	}
}

func TestContentOnSpan(t *testing.T) {
	for _, proto := range protocols {
		t.Run(string(proto), func(t *testing.T) {
			e, rcv := newTestExporter(t, proto, func(c *Config) {
				c.CaptureContent = CaptureAll
				c.Redact = []string{userPattern}
			})
			end(e, curl, contentCall())
			shutdown(t, e)
			s := rcv.WaitSpans(t, 1, waitLong)[0]

			var in []map[string]any
			if err := json.Unmarshal([]byte(s.Attributes.Str("gen_ai.input.messages")), &in); err != nil {
				t.Fatalf("input messages are not a JSON array of messages: %v", err)
			}
			if len(in) != 3 || in[0]["role"] != "user" || in[1]["role"] != "assistant" || in[2]["role"] != "tool" {
				t.Errorf("input messages: %v", in)
			}
			call := in[1]["parts"].([]any)[0].(map[string]any)
			if call["type"] != "tool_call" || call["name"] != "lookup" || call["arguments"].(map[string]any)["city"] != "Paris" {
				t.Errorf("tool call part lost its shape: %v", call)
			}
			if got := in[0]["parts"].([]any)[0].(map[string]any)["content"]; !strings.Contains(got.(string), "<ok>") {
				t.Errorf("text escaped or lost: %q", got)
			}
			out := validJSONString(t, "output messages", s.Attributes.Str("gen_ai.output.messages")).([]any)
			if m := out[0].(map[string]any); m["finish_reason"] != "stop" || m["role"] != "assistant" {
				t.Errorf("output message: %v", m)
			}
			validJSONString(t, "system instructions", s.Attributes.Str("gen_ai.system_instructions"))
			validJSONString(t, "tool definitions", s.Attributes.Str("gen_ai.tool.definitions"))

			if l := leaked(s.Attributes); len(l) > 0 {
				t.Errorf("secrets left the host: %v", l)
			}
			if n := strings.Count(s.Attributes.Str("gen_ai.input.messages"), redactedText); n != 4 {
				t.Errorf("%d redactions in the input messages, want 4: %s", n, s.Attributes.Str("gen_ai.input.messages"))
			}
			checkAbsent(t, "span", s.Attributes, "llm_observer.content.truncated")
			if n := rcv.Requests(proto, otlptest.Logs); n != 0 {
				t.Errorf("%d log requests with content going to spans", n)
			}
		})
	}
}

func TestContentCaptureSwitches(t *testing.T) {
	tests := []struct {
		capture ContentCapture
		want    []string
	}{
		{CaptureInput, []string{"gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"}},
		{CaptureOutput, []string{"gen_ai.output.messages"}},
	}
	for _, tt := range tests {
		t.Run(tt.capture.String(), func(t *testing.T) {
			e, rcv := newTestExporter(t, otlptest.GRPC, func(c *Config) { c.CaptureContent = tt.capture })
			end(e, curl, contentCall())
			shutdown(t, e)
			s := rcv.WaitSpans(t, 1, waitLong)[0]
			for _, k := range contentKeys {
				if got, want := s.Attributes.Has(k), contains(tt.want, k); got != want {
					t.Errorf("%s present: %v, want %v", k, got, want)
				}
			}
		})
	}
}

func TestContentCapped(t *testing.T) {
	const limit = 1024
	c := contentCall()
	long := strings.Repeat("All work and no play makes Jack a dull boy. ", 2000) // ~88 kB
	c.InputMessages = append(c.InputMessages, genai.Message{Role: "user", Parts: []genai.Part{{Type: "text", Content: long}}})
	c.OutputMessages[0].Parts[0].Content = "é" + long // a two-byte rune first, so cuts must respect runes

	e, rcv := newTestExporter(t, otlptest.GRPC, func(cfg *Config) {
		cfg.CaptureContent = CaptureAll
		cfg.ContentMaxBytes = limit
		cfg.Redact = []string{userPattern}
	})
	end(e, curl, c)
	shutdown(t, e)
	s := rcv.WaitSpans(t, 1, waitLong)[0]

	for _, k := range []string{"gen_ai.input.messages", "gen_ai.output.messages"} {
		v := s.Attributes.Str(k)
		if len(v) > limit || len(v) < limit/2 {
			t.Errorf("%s is %d bytes, want at most %d and not needlessly short", k, len(v), limit)
		}
		if !utf8.ValidString(v) || !strings.Contains(v, truncationMark) {
			t.Errorf("%s: not valid UTF-8 or not marked as cut: %s", k, v)
		}
		validJSONString(t, k, v)
	}
	var in []map[string]any
	json.Unmarshal([]byte(s.Attributes.Str("gen_ai.input.messages")), &in) //nolint:errcheck // validated above
	if last := in[len(in)-1]["parts"].([]any)[0].(map[string]any)["content"].(string); !strings.HasPrefix(last, "All work") {
		t.Errorf("the latest message should survive the cap, got %q", last)
	}
	checkAttrs(t, "span", s.Attributes, map[string]any{"llm_observer.content.truncated": true})
	if l := leaked(s.Attributes); len(l) > 0 {
		t.Errorf("secrets left the host: %v", l)
	}
}

func TestContentToLogs(t *testing.T) {
	for _, proto := range protocols {
		for _, dest := range []ContentDestination{DestinationLog, DestinationBoth} {
			t.Run(string(proto)+"/"+dest.String(), func(t *testing.T) {
				e, rcv := newTestExporter(t, proto, func(c *Config) {
					c.CaptureContent = CaptureAll
					c.ContentDestination = dest
					c.Redact = []string{userPattern}
				})
				end(e, curl, contentCall())
				shutdown(t, e)

				s := rcv.WaitSpans(t, 1, waitLong)[0]
				logs := rcv.WaitLogs(t, 1, waitLong)
				if len(logs) != 1 {
					t.Fatalf("%d log records, want 1", len(logs))
				}
				l := logs[0]
				if l.Protocol != proto || l.EventName != "gen_ai.client.inference.operation.details" {
					t.Errorf("log record %q over %s", l.EventName, l.Protocol)
				}
				if l.TraceID != s.TraceID || l.SpanID != s.SpanID {
					t.Errorf("log record in %s/%s, want the span's %s/%s", l.TraceID, l.SpanID, s.TraceID, s.SpanID)
				}
				if !l.Time.Equal(contentCall().End) {
					t.Errorf("log record at %v, want the call's end", l.Time)
				}
				checkAttrs(t, "log", l.Attributes, map[string]any{
					"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
					"gen_ai.usage.output_tokens": 40,
				})
				for _, k := range contentKeys {
					validJSONString(t, "log "+k, l.Attributes.Str(k))
				}
				if l.Resource.Str("service.name") != "curl" {
					t.Errorf("log resource %v", l.Resource)
				}
				if got := leaked(l.Attributes); len(got) > 0 {
					t.Errorf("secrets left the host in logs: %v", got)
				}
				onSpan := s.Attributes.Has("gen_ai.input.messages")
				if onSpan != (dest == DestinationBoth) {
					t.Errorf("content on the span: %v with destination %s", onSpan, dest)
				}
			})
		}
	}
}

func TestRedactor(t *testing.T) {
	r, err := newRedactor([]string{`(?i)project\s+falcon`})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"key sk-abcdefghijklmnopqrstuvwxyz123456", "key [REDACTED]"},
		{"sk-ant-api03-abcdefghijklmnopqrstuvwxyz_-0123456789", "[REDACTED]"},
		{"Authorization: Bearer abc.def-ghi_jkl~mno", "Authorization: [REDACTED]"},
		{"id AKIAIOSFODNN7EXAMPLE.", "id [REDACTED]."},
		{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYab", "[REDACTED]"},
		{"t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature-1", "t=[REDACTED]"},
		{"google AIzaSyA-1234567890abcdefghijklmnopqrstuv", "google [REDACTED]"},
		{"ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[REDACTED]"},
		{`{"api_key": "0123456789abcdef"}`, `{"[REDACTED]"}`},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- after", "[REDACTED] after"},
		{"-----BEGIN PRIVATE KEY-----\nMIIEow cut off", "[REDACTED]"},
		{"mail jane.doe+llm@mail.example.co.uk now", "mail [REDACTED] now"},
		{"the Project  Falcon launch", "the [REDACTED] launch"},
		// A Cookie header as curl's command line carries it.
		{"curl -H Cookie: session=abc123; csrftoken=def456 -d {}", "curl -H [REDACTED] -d {}"},
		{"set-cookie:sid=0f9e8d", "[REDACTED]"},
		// Ordinary text stays.
		{"a task-management-system-for-everyone", "a task-management-system-for-everyone"},
		{"the bearer of bad news", "the bearer of bad news"},
		{"a cookie: chocolate chip", "a cookie: chocolate chip"},
		{"version 1.2.3 at 10:04, 50% off @home", "version 1.2.3 at 10:04, 50% off @home"},
	}
	for _, tt := range tests {
		if got := r.redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := newRedactor([]string{"("}); err == nil {
		t.Error("a broken user pattern was accepted")
	}
}

func TestContentFit(t *testing.T) {
	r, _ := newRedactor(nil)
	many := make([]genai.Message, 200)
	for i := range many {
		many[i] = genai.Message{Role: "user", Parts: []genai.Part{{Type: "text", Content: fmt.Sprintf("message %d says hello", i)}}}
	}
	tests := []struct {
		name     string
		raw      []byte
		max      int
		keepLast bool
		want     func(t *testing.T, out string)
	}{{
		name: "fits untouched", raw: marshalMessages(many[:2]), max: 1000, keepLast: true,
		want: func(t *testing.T, out string) {
			if strings.Contains(out, truncationMark) {
				t.Errorf("cut although it fits: %s", out)
			}
		},
	}, {
		name: "many short messages drop the oldest", raw: marshalMessages(many), max: 600, keepLast: true,
		want: func(t *testing.T, out string) {
			if !strings.Contains(out, "message 199 says hello") || strings.Contains(out, "message 0 says") {
				t.Errorf("want the newest messages whole and the oldest gone: %s", out)
			}
		},
	}, {
		name: "output keeps the first messages", raw: marshalMessages(many), max: 600, keepLast: false,
		want: func(t *testing.T, out string) {
			if !strings.Contains(out, "message 0 says hello") || strings.Contains(out, "message 199") {
				t.Errorf("want the first messages kept: %s", out)
			}
		},
	}, {
		name: "credential at the cut", max: 256, keepLast: true,
		raw: marshalMessages([]genai.Message{{Role: "user", Parts: []genai.Part{{Type: "text",
			Content: strings.Repeat("x ", 90) + "sk-proj-" + strings.Repeat("Q", 200)}}}}),
		want: func(t *testing.T, out string) {
			if strings.Contains(out, "sk-") || strings.Contains(out, "QQQ") {
				t.Errorf("part of a credential survived the cut: %s", out)
			}
		},
	}, {
		name: "invalid tool arguments", max: 1000, keepLast: true,
		raw: marshalMessages([]genai.Message{{Role: "assistant", Parts: []genai.Part{{Type: "tool_call", Name: "f",
			Arguments: json.RawMessage(`{"city": "Par`)}}}}),
		want: func(t *testing.T, out string) {
			if !strings.Contains(out, `"arguments":"{\"city\": \"Par"`) {
				t.Errorf("cut arguments should be kept as a string: %s", out)
			}
		},
	}, {
		name: "not JSON at all", raw: []byte("plain text with a@b.io"), max: 1000,
		want: func(t *testing.T, out string) {
			if out != `"plain text with [REDACTED]"` {
				t.Errorf("got %s", out)
			}
		},
	}, {
		name: "structure alone too big", max: 256, keepLast: true,
		raw: []byte(`[{"` + strings.Repeat("k", 400) + `":1}]`),
		want: func(t *testing.T, out string) {
			if out != "[]" {
				t.Errorf("got %s, want an empty array", out)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := contentPolicy{capture: CaptureAll, maxBytes: tt.max, redactor: r}
			out, _ := p.encode(tt.raw, tt.keepLast)
			if len(out) > tt.max {
				t.Errorf("%d bytes, over the cap of %d", len(out), tt.max)
			}
			if !json.Valid([]byte(out)) {
				t.Fatalf("not valid JSON: %s", out)
			}
			tt.want(t, out)
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestContentUnderSDKLengthLimit(t *testing.T) {
	// A length limit for all span attributes must not cut content JSON blindly.
	t.Setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "300")
	e, rcv := newTestExporter(t, otlptest.GRPC, func(c *Config) { c.CaptureContent = CaptureAll })
	end(e, curl, contentCall())
	shutdown(t, e)
	s := rcv.WaitSpans(t, 1, waitLong)[0]
	for _, k := range contentKeys {
		if v := s.Attributes.Str(k); len(v) > 300 {
			t.Errorf("%s is %d bytes, over the SDK's limit", k, len(v))
		} else {
			validJSONString(t, k, v)
		}
	}
}
