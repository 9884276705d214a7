package export

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// pairedCalls is one request from curl to ollama on this host, as each end
// sees it: the client knows the server by name and the server sees the
// client's address IPv4-mapped, as a dual-stack socket reports it.
func pairedCalls(clientPort, startMs int, id string) (client, server *genai.Call) {
	client = &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOllama, API: "ollama.chat",
		Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "localhost", ServerPort: 11434,
			ClientAddress: "127.0.0.1", ClientPort: clientPort},
		RequestModel: "llama3.2", ResponseID: id, Stream: true,
		Start: at(startMs), End: at(startMs + 400),
	}
	server = &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOllama, API: "ollama.chat",
		Endpoint: genai.Endpoint{ClientSide: false, ServerAddress: "127.0.0.1", ServerPort: 11434,
			ClientAddress: "::ffff:127.0.0.1", ClientPort: clientPort},
		RequestModel: "llama3.2", ResponseID: id, Stream: true,
		Start: at(startMs).Add(150 * time.Microsecond), End: at(startMs + 399),
	}
	return client, server
}

func TestClientServerPairing(t *testing.T) {
	type step struct {
		client, started bool
	}
	var (
		clientStarts = step{client: true, started: true}
		clientEnds   = step{client: true}
		serverStarts = step{started: true}
		serverEnds   = step{}
	)
	orders := []struct {
		name  string
		steps []step
	}{
		{"client starts first", []step{clientStarts, serverStarts, serverEnds, clientEnds}},
		{"server ends before the client is seen", []step{serverStarts, serverEnds, clientStarts, clientEnds}},
		{"server ends first, client without start hook", []step{serverEnds, clientEnds}},
		{"client ends first", []step{clientStarts, clientEnds, serverStarts, serverEnds}},
		{"client ends first, no start hooks", []step{clientEnds, serverEnds}},
	}
	for _, proto := range protocols {
		for _, traced := range []bool{false, true} {
			for _, o := range orders {
				name := string(proto) + "/" + o.name
				if traced {
					name += "/traceparent"
				}
				t.Run(name, func(t *testing.T) {
					e, rcv := newTestExporter(t, proto, nil)
					client, server := pairedCalls(45000, 0, "r1")
					if traced {
						// The application's header travels in the request, so both ends see it.
						for _, c := range []*genai.Call{client, server} {
							c.TraceParent = "00-" + appTraceID + "-" + appSpanID + "-01"
						}
					}
					for _, s := range o.steps {
						p, c := ollama, server
						if s.client {
							p, c = curl, client
						}
						if s.started {
							e.CallStarted(p, c)
						} else {
							e.CallEnded(p, c)
						}
					}
					shutdown(t, e)

					cs, ss := oneOfKind(t, rcv, tracepb.Span_SPAN_KIND_CLIENT), oneOfKind(t, rcv, tracepb.Span_SPAN_KIND_SERVER)
					if ss.TraceID != cs.TraceID || ss.ParentSpanID != cs.SpanID {
						t.Errorf("server span %s/%s under %s; want it under client span %s/%s",
							ss.TraceID, ss.SpanID, ss.ParentSpanID, cs.TraceID, cs.SpanID)
					}
					if traced && (cs.TraceID.String() != appTraceID || cs.ParentSpanID.String() != appSpanID) {
						t.Errorf("client span in %s under %s, want the application's %s under %s",
							cs.TraceID, cs.ParentSpanID, appTraceID, appSpanID)
					}
					if !traced && cs.ParentSpanID.IsValid() {
						t.Errorf("client span has parent %s without a traceparent", cs.ParentSpanID)
					}
					if !cs.Start.Equal(client.Start) || !ss.Start.Equal(server.Start) {
						t.Error("span start times are not the calls'")
					}
					if n := e.pairs.n; n != 0 {
						t.Errorf("%d pairing slots left after shutdown", n)
					}
				})
			}
		}
	}
}

func TestPairingKeepAlive(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	c1, s1 := pairedCalls(45001, 0, "first")
	c2, s2 := pairedCalls(45001, 500, "second") // same connection, next request
	e.CallStarted(curl, c1)
	e.CallEnded(ollama, s1)
	e.CallEnded(curl, c1)
	e.CallStarted(curl, c2)
	e.CallEnded(ollama, s2)
	e.CallEnded(curl, c2)
	shutdown(t, e)

	checkOwnParents(t, rcv.WaitSpans(t, 4, waitLong), "first", "second")
}

