package genai

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// The wire bytes of one streamed chat call as an OpenAI Python client and
// the OpenAI API exchange them: a request head of the headers that client
// sends, a chat body, a response head of the headers the API answers with,
// and content deltas in chunked SSE.
var (
	inflightReqBody = `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"temperature":0.7,"max_tokens":512,` +
		`"messages":[{"role":"system","content":"You are a helpful assistant. Answer in plain prose."},` +
		`{"role":"user","content":"` + strings.Repeat("Explain why the sky is blue, with the physics. ", 16) + `"}]}`
	inflightReqHead = "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n" +
		"Accept: application/json\r\nContent-Type: application/json\r\nUser-Agent: OpenAI/Python 1.59.0\r\n" +
		"X-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.59.0\r\nX-Stainless-OS: Linux\r\nX-Stainless-Arch: x64\r\n" +
		"X-Stainless-Runtime: CPython\r\nX-Stainless-Runtime-Version: 3.12.8\r\nAuthorization: Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyz\r\n" +
		"X-Stainless-Async: false\r\nX-Stainless-Retry-Count: 0\r\nX-Stainless-Read-Timeout: 600\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(inflightReqBody))
	inflightRespHead = "HTTP/1.1 200 OK\r\nDate: Wed, 01 Jan 2025 00:00:00 GMT\r\nContent-Type: text/event-stream; charset=utf-8\r\n" +
		"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\naccess-control-expose-headers: X-Request-ID\r\n" +
		"openai-organization: user-abc123\r\nopenai-processing-ms: 187\r\nopenai-version: 2020-10-01\r\n" +
		"x-ratelimit-limit-requests: 10000\r\nx-ratelimit-limit-tokens: 200000\r\nx-ratelimit-remaining-requests: 9999\r\n" +
		"x-ratelimit-remaining-tokens: 199480\r\nx-ratelimit-reset-requests: 8.64s\r\nx-ratelimit-reset-tokens: 156ms\r\n" +
		"x-request-id: req_0123456789abcdef0123456789abcdef\r\nstrict-transport-security: max-age=31536000; includeSubDomains; preload\r\n" +
		"CF-Cache-Status: DYNAMIC\r\nSet-Cookie: __cf_bm=0123456789abcdefghijklmnopqrstuvwxyz; path=/; expires=Wed, 01-Jan-25 00:30:00 GMT; domain=.api.openai.com; HttpOnly; Secure; SameSite=None\r\n" +
		"X-Content-Type-Options: nosniff\r\nServer: cloudflare\r\nCF-RAY: 8fb0123456789abc-AMS\r\nalt-svc: h3=\":443\"; ma=86400\r\n\r\n"
)

// inflightChunk is one content delta as a chunk of the response body.
func inflightChunk(i int) []byte {
	ev := `data: {"id":"chatcmpl-AXb1","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini-2024-07-18",` +
		`"system_fingerprint":"fp_0aa8d3e20b","choices":[{"index":0,"delta":{"content":"` + tokenWord(i) + `"},"logprobs":null,"finish_reason":null}]}` + "\n\n"
	return fmt.Appendf(nil, "%x\r\n%s\r\n", len(ev), ev)
}

func tokenWord(i int) string {
	words := []string{" The", " sky", " looks", " blue", " because", " air", " scatters", " shorter", " wavelengths", " more."}
	return words[i%len(words)]
}

