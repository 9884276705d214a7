package genai

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// mcpLeg is one step of a conversation over MCP's HTTP+SSE transport, which
// spreads one call over two connections: the POST that carries the request
// (acknowledged with 202) and the long GET stream the answer comes on.
type mcpLeg int

const (
	legPost   mcpLeg = iota // the POST's request
	legAck                  // the POST's 202, ending its exchange
	legAnswer               // the answer as a "message" event on the stream
	legClose                // the stream's exchange ends
)

func at2(ms float64) time.Time { return fixtureBase.Add(time.Duration(ms * float64(time.Millisecond))) }

// TestMCPHTTPSSE plays the HTTP+SSE transport in the orders the two
// connections can deliver it and checks each call ends once, at its
// answer, with the session the endpoint named.
func TestMCPHTTPSSE(t *testing.T) {
	const endpoint = "/messages/?session_id=9f0c1d"
	answer := `{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}`
	cases := []struct {
		name          string
		legs          []mcpLeg
		wantEndMs     float64
		wantTruncated bool
		wantError     string
	}{
		{"answer after the 202", []mcpLeg{legPost, legAck, legAnswer, legClose}, 30, false, ErrorTypeToolError},
		{"answer before the 202", []mcpLeg{legPost, legAnswer, legAck, legClose}, 30, false, ErrorTypeToolError},
		{"stream closed before the answer", []mcpLeg{legPost, legAck, legClose}, 10, true, ""},
		{"stream closed before the 202", []mcpLeg{legPost, legClose, legAck}, 10, true, ""},
	}
	for _, side := range []bool{true, false} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s client=%v", tc.name, side), func(t *testing.T) {
				rec := &recorder{t: t}
				opts := &Options{MCPSessions: NewMCPSessions()}
				streamConn := NewAssembler(opts, testEndpoint, rec)
				postConn := NewAssembler(opts, testEndpoint, rec)

				stream := &decode.Exchange{Seq: 1, ClientSide: side, Request: decode.Request{Method: "GET", Target: "/sse", Header: http.Header{"Accept": {"text/event-stream"}}, Start: at2(-100), End: at2(-100)}}
				streamConn.Request(stream)
				stream.HasResponse = true
				stream.Response = decode.Response{Status: 200, Stream: decode.SSE, Header: http.Header{"Content-Type": {"text/event-stream"}}, Start: at2(-99), HeaderEnd: at2(-99)}
				streamConn.Event(stream, decode.StreamEvent{Time: at2(-98), Name: "endpoint", Data: []byte(endpoint)})
				// A server notification on the stream answers nothing.
				streamConn.Event(stream, decode.StreamEvent{Time: at2(-50), Name: "message", Data: []byte(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)})

				post := &decode.Exchange{Seq: 1, ClientSide: side, Request: decode.Request{Method: "POST", Target: endpoint, Header: http.Header{"Content-Type": {"application/json"}},
					Body: []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather","arguments":{}}}`), Start: at2(0), End: at2(1)}}
				for _, leg := range tc.legs {
					switch leg {
					case legPost:
						postConn.Request(post)
					case legAck:
						post.HasResponse = true
						post.Response = decode.Response{Status: 202, Header: http.Header{}, Start: at2(10), HeaderEnd: at2(10), End: at2(10)}
						postConn.Done(post)
					case legAnswer:
						streamConn.Event(stream, decode.StreamEvent{Time: at2(30), Name: "message", Data: []byte(answer)})
					case legClose:
						stream.Response.End = at2(40)
						stream.Err = decode.ErrConnClosed
						streamConn.Done(stream)
					}
				}
				if len(rec.started) != 1 || len(rec.ended) != 1 {
					t.Fatalf("%d calls started, %d ended; want 1 and 1", len(rec.started), len(rec.ended))
				}
				c := rec.ended[0]
				if c.MCP == nil || c.MCP.Method != "tools/call" || c.MCP.ToolName != "get_weather" || c.MCP.RequestID != "7" || c.MCP.SessionID != "9f0c1d" {
					t.Errorf("MCP = %+v", c.MCP)
				}
				if got := ms(c.End); got != tc.wantEndMs {
					t.Errorf("end at %vms, want %vms", got, tc.wantEndMs)
				}
				if c.Truncated != tc.wantTruncated || c.ErrorType != tc.wantError {
					t.Errorf("truncated %v error %q, want %v %q", c.Truncated, c.ErrorType, tc.wantTruncated, tc.wantError)
				}
				if n := len(opts.MCPSessions.waiting); n != 0 {
					t.Errorf("%d calls still waiting in the session table", n)
				}
			})
		}
	}
}

