package genai

import (
	"net/http"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

type nopHandler struct{}

func (nopHandler) CallStarted(*Call) {}
func (nopHandler) CallEnded(*Call)   {}

// streamingCall returns an assembler with one streaming call open, ready
// for events. MaxContentChunks is small so that the benchmark measures the
// steady state of a long stream, not the growth of the chunk-time slice.
func streamingCall(b *testing.B, opts Options, target, host, body string, kind decode.StreamKind) (*Assembler, *decode.Exchange) {
	opts.MaxContentChunks = 64
	a := NewAssembler(&opts, Endpoint{ServerPort: 443}, nopHandler{})
	x := exchange("POST", target, map[string]string{"Host": host}, body, 0, nil, "")
	a.Request(x)
	x.HasResponse = true
	x.Response = decode.Response{Status: 200, Stream: kind, Header: http.Header{"Content-Type": {"text/event-stream"}}}
	if a.find(x) == nil {
		b.Fatal("request not recognised")
	}
	return a, x
}

var (
	openAIDelta     = []byte(`{"id":"chatcmpl-AXb1","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0aa8d3e20b","choices":[{"index":0,"delta":{"content":" is an open standard"},"logprobs":null,"finish_reason":null}]}`)
	openAIUsage     = []byte(`{"id":"chatcmpl-AXb1","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0aa8d3e20b","choices":[],"usage":{"prompt_tokens":2048,"completion_tokens":12,"total_tokens":2060,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`)
	ollamaLineData  = []byte(`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.431Z","message":{"role":"assistant","content":" scattering"},"done":false}`)
	ollamaFinal     = []byte(`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.49Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":489731250,"load_duration":21684375,"prompt_eval_count":31,"prompt_eval_duration":366000000,"eval_count":5,"eval_duration":92400000}`)
	anthropicDelta  = []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}}`)
	anthropicStart  = []byte(`{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":1}}}`)
	responsesFinish = []byte(`{"type":"response.completed","sequence_number":14,"response":{"id":"resp_r1","object":"response","status":"completed","model":"o4-mini-2025-04-16","output":[],"incomplete_details":null,"error":null,"usage":{"input_tokens":1311,"input_tokens_details":{"cached_tokens":1280},"output_tokens":148,"output_tokens_details":{"reasoning_tokens":128},"total_tokens":1459},"service_tier":"flex"}}`)
)

func benchEvents(b *testing.B, a *Assembler, x *decode.Exchange, name string, data []byte) {
	ev := decode.StreamEvent{Time: time.Unix(1, 0), Name: name, Data: data}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Event(x, ev)
	}
}

// BenchmarkOpenAIStreamEvent is one content delta of a chat-completions
// stream, the event a long answer repeats hundreds of times.
func BenchmarkOpenAIStreamEvent(b *testing.B) {
	for _, capture := range []bool{false, true} {
		name := "capture=off"
		if capture {
			name = "capture=on"
		}
		b.Run(name, func(b *testing.B) {
			a, x := streamingCall(b, Options{CaptureOutput: capture}, "/v1/chat/completions", "api.openai.com", `{"model":"gpt-4o-mini","stream":true,"messages":[]}`, decode.SSE)
			if capture {
				// Keep the captured text from growing without bound.
				st := a.find(x)
				b.Cleanup(func() { _ = st })
			}
			benchEvents(b, a, x, "", openAIDelta)
		})
	}
}

// BenchmarkOllamaStreamLine is one NDJSON line of an Ollama chat stream.
func BenchmarkOllamaStreamLine(b *testing.B) {
	a, x := streamingCall(b, Options{}, "/api/chat", "localhost:11434", `{"model":"llama3.2","messages":[]}`, decode.NDJSON)
	benchEvents(b, a, x, "", ollamaLineData)
}

