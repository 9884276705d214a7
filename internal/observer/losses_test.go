package observer

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/decode"
	"github.com/llm-observer/llm-observer/internal/discover"
)

// step is one thing the capture reports on a connection: bytes in one
// direction, or (lost > 0) that many bytes of it lost before the next.
type step struct {
	dir  capture.Direction
	data string
	lost int
}

func out(s string) step  { return step{dir: capture.Egress, data: s} }
func in(s string) step   { return step{dir: capture.Ingress, data: s} }
func lostIn(n int) step  { return step{dir: capture.Ingress, lost: n} }
func lostOut(n int) step { return step{dir: capture.Egress, lost: n} }

// replay feeds a client connection's steps through the agent as capture
// events (offsets jump over lost bytes), then closes it unless open.
func replay(a *Agent, id uint64, steps []step, open bool) {
	key := capture.ConnKey{PID: uint32(os.Getpid()), FD: int32(100 + id), ID: id}
	t := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	a.Handle(&capture.Event{Kind: capture.Open, Conn: key, Comm: "client", Role: capture.RoleClient, Time: t,
		Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort("127.0.0.1:8000")})
	var off [2]uint64
	for i, s := range steps {
		if s.lost > 0 {
			off[s.dir] += uint64(s.lost)
			continue
		}
		a.Handle(&capture.Event{Kind: capture.Data, Conn: key, Comm: "client", Dir: s.dir, Role: capture.RoleClient,
			Offset: off[s.dir], Time: t.Add(time.Duration(i+1) * time.Millisecond), Data: []byte(s.data)})
		off[s.dir] += uint64(len(s.data))
	}
	if !open {
		a.Handle(&capture.Event{Kind: capture.Close, Conn: key, Time: t.Add(time.Second)})
	}
}

const (
	chatReq = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\nContent-Length: 56\r\n\r\n" +
		`{"model":"m","messages":[{"role":"user","content":"x"}]}`
	modelsReq = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
	okJSON    = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
)

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func withLength(head, body string) string {
	return fmt.Sprintf("%sContent-Length: %d\r\n\r\n%s", head, len(body), body)
}