// checkOwnParents: the server span of each response id is the child of the
// client span of the same id.
func checkOwnParents(t *testing.T, spans []otlptest.Span, ids ...string) {
	t.Helper()
	byKindID := map[tracepb.Span_SpanKind]map[string]otlptest.Span{}
	for _, s := range spans {
		if byKindID[s.Kind] == nil {
			byKindID[s.Kind] = map[string]otlptest.Span{}
		}
		byKindID[s.Kind][s.Attributes.Str("gen_ai.response.id")] = s
	}
	for _, id := range ids {
		cs, ss := byKindID[tracepb.Span_SPAN_KIND_CLIENT][id], byKindID[tracepb.Span_SPAN_KIND_SERVER][id]
		if ss.ParentSpanID != cs.SpanID || ss.TraceID != cs.TraceID {
			t.Errorf("%s: server span under %s, want its own client span %s", id, ss.ParentSpanID, cs.SpanID)
		}
	}
}

// TestPairingHTTP2Streams: calls multiplexed on one HTTP/2 connection
// share the connection's key and start within microseconds, in an order the
// two ends may not agree on; the stream number keeps each with its own.
func TestPairingHTTP2Streams(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	c1, s1 := pairedCalls(45002, 0, "stream-1")
	c3, s3 := pairedCalls(45002, 0, "stream-3")
	c1.HTTP2Stream, s1.HTTP2Stream = 1, 1
	c3.HTTP2Stream, s3.HTTP2Stream = 3, 3
	// The server read stream 3 first, and each server start is nearer
	// the other stream's client start.
	c3.Start = c1.Start.Add(10 * time.Microsecond)
	s1.Start, s3.Start = c3.Start.Add(time.Microsecond), c1.Start.Add(time.Microsecond)
	e.CallStarted(curl, c1)
	e.CallStarted(curl, c3)
	e.CallEnded(ollama, s3)
	e.CallEnded(ollama, s1)
	e.CallEnded(curl, c1)
	e.CallEnded(curl, c3)
	shutdown(t, e)

	checkOwnParents(t, rcv.WaitSpans(t, 4, waitLong), "stream-1", "stream-3")
}

func TestPairingUnmatched(t *testing.T) {
	// Spans of a call that waited in vain must go out without a shutdown.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	e, rcv := newTestExporter(t, otlptest.GRPC, func(c *Config) { c.PairWait = 50 * time.Millisecond })

	client, _ := pairedCalls(45002, 0, "client")
	_, server := pairedCalls(45003, 0, "server") // another connection
	end(e, curl, client)
	begin := time.Now()
	e.CallEnded(ollama, server)

	rcv.Wait(t, waitLong, "the unpaired server span", func() bool {
		return len(rcv.SpansOfKind(tracepb.Span_SPAN_KIND_SERVER)) == 1
	})
	if waited := time.Since(begin); waited < 50*time.Millisecond {
		t.Errorf("server span left after %v, before PairWait", waited)
	}
	ss := rcv.SpansOfKind(tracepb.Span_SPAN_KIND_SERVER)[0]
	if ss.ParentSpanID.IsValid() {
		t.Errorf("server span on another connection got parent %s", ss.ParentSpanID)
	}
	rcv.Wait(t, waitLong, "the pairing table to empty", func() bool {
		e.pairs.mu.Lock()
		defer e.pairs.mu.Unlock()
		return e.pairs.n == 0
	})
}

func TestPairingBounded(t *testing.T) {
	p := newPairing(time.Second)
	p.max = 2
	now := time.Now()
	for port := 1; port <= 3; port++ {
		c, _ := pairedCalls(port, 0, "")
		sc, _ := p.client(c, false, now)
		if got := sc.IsValid(); got != (port <= 2) {
			t.Errorf("call %d reserved a span: %v, want %v", port, got, port <= 2)
		}
	}
	if p.n != 2 {
		t.Errorf("%d slots, want the bound 2", p.n)
	}
	p.expire(now.Add(openCallLimit + time.Second))
	if p.n != 0 || len(p.slots) != 0 {
		t.Errorf("%d slots after expiry", p.n)
	}
}

func TestPairingNeedsPorts(t *testing.T) {
	p := newPairing(time.Second)
	c, s := pairedCalls(0, 0, "")
	if sc, _ := p.client(c, true, time.Now()); sc.IsValid() {
		t.Error("reserved a span for a call without a client port")
	}
	if parent, held := p.server(nil, s, time.Now()); held || parent.IsValid() {
		t.Error("held a server call that cannot be paired")
	}
	var zero trace.SpanContext
	if got := reserveClientSpan(c); got.TraceID() == zero.TraceID() {
		t.Error("reserved span without a trace ID")
	}
}

func oneOfKind(t *testing.T, rcv *otlptest.Receiver, k tracepb.Span_SpanKind) otlptest.Span {
	t.Helper()
	spans := rcv.SpansOfKind(k)
	if len(spans) != 1 {
		t.Fatalf("%d %v spans, want 1", len(spans), k)
	}
	return spans[0]
}