// TestMCPNotCalls: what on an MCP path is not a JSON-RPC request or
// notification makes no call, and MCP paths never reach LLM detection.
func TestMCPNotCalls(t *testing.T) {
	for _, tc := range []struct{ method, target, body string }{
		{"POST", "/mcp", `{"jsonrpc":"2.0","id":5,"result":{"roots":[]}}`},           // the client answering a server request
		{"POST", "/mcp", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`},               // a batch
		{"POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/ca`},               // cut
		{"POST", "/mcp", `{"model":"m","messages":[{"role":"user","content":"x"}]}`}, // a chat body on an MCP path
		{"DELETE", "/mcp", ``}, // session end
		{"GET", "/mcp", ``},    // a stream: watched, not a call
		{"POST", "/mcp-admin/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}]}`}, // under the prefix
	} {
		rec := &recorder{t: t}
		a := NewAssembler(&Options{MCPSessions: NewMCPSessions()}, testEndpoint, rec)
		a.Request(&decode.Exchange{Seq: 1, ClientSide: true, Request: decode.Request{Method: tc.method, Target: tc.target, Header: http.Header{}, Body: []byte(tc.body)}})
		if len(rec.started) != 0 {
			t.Errorf("%s %s %.40s: started a call", tc.method, tc.target, tc.body)
		}
	}
	// With the MCP paths emptied, the same path is an LLM path again.
	rec := &recorder{t: t}
	a := NewAssembler(&Options{MCPPaths: []string{}}, testEndpoint, rec)
	a.Request(&decode.Exchange{Seq: 1, ClientSide: true, Request: decode.Request{Method: "POST", Target: "/mcp-admin/v1/chat/completions", Header: http.Header{}, Body: []byte(`{"model":"m","messages":[]}`)}})
	if len(rec.started) != 1 || rec.started[0].MCP != nil {
		t.Errorf("with no MCP paths a chat path was not an LLM call")
	}
}

// TestMCPSessionsBound: requests whose answers never come cannot grow the
// table past its bound; those only waiting for a stream end cut short.
func TestMCPSessionsBound(t *testing.T) {
	rec := &recorder{t: t}
	opts := &Options{MCPSessions: NewMCPSessions()}
	a := NewAssembler(opts, testEndpoint, rec)
	n := maxMCPWaiting + 10
	for i := range n {
		x := &decode.Exchange{Seq: uint64(i), ClientSide: true, Request: decode.Request{Method: "POST", Target: "/messages?sessionId=s", Header: http.Header{},
			Body: fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i), Start: at2(float64(i)), End: at2(float64(i))}}
		a.Request(x)
		x.HasResponse = true
		x.Response = decode.Response{Status: 202, Header: http.Header{}, Start: x.Request.End, HeaderEnd: x.Request.End, End: x.Request.End}
		a.Done(x)
	}
	if got := len(opts.MCPSessions.waiting); got != maxMCPWaiting {
		t.Errorf("%d waiting, want the bound %d", got, maxMCPWaiting)
	}
	if len(rec.ended) != 10 {
		t.Fatalf("%d calls ended, want the 10 pushed out", len(rec.ended))
	}
	for _, c := range rec.ended {
		if !c.Truncated || c.ErrorType != "" {
			t.Errorf("a call pushed out: truncated %v error %q, want truncated and no error", c.Truncated, c.ErrorType)
		}
	}
}