// lossCases holds one conversation per loss counter of decode.Stats and
// genai.Stats, and the reason each must raise.
func lossCases() []struct {
	metric, reason string
	steps          []step
} {
	corrupt := []byte(gzipped(`{"id":"x","choices":[]}`))
	corrupt[len(corrupt)-6] ^= 0xff
	sse := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	return []struct {
		metric, reason string
		steps          []step
	}{
		{decodeLosses, "malformed", []step{out(modelsReq), in("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")}},
		{decodeLosses, "headers_too_large", []step{out("POST /v1/chat/completions HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n"), in(okJSON)}},
		{decodeLosses, "gaps", []step{out(modelsReq), in("HTTP/1.1 200 OK\r\n"), lostIn(10), in("\r\n\r\n")}},
		{decodeLosses, "truncated_bodies", []step{out(modelsReq), in("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12"), lostIn(3), in("67890")}},
		{decodeLosses, "truncated_events", []step{out(chatReq), in(withLength(sse, "data: "+strings.Repeat("e", 300)+"\n\n"))}},
		{decodeLosses, "decode_errors", []step{out(chatReq), in(withLength("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n", string(corrupt)))}},
		{decodeLosses, "unsupported_encodings", []step{out(modelsReq), in(withLength("HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br\r\n", "xx"))}},
		{decodeLosses, "orphan_responses", []step{out(modelsReq), in(okJSON), in(okJSON)}},
		{decodeLosses, "event_stream_crc_errors", []step{out(chatReq), in(esBadCRC)}},
		{decodeLosses, "event_stream_prelude_errors", []step{out(chatReq), in(esBadPrelude)}},
		{decodeLosses, "event_stream_malformed", []step{out(chatReq), in(esBadHeader)}},
		{decodeLosses, "dropped_exchanges", []step{out(modelsReq + modelsReq + modelsReq)}},
		{decodeLostBytes, "discarded", []step{out("garbage\r\n" + modelsReq), in(okJSON)}},
		{decodeLostBytes, "lost", []step{out(modelsReq), lostIn(5), in(okJSON)}},
		{decodeLostBytes, "tunneled", []step{out(modelsReq), in("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), in("frames")}},
		{genaiLosses, "unparsed", []step{out(chatReq), in(withLength("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", "not json"))}},
		{genaiRequests, "ignored", []step{out(modelsReq), in(okJSON)}},
		{genaiRequests, "calls", []step{out(chatReq), in(okJSON)}},
		{genaiRequests, "worker_hops", []step{out(withLength("POST /completion HTTP/1.1\r\nHost: 127.0.0.1:37261\r\nContent-Type: application/json\r\n", `{"Prompt":"x","Format":null,"Images":null,"Options":{}}`)), in(okJSON)}},
	}
}

func sampleValue(samples []SelfSample, name, reason string) (float64, bool) {
	for _, s := range samples {
		if s.Name == name && s.Reason == reason {
			return s.Value, true
		}
	}
	return 0, false
}

// Each loss kind, fed end to end through the agent, shows up as its own
// labelled self-metric, summed over closed connections and open ones.
func TestEveryLossIsExported(t *testing.T) {
	procs, err := discover.NewTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range lossCases() {
		t.Run(tc.reason, func(t *testing.T) {
			lim := decode.Limits{MaxEventBytes: 100, MaxPending: 2}
			a := New(Config{Limits: lim}, procs, nil, &recorder{})
			before := SelfSamples(a, nil)
			if v, ok := sampleValue(before, tc.metric, tc.reason); !ok || v != 0 {
				t.Fatalf("%s{reason=%q} before any traffic: %v, present %v", tc.metric, tc.reason, v, ok)
			}
			// Once on a connection that closes, once on one still open.
			replay(a, uint64(2*i+1), tc.steps, false)
			closed, _ := sampleValue(SelfSamples(a, nil), tc.metric, tc.reason)
			if closed < 1 {
				t.Fatalf("%s{reason=%q} = %v after a closed connection", tc.metric, tc.reason, closed)
			}
			replay(a, uint64(2*i+2), tc.steps, true)
			both, _ := sampleValue(SelfSamples(a, nil), tc.metric, tc.reason)
			if both <= closed {
				t.Errorf("%s{reason=%q} = %v with an open connection too, was %v", tc.metric, tc.reason, both, closed)
			}
		})
	}
}

// The same counters leave over OTLP as counters with a reason attribute.
func TestLossesOverOTel(t *testing.T) {
	procs, err := discover.NewTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{}, procs, nil, &recorder{})
	replay(a, 1, []step{out(modelsReq), in(okJSON), in(okJSON)}, false)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	if err := RegisterSelfMetrics(mp.Meter("test"), a, nil); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != decodeLosses {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[float64])
			if !ok || !sum.IsMonotonic {
				t.Fatalf("%s is %T, want a monotonic sum", m.Name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				if r, _ := dp.Attributes.Value(attribute.Key("reason")); r.AsString() == "orphan_responses" {
					found = dp.Value == 1
				}
			}
		}
	}
	if !found {
		t.Errorf("no %s{reason=orphan_responses} = 1 in %+v", decodeLosses, rm)
	}
}

// A successful call whose request carries one 70 KiB header (over the
// decoder's 64 KiB limit) is reported, marked truncated, with its path,
// process and timing, and its response read in full; it is never an error.
func TestCallWithHugeHeaderIsReported(t *testing.T) {
	a, rec := newAgent(t)
	body := `{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`
	replay(a, 1, []step{
		out("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nCookie: " + strings.Repeat("c", 70<<10) + "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
		in(withLength("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", body)),
	}, false)
	if len(rec.ended) != 1 {
		t.Fatalf("%d calls, want 1", len(rec.ended))
	}
	c := rec.ended[0]
	if c.Path != "/v1/chat/completions" || !c.Truncated || c.ErrorType != "" || c.ResponseModel != "gpt-4o" || c.Start.IsZero() || !c.End.After(c.Start) {
		t.Errorf("call %+v", c)
	}
	if c.Usage.OutputTokens == nil || *c.Usage.OutputTokens != 1 {
		t.Errorf("usage %+v", c.Usage)
	}
	if rec.procs[0].PID != os.Getpid() {
		t.Errorf("process %+v", rec.procs[0])
	}
	if v, _ := sampleValue(SelfSamples(a, nil), decodeLosses, "headers_too_large"); v != 1 {
		t.Errorf("headers_too_large = %v", v)
	}
}

// Every counter of decode.Stats and genai.Stats has a conversation above,
// so a counter added later cannot go unexported unnoticed. HTTP/2's
// counters and Desyncs are fed by their own sources (HTTP/2 connections,
// the capture's loss reports) and checked there.
func TestEveryLossHasACase(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range lossCases() {
		covered[tc.metric+"/"+tc.reason] = true
	}
	procs, err := discover.NewTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range SelfSamples(New(Config{}, procs, nil, &recorder{}), nil) {
		switch s.Name {
		case decodeLosses, decodeLostBytes, genaiLosses, genaiRequests:
		default:
			continue
		}
		if strings.HasPrefix(s.Reason, "http2_") || s.Reason == "desyncs" || s.Reason == "requests" {
			continue
		}
		if !covered[s.Name+"/"+s.Reason] {
			t.Errorf("%s{reason=%q} has no conversation in lossCases", s.Name, s.Reason)
		}
	}
}