// BenchmarkUsageExtraction is the event that carries a stream's token
// counts, per API.
func BenchmarkUsageExtraction(b *testing.B) {
	cases := []struct {
		name, target, host, body, event string
		kind                            decode.StreamKind
		data                            []byte
	}{
		{"openai_usage_chunk", "/v1/chat/completions", "api.openai.com", `{"model":"m","stream":true,"messages":[]}`, "", decode.SSE, openAIUsage},
		{"ollama_final_line", "/api/chat", "localhost:11434", `{"model":"m","messages":[]}`, "", decode.NDJSON, ollamaFinal},
		{"anthropic_message_start", "/v1/messages", "api.anthropic.com", `{"model":"m","stream":true,"messages":[]}`, "message_start", decode.SSE, anthropicStart},
		{"anthropic_message_delta", "/v1/messages", "api.anthropic.com", `{"model":"m","stream":true,"messages":[]}`, "message_delta", decode.SSE, anthropicDelta},
		{"responses_completed", "/v1/responses", "api.openai.com", `{"model":"m","stream":true,"input":"x"}`, "response.completed", decode.SSE, responsesFinish},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			a, x := streamingCall(b, Options{}, tc.target, tc.host, tc.body, tc.kind)
			benchEvents(b, a, x, tc.event, tc.data)
		})
	}
}

// BenchmarkCall is a whole short streamed call, request to end, with the
// fixture's events cut once beforehand so that only this package is timed.
func BenchmarkCall(b *testing.B) {
	fx := loadFixture(b, "testdata/openai_chat_stream_usage.txt")
	var events []decode.StreamEvent
	sp := &streamSplitter{kind: fx.resp.Stream}
	for _, ev := range fx.events {
		sp.feed(ev.raw, 0, func(int) time.Time { return ev.t }, func(e decode.StreamEvent) { events = append(events, e) })
	}
	a := NewAssembler(&Options{}, testEndpoint, nopHandler{})
	x := &decode.Exchange{Request: fx.req, ClientSide: true}
	b.ReportMetric(float64(len(events)), "events/call")
	b.ReportAllocs()
	for b.Loop() {
		x.Seq++
		x.HasResponse = false
		a.Request(x)
		x.HasResponse, x.Response = true, fx.resp
		for _, ev := range events {
			a.Event(x, ev)
		}
		x.Response.End = fx.end
		a.Done(x)
	}
}

// BenchmarkNonStreamedCall is a whole call answered in one body, request to
// end: what a plain JSON call costs this package per observed side.
func BenchmarkNonStreamedCall(b *testing.B) {
	cases := []struct{ name, target, host, req, resp string }{
		{"openai_chat", "/v1/chat/completions", "api.openai.com",
			`{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Why is the sky blue? Answer in one sentence, please, with the physics."}]}`,
			`{"id":"chatcmpl-AXb2","object":"chat.completion","created":1735689600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Air molecules scatter short blue wavelengths of sunlight far more than long red ones (Rayleigh scattering, proportional to 1/\u03bb\u2074), so blue light reaches us from every direction of the sky.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":42,"total_tokens":73,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_0aa8d3e20b"}`},
		{"ollama_chat", "/api/chat", "localhost:11434",
			`{"model":"llama3.2","stream":false,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Why is the sky blue?"}],"options":{"temperature":0.2,"num_predict":256}}`,
			`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.49Z","message":{"role":"assistant","content":"Rayleigh scattering: air scatters blue light more than red."},"done":true,"done_reason":"stop","total_duration":489731250,"load_duration":21684375,"prompt_eval_count":31,"prompt_eval_duration":366000000,"eval_count":14,"eval_duration":92400000}`},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			a := NewAssembler(&Options{}, Endpoint{ServerPort: 443}, nopHandler{})
			x := exchange("POST", tc.target, map[string]string{"Host": tc.host, "Content-Type": "application/json"}, tc.req, 200,
				map[string]string{"Content-Type": "application/json", "X-Request-Id": "req_1"}, tc.resp)
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				seq++
				x.Seq = seq
				a.Request(x)
				a.Done(x)
			}
		})
	}
}