// FuzzMCP pushes a request body and an answer through both transports: the
// answer as the POST's JSON body, as its event stream, cut short, and as an
// event on an HTTP+SSE stream, checking each call ends exactly once.
func FuzzMCP(f *testing.F) {
	addMCPSeeds(f)
	f.Fuzz(func(t *testing.T, req, resp []byte) {
		for mode := range 4 {
			rec := &recorder{t: t}
			opts := &Options{MCPSessions: NewMCPSessions(), CaptureInput: true, CaptureOutput: true}
			a := NewAssembler(opts, testEndpoint, rec)
			b := NewAssembler(opts, testEndpoint, rec)
			stream := &decode.Exchange{Seq: 9, ClientSide: true, Request: decode.Request{Method: "GET", Target: "/sse", Header: http.Header{}}}
			b.Request(stream)
			b.Event(stream, decode.StreamEvent{Name: "endpoint", Data: []byte("http://h/messages?sessionId=z")})
			x := &decode.Exchange{Seq: 1, ClientSide: true, Request: decode.Request{Method: "POST", Target: "/messages?sessionId=z", Header: http.Header{"Mcp-Protocol-Version": {"2025-06-18"}}, Body: req, Start: fixtureBase, End: fixtureBase}}
			a.Request(x)
			x.HasResponse = true
			x.Response = decode.Response{Status: 200, Header: http.Header{}, Start: fixtureBase, HeaderEnd: fixtureBase, End: fixtureBase.Add(time.Second)}
			switch mode {
			case 0:
				x.Response.Body = resp
			case 1, 2:
				x.Response.Stream = decode.SSE
				sp := &streamSplitter{kind: decode.SSE}
				sp.feed(append(append([]byte(nil), resp...), '\n', '\n'), 0, func(int) time.Time { return fixtureBase.Add(time.Millisecond) }, func(ev decode.StreamEvent) {
					a.Event(x, ev)
					clear(ev.Data)
				})
				if mode == 2 {
					x.Err = decode.ErrConnClosed
				}
			case 3:
				x.Response.Status = 202
				b.Event(stream, decode.StreamEvent{Time: fixtureBase.Add(time.Millisecond), Name: "message", Data: resp})
			}
			a.Done(x)
			b.Done(stream)
			a.Close()
			b.Close()
			if len(rec.ended) != len(rec.started) || len(rec.started) > 1 {
				t.Fatalf("mode %d: %d calls started, %d ended", mode, len(rec.started), len(rec.ended))
			}
			for _, c := range rec.ended {
				if c.MCP == nil || c.End.Before(c.Start) {
					t.Fatalf("mode %d: inconsistent call %+v", mode, c)
				}
			}
			if len(opts.MCPSessions.waiting) != 0 {
				t.Fatalf("mode %d: %d calls left waiting", mode, len(opts.MCPSessions.waiting))
			}
		}
	})
}

// mcpSeeds are the request and answer of each MCP fixture.
func mcpSeeds(t testing.TB) (names []string, reqs, resps [][]byte) {
	files, _ := filepath.Glob("testdata/mcp_*.txt")
	for _, p := range files {
		fx := loadFixture(t, p)
		var b []byte
		for _, ev := range fx.events {
			b = append(b, ev.raw...)
		}
		if b == nil {
			b = fx.body
		}
		names = append(names, fx.name)
		reqs = append(reqs, fx.req.Body)
		resps = append(resps, b)
	}
	return names, reqs, resps
}

func addMCPSeeds(f *testing.F) {
	_, reqs, resps := mcpSeeds(f)
	for i := range reqs {
		f.Add(reqs[i], resps[i])
	}
}

// TestMCPFuzzSeedsCurrent keeps FuzzMCP's committed corpus equal to what
// the fixtures make; -update rewrites it.
func TestMCPFuzzSeedsCurrent(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzMCP")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names, reqs, resps := mcpSeeds(t)
	if len(names) == 0 {
		t.Fatal("no MCP fixtures")
	}
	for i, name := range names {
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n[]byte(%s)\n", strconv.Quote(string(reqs[i])), strconv.Quote(string(resps[i])))
		putSeed(t, filepath.Join(dir, "seed_"+name), seed)
	}
}