// BenchmarkInFlightHeap is the live heap one tracked connection holds while
// its call streams: N connections, half seen from the client and half from
// the server, each through decode.Conn and an Assembler, with the request
// sent and the response head and a few events received. It is the memory
// that grows with the number of slow streams under way at once.
func BenchmarkInFlightHeap(b *testing.B) {
	const n = 2000
	const events = 4
	chunks := make([][]byte, events)
	for i := range chunks {
		chunks[i] = inflightChunk(i)
	}
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := &Options{}
	b.ReportAllocs()
	var perConn float64
	var live float64
	for b.Loop() {
		conns := make([]*decode.Conn, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range conns {
			client := i%2 == 0
			out, in := decode.Egress, decode.Ingress
			if !client {
				out, in = in, out
			}
			a := NewAssembler(opts, Endpoint{ClientSide: client, ServerAddress: "10.0.0.9", ServerPort: 443, ClientAddress: "10.0.0.5", ClientPort: 51234}, nopHandler{})
			c := decode.NewConn(decode.Limits{}, a)
			c.Feed(out, t, []byte(inflightReqHead))
			c.Feed(out, t, []byte(inflightReqBody))
			c.Feed(in, t, []byte(inflightRespHead))
			for _, ch := range chunks {
				c.Feed(in, t, ch)
			}
			conns[i] = c
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perConn = float64(after.HeapInuse-before.HeapInuse) / n
		live = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(conns)
	}
	b.ReportMetric(perConn, "heap-B/conn")
	b.ReportMetric(live, "live-B/conn")
}

// BenchmarkDecodedCall is one whole call through decode.Conn and an
// Assembler, from the request's first byte to the end of its response: a
// plain JSON call, and a streamed one of 32 SSE events, each in a read of
// its own. It is the per-call cost of the data path above capture.
func BenchmarkDecodedCall(b *testing.B) {
	jsonBody := `{"id":"chatcmpl-AXb2","object":"chat.completion","created":1735689600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Air molecules scatter short blue wavelengths of sunlight far more than long red ones.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":42,"total_tokens":73},"service_tier":"default","system_fingerprint":"fp_0aa8d3e20b"}`
	jsonReqBody := strings.Replace(inflightReqBody, `"stream":true,"stream_options":{"include_usage":true},`, "", 1)
	jsonReqHead := strings.Replace(inflightReqHead, fmt.Sprintf("Content-Length: %d", len(inflightReqBody)), fmt.Sprintf("Content-Length: %d", len(jsonReqBody)), 1)
	jsonResp := strings.Replace(strings.Replace(inflightRespHead, "text/event-stream; charset=utf-8", "application/json", 1),
		"Transfer-Encoding: chunked", fmt.Sprintf("Content-Length: %d", len(jsonBody)), 1) + jsonBody
	var sse [][]byte
	for i := range 32 {
		sse = append(sse, inflightChunk(i))
	}
	sse = append(sse, []byte("0\r\n\r\n"))
	cases := []struct {
		name      string
		reqHead   string
		reqBody   string
		respParts [][]byte
	}{
		{"json", jsonReqHead, jsonReqBody, [][]byte{[]byte(jsonResp)}},
		{"sse-32", inflightReqHead, inflightReqBody, append([][]byte{[]byte(inflightRespHead)}, sse...)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			rec := &endCounter{}
			t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			reqHead, reqBody := []byte(tc.reqHead), []byte(tc.reqBody)
			b.ReportAllocs()
			for b.Loop() {
				a := NewAssembler(&Options{}, Endpoint{ClientSide: true, ServerPort: 443}, rec)
				c := decode.NewConn(decode.Limits{}, a)
				c.Feed(decode.Egress, t, reqHead)
				c.Feed(decode.Egress, t, reqBody)
				for _, p := range tc.respParts {
					c.Feed(decode.Ingress, t, p)
				}
				c.Close(t)
				a.Close()
			}
			if rec.ended != b.N || rec.last.Truncated || rec.last.Status != 200 {
				b.Fatalf("%d calls ended in %d runs, last %+v", rec.ended, b.N, rec.last)
			}
		})
	}
}

// endCounter counts ended calls and keeps the last, to check the runs.
type endCounter struct {
	ended int
	last  *Call
}

func (*endCounter) CallStarted(*Call) {}

func (e *endCounter) CallEnded(c *Call) { e.ended++; e.last = c }
