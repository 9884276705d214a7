package genai

import (
	"net/http"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
	"golang.org/x/net/http2"
)

// lossCase is one way an exchange reaches the assembler: a request, maybe
// a response head, events or a body, and how decode ended it.
type lossCase struct {
	name        string
	target      string
	reqBody     string
	reqCut      bool
	status      int // 0: no response seen
	kind        decode.StreamKind
	events      []decode.StreamEvent
	body        string
	bodyCut     bool
	err         error
	wantErr     string // "" for an outcome the wire showed as fine
	wantTrunc   bool
	wantModel   string // response model, when the response said
	wantFinish  string
	wantMessage string
}

func sse(name, data string) decode.StreamEvent {
	return decode.StreamEvent{Name: name, Data: []byte(data)}
}

const (
	chatReq      = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}`
	chatDelta    = `{"id":"c1","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`
	chatFinal    = `{"id":"c1","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`
	ollamaReq    = `{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}`
	ollamaChunk  = `{"model":"llama3.2","message":{"role":"assistant","content":"Hel"},"done":false}`
	anthropicReq = `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}`
)

// TestLossIsNotError: what the observer failed to see marks the call
// truncated and keeps the outcome the wire showed; error.type is only for
// what the server (or a peer's reset) said.
func TestLossIsNotError(t *testing.T) {
	chat, ollama, anthropic := "/v1/chat/completions", "/api/chat", "/v1/messages"
	cases := []lossCase{
		{name: "gap mid-stream after the first chunks", target: chat, reqBody: chatReq, status: 200, kind: decode.SSE,
			events: []decode.StreamEvent{sse("", chatDelta), sse("", chatDelta)}, err: decode.ErrGap,
			wantTrunc: true, wantModel: "gpt-4o-mini-2024-07-18"},
		{name: "gap in the request, response complete", target: chat, reqCut: true,
			reqBody: `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"},{"role":"assi`,
			status:  200, kind: decode.SSE, events: []decode.StreamEvent{sse("", chatDelta), sse("", chatFinal), sse("", "[DONE]")},
			wantTrunc: true, wantModel: "gpt-4o-mini-2024-07-18", wantFinish: "stop"},
		{name: "closed before any response", target: chat, reqBody: chatReq, err: decode.ErrConnClosed, wantTrunc: true},
		{name: "gap before any response", target: chat, reqBody: chatReq, err: decode.ErrGap, wantTrunc: true},
		{name: "dropped waiting for its response", target: ollama, reqBody: ollamaReq, err: decode.ErrDropped, wantTrunc: true},
		{name: "stream cut before the final chunk", target: ollama, reqBody: ollamaReq, status: 200, kind: decode.NDJSON,
			events: []decode.StreamEvent{sse("", ollamaChunk), sse("", ollamaChunk)}, err: decode.ErrConnClosed,
			wantTrunc: true, wantModel: "llama3.2"},
		{name: "event cut at the limit, stream complete", target: chat, reqBody: chatReq, status: 200, kind: decode.SSE,
			events:    []decode.StreamEvent{sse("", chatDelta), {Data: []byte(chatDelta[:40]), Truncated: true}, sse("", chatFinal), sse("", "[DONE]")},
			wantTrunc: true, wantModel: "gpt-4o-mini-2024-07-18", wantFinish: "stop"},
		{name: "complete stream, then the connection closed", target: chat, reqBody: chatReq, status: 200, kind: decode.SSE,
			events: []decode.StreamEvent{sse("", chatDelta), sse("", chatFinal), sse("", "[DONE]")}, err: decode.ErrConnClosed,
			wantTrunc: true, wantModel: "gpt-4o-mini-2024-07-18", wantFinish: "stop"},
		{name: "body cut", target: chat, reqBody: `{"model":"gpt-4o-mini","messages":[]}`, status: 200,
			body: `{"id":"c2","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hel`, bodyCut: true,
			wantTrunc: true},
		{name: "complete, nothing lost", target: chat, reqBody: chatReq, status: 200, kind: decode.SSE,
			events:    []decode.StreamEvent{sse("", chatDelta), sse("", chatFinal), sse("", "[DONE]")},
			wantModel: "gpt-4o-mini-2024-07-18", wantFinish: "stop"},

		// What the wire said stays an error, lost bytes or not.
		{name: "401 with an error body", target: chat, reqBody: chatReq, status: 401,
			body:    `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			wantErr: "invalid_api_key", wantMessage: "Incorrect API key provided."},
		{name: "500 with its body cut", target: chat, reqBody: chatReq, status: 500, body: `{"error":{"mess`, bodyCut: true,
			wantErr: "500", wantTrunc: true},
		{name: "503 then closed", target: chat, reqBody: chatReq, status: 503, err: decode.ErrConnClosed, wantErr: "503", wantTrunc: true},
		{name: "Ollama error line mid-stream with status 200", target: ollama, reqBody: ollamaReq, status: 200, kind: decode.NDJSON,
			events:  []decode.StreamEvent{sse("", ollamaChunk), sse("", `{"error":"model runner has unexpectedly stopped"}`)},
			wantErr: errorOther, wantModel: "llama3.2", wantMessage: "model runner has unexpectedly stopped"},
		{name: "Anthropic error event", target: anthropic, reqBody: anthropicReq, status: 200, kind: decode.SSE,
			events: []decode.StreamEvent{
				sse("message_start", `{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":9,"output_tokens":1}}}`),
				sse("error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)},
			wantErr: "overloaded_error", wantModel: "claude-sonnet-4-5-20250929", wantMessage: "Overloaded"},
		{name: "Anthropic error event, then a gap", target: anthropic, reqBody: anthropicReq, status: 200, kind: decode.SSE,
			events:  []decode.StreamEvent{sse("error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)},
			err:     decode.ErrGap,
			wantErr: "overloaded_error", wantTrunc: true, wantMessage: "Overloaded"},
		{name: "RST_STREAM from the server mid-stream", target: chat, reqBody: chatReq, status: 200, kind: decode.SSE,
			events: []decode.StreamEvent{sse("", chatDelta)}, err: &decode.ResetError{Code: uint32(http2.ErrCodeInternal)},
			wantErr: "INTERNAL_ERROR", wantTrunc: true, wantModel: "gpt-4o-mini-2024-07-18",
			wantMessage: "HTTP/2 stream ended by RST_STREAM INTERNAL_ERROR from the server"},
		{name: "RST_STREAM after the stream completed", target: chat, reqBody: chatReq, status: 200, kind: decode.SSE,
			events: []decode.StreamEvent{sse("", chatFinal), sse("", "[DONE]")}, err: &decode.ResetError{Code: uint32(http2.ErrCodeCancel), ByClient: true},
			wantTrunc: true, wantModel: "gpt-4o-mini-2024-07-18", wantFinish: "stop"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.run(t)
			if c.ErrorType != tc.wantErr || c.Truncated != tc.wantTrunc {
				t.Errorf("error.type %q, truncated %v; want %q, %v", c.ErrorType, c.Truncated, tc.wantErr, tc.wantTrunc)
			}
			if tc.wantErr == "" && c.ErrorMessage != "" {
				t.Errorf("error message %q on a call that did not fail", c.ErrorMessage)
			}
			if tc.wantMessage != "" && c.ErrorMessage != tc.wantMessage {
				t.Errorf("error message %q, want %q", c.ErrorMessage, tc.wantMessage)
			}
			if c.ResponseModel != tc.wantModel {
				t.Errorf("response model %q, want %q", c.ResponseModel, tc.wantModel)
			}
			var finish string
			if len(c.FinishReasons) > 0 {
				finish = c.FinishReasons[0]
			}
			if finish != tc.wantFinish {
				t.Errorf("finish reasons %q, want %q", c.FinishReasons, tc.wantFinish)
			}
			if tc.status == 0 && c.Status != 0 {
				t.Errorf("status %d for a call without response", c.Status)
			}
			if c.End.Before(c.Start) {
				t.Errorf("ends %v before it starts %v", c.End, c.Start)
			}
		})
	}
}

func (tc *lossCase) run(t *testing.T) *Call {
	t.Helper()
	rec := &recorder{t: t}
	a := NewAssembler(nil, Endpoint{ServerPort: 443}, rec)
	x := exchange("POST", tc.target, map[string]string{"Host": "api.example.com"}, tc.reqBody, 0, nil, "")
	x.Request.BodyTruncated = tc.reqCut
	a.Request(x)
	if len(rec.started) != 1 {
		t.Fatal("request not recognised")
	}
	if tc.status > 0 {
		t0 := fixtureBase.Add(100 * time.Millisecond)
		x.HasResponse = true
		x.Response = decode.Response{Proto: "HTTP/1.1", Status: tc.status, Header: http.Header{}, Stream: tc.kind,
			Start: t0, HeaderEnd: t0, Body: []byte(tc.body), BodyTruncated: tc.bodyCut}
		for i, ev := range tc.events {
			ev.Time = t0.Add(time.Duration(i+1) * time.Millisecond)
			a.Event(x, ev)
		}
		x.Response.End = t0.Add(time.Second)
	}
	x.Err = tc.err
	a.Done(x)
	if len(rec.ended) != 1 {
		t.Fatalf("%d calls ended", len(rec.ended))
	}
	return rec.ended[0]
}

// TestAbandonedCallIsTruncated: calls still open when their connection is
// torn down, or pushed out by too many pipelined ones, are the observer's
// loss too.
func TestAbandonedCallIsTruncated(t *testing.T) {
	rec := &recorder{t: t}
	a := NewAssembler(nil, Endpoint{}, rec)
	for i := range maxPending + 1 {
		x := exchange("POST", "/v1/chat/completions", map[string]string{"Host": "api.openai.com"}, chatReq, 0, nil, "")
		x.Seq = uint64(i)
		a.Request(x)
	}
	a.Close()
	if len(rec.ended) != maxPending+1 {
		t.Fatalf("%d calls ended, want %d", len(rec.ended), maxPending+1)
	}
	for _, c := range rec.ended {
		if c.ErrorType != "" || !c.Truncated {
			t.Fatalf("abandoned call: error.type %q, truncated %v", c.ErrorType, c.Truncated)
		}
	}
}