// BenchmarkMCPToolCall is one whole MCP tools/call as the agent's side sees
// it over Streamable HTTP: the POST, a progress notification and the answer
// as stream events, and the exchange's end.
func BenchmarkMCPToolCall(b *testing.B) {
	req := []byte(`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Paris"},"_meta":{"progressToken":17}}}`)
	progress := []byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":17,"progress":1,"total":2}}`)
	answer := []byte(`{"jsonrpc":"2.0","id":17,"result":{"content":[{"type":"text","text":"18°C, light rain"}],"isError":false}}`)
	a := NewAssembler(&Options{MCPSessions: NewMCPSessions()}, testEndpoint, nopHandler{})
	h := http.Header{"Mcp-Session-Id": {"4NBZQ5VXQ2ZKBFZ7M5LWJ3XKQH"}, "Mcp-Protocol-Version": {"2025-06-18"}}
	respHeader := http.Header{"Content-Type": {"text/event-stream"}}
	b.SetBytes(int64(len(req) + len(progress) + len(answer)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x := &decode.Exchange{Seq: uint64(i), ClientSide: true, Request: decode.Request{Method: "POST", Target: "/mcp", Header: h, Body: req, Start: fixtureBase, End: fixtureBase}}
		a.Request(x)
		x.HasResponse = true
		x.Response = decode.Response{Status: 200, Stream: decode.SSE, Header: respHeader, Start: fixtureBase, HeaderEnd: fixtureBase}
		a.Event(x, decode.StreamEvent{Time: fixtureBase, Name: "message", Data: progress})
		a.Event(x, decode.StreamEvent{Time: fixtureBase, Name: "message", Data: answer})
		x.Response.End = fixtureBase
		a.Done(x)
	}
}

// TestMCPEndpointURI: the endpoint an HTTP+SSE stream announces, in each
// form the SDKs send, names the target the client's POSTs carry.
func TestMCPEndpointURI(t *testing.T) {
	for _, tc := range []struct{ stream, endpoint, want string }{
		{"/sse", "/sse?sessionid=ABC", "/sse?sessionid=ABC"},                             // Go SDK
		{"/sse", "/messages/?session_id=9f0c", "/messages/?session_id=9f0c"},             // Python SDK
		{"/sse", "http://127.0.0.1:8000/messages?sessionId=1", "/messages?sessionId=1"},  // an absolute URL
		{"/mcp/sse", "messages?sessionId=2", "/mcp/messages?sessionId=2"},                // relative to the stream
		{"http://proxy.internal/tools/sse", "msg?sessionId=3", "/tools/msg?sessionId=3"}, // absolute-form stream target
	} {
		if got := endpointURI(tc.stream, tc.endpoint); got != tc.want {
			t.Errorf("endpoint %q on stream %q: %q, want %q", tc.endpoint, tc.stream, got, tc.want)
		}
	}
}

// TestMCPTruncatedRequest: a POST body cut by the body limit still makes
// its call, from the members before the cut, marked truncated.
func TestMCPTruncatedRequest(t *testing.T) {
	rec := &recorder{t: t}
	a := NewAssembler(&Options{}, testEndpoint, rec)
	body := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"summarise","arguments":{"text":"a very long docum`
	a.Request(&decode.Exchange{Seq: 1, ClientSide: true, Request: decode.Request{Method: "POST", Target: "/mcp", Header: http.Header{}, Body: []byte(body), BodyTruncated: true}})
	if len(rec.started) != 1 {
		t.Fatalf("%d calls started, want 1", len(rec.started))
	}
	c := rec.started[0]
	if !c.Truncated || c.MCP.Method != "tools/call" || c.MCP.RequestID != "4" {
		t.Errorf("call truncated %v, MCP %+v", c.Truncated, c.MCP)
	}
}
