package decode

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func h2FixturePaths(t *testing.T) []string {
	var out []string
	for _, p := range fixturePaths(t) {
		if strings.HasPrefix(p, "testdata/h2_") {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("no HTTP/2 fixtures")
	}
	return out
}

// checkH2Bounded asserts the buffers of an HTTP/2 connection stay within
// its limits.
func checkH2Bounded(t testing.TB, c *Conn) {
	t.Helper()
	h := c.h2.dec
	if h == nil {
		if c.h2.heldBytes > maxSniffHeld || len(c.h2.held) > maxSniffFeeds {
			t.Errorf("sniffing holds %d bytes in %d feeds", c.h2.heldBytes, len(c.h2.held))
		}
		return
	}
	lim := c.lim
	if n := maxStreams(lim); len(h.open) > n || len(h.streams) > n {
		t.Errorf("%d open streams (%d in the map) over the limit %d", len(h.open), len(h.streams), n)
	}
	for i := range h.dirs {
		d := &h.dirs[i]
		if len(d.buf) > int(h2MaxFrameLen(lim))+9 {
			t.Errorf("frame buffer %d over %d", len(d.buf), h2MaxFrameLen(lim)+9)
		}
		if d.blk.size > lim.MaxHeaderBytes+2*lim.MaxHeaderBytes {
			t.Errorf("header block of %d bytes kept", d.blk.size)
		}
	}
	for _, s := range h.open {
		for i := range s.body {
			b := &s.body[i]
			if len(b.body) > lim.MaxBodyBytes || len(b.sse.data) > lim.MaxEventBytes || len(b.sse.line) > lim.MaxEventBytes+64 || len(b.nd.line) > lim.MaxEventBytes+1 || len(b.sniffed) > sniffLen {
				t.Errorf("stream %d body buffers over the limits", s.id)
			}
		}
	}
}

// On the HTTP/2 fixtures every byte fed is in an exchange or counted.
func TestHTTP2WireAccounting(t *testing.T) {
	for _, path := range h2FixturePaths(t) {
		f := loadFixture(t, path)
		t.Run(f.name, func(t *testing.T) {
			res, _, _ := runFixture(t, f, runOpts{split: wholeFeeds})
			if res.Stats.BytesLost > 0 {
				t.Skip("lost bytes are counted inside the frames they cut")
			}
			var fed, wire int64
			for _, op := range f.ops {
				fed += int64(len(op.data))
			}
			for _, r := range res.Records {
				if r.Request != nil {
					wire += r.Request.Wire
				}
				if r.Response != nil {
					wire += r.Response.Wire
				}
			}
			st := res.Stats
			got := wire + st.HTTP2.OtherBytes + st.BytesDiscarded + st.BytesLost
			if got != fed {
				t.Errorf("fed %d bytes; exchanges hold %d, other %d, discarded %d, lost %d", fed, wire, st.HTTP2.OtherBytes, st.BytesDiscarded, st.BytesLost)
			}
			if st.HTTP2.OtherBytes == 0 {
				t.Error("no connection-level bytes counted")
			}
		})
	}
}

// Detection: the preface in either direction, in any pieces, even after
// the server's first SETTINGS; nothing else.
func TestHTTP2Detection(t *testing.T) {
	ops := loadFixture(t, "testdata/h2_openai_chat_sse.http").ops
	serverFirst := append([]fixtureOp{ops[1], ops[0]}, ops[2:]...)
	tests := []struct {
		name       string
		ops        []fixtureOp
		swap       bool
		bytewise   bool
		http2      bool
		clientSide bool
	}{
		{"client", ops, false, false, true, true},
		{"server_bytewise", ops, true, true, true, false},
		{"server_settings_first", serverFirst, true, false, true, false},
		{"client_settings_first_bytewise", serverFirst, false, true, true, true},
		{"pri_http1", []fixtureOp{{dir: Egress, data: []byte("PRI * HTTP/1.1\r\nHost: x\r\n\r\n")}}, false, true, false, false},
		{"zero_bytes_both_ways", []fixtureOp{{dir: Egress, data: []byte{0, 0, 0}}, {dir: Ingress, data: []byte{0, 1}}, {dir: Egress, data: []byte(clientPreface)}}, false, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, base)
			c := NewConn(Limits{}, rec)
			for _, op := range tt.ops {
				dir := op.dir
				if tt.swap {
					dir = other(dir)
				}
				if tt.bytewise {
					for i := range op.data {
						c.Feed(dir, base, op.data[i:i+1])
					}
				} else {
					c.Feed(dir, base, op.data)
				}
			}
			c.Close(base)
			rec.allDone()
			if c.HTTP2() != tt.http2 {
				t.Fatalf("HTTP2() = %v", c.HTTP2())
			}
			if !tt.http2 {
				return
			}
			events := 0
			for _, r := range rec.recs {
				if r.Call == "event" {
					events++
				} else if r.ClientSide != tt.clientSide || r.Err != "" {
					t.Errorf("record %+v", r)
				}
			}
			if events != 7 || len(rec.recs) != 9 {
				t.Errorf("%d records, %d events", len(rec.recs), events)
			}
		})
	}
}

type verdict struct{ method, path, contentType string }

func TestHTTP2Verdict(t *testing.T) {
	tests := []struct {
		fixture string
		http2   bool
		want    []verdict
	}{
		{"h2_openai_chat_sse", true, []verdict{{"POST", "/v1/chat/completions", "application/json"}}},
		{"h2_grpc", true, []verdict{{"POST", "/helloworld.Greeter/SayHello", "application/grpc"}}},
		{"h2_h2c_upgrade", true, []verdict{{"POST", "/api/generate", "application/json"}}},
		{"h2_multiplexed_two_streams", true, []verdict{{"POST", "/v1/chat/completions", "application/json"}}},
		{"openai_chat_sse_chunked", false, nil},
		{"pipelined", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			f := loadFixture(t, "testdata/"+tt.fixture+".http")
			var got []verdict
			var atRequest int
			rec := newRecorder(t, base)
			c := NewConn(f.lim, rec)
			c.OnHTTP2Request(func(m, p, ct string) {
				got = append(got, verdict{m, p, ct})
				atRequest = len(rec.recs)
			})
			for _, op := range f.ops {
				if op.kind == opFeed {
					for _, b := range op.data {
						c.Feed(op.dir, base, []byte{b})
					}
				}
			}
			if c.HTTP2() != tt.http2 {
				t.Errorf("HTTP2() = %v, want %v", c.HTTP2(), tt.http2)
			}
			c.Close(base)
			if !slices.Equal(got, tt.want) {
				t.Errorf("verdict calls %v, want %v", got, tt.want)
			}
			if tt.fixture == "h2_openai_chat_sse" && atRequest != 0 {
				t.Errorf("verdict came after %d sink calls, want before the first", atRequest)
			}
		})
	}
}

// conversation renders a script and returns its feeds.
func conversation(t *testing.T, s *h2script) []fixtureOp {
	t.Helper()
	f, err := parseFixture([]byte(s.render()))
	if err != nil {
		t.Fatal(err)
	}
	return f.ops
}

func feedOps(c *Conn, ops []fixtureOp) {
	tick := base
	for _, op := range ops {
		tick = tick.Add(time.Millisecond)
		switch op.kind {
		case opFeed:
			c.Feed(op.dir, tick, op.data)
		case opSkip:
			c.Skip(op.dir, tick, op.n)
		case opClose:
			c.Close(tick)
		}
	}
	c.Close(tick.Add(time.Millisecond))
}

// sentCall is what a client sent and a server answered on one stream.
type sentCall struct {
	header map[string]string
	body   string
	events []string
}

// joinScript writes calls on streams 1, 3, 5, ... each frame its own feed,
// so a capture can be made to begin at any frame. Header values repeat
// across calls, so later blocks refer to the HPACK dynamic table.
func joinScript(calls []sentCall, order func(kv []string) []string) *h2script {
	s := newH2Script("join", "calls for joining").open()
	for i, call := range calls {
		sid := uint32(2*i + 1)
		kv := []string{":method", "POST", ":path", call.header[":path"]}
		for _, k := range []string{":authority", "content-type", "x-trace"} {
			if v, ok := call.header[k]; ok {
				kv = append(kv, k, v)
			}
		}
		if order != nil {
			kv = order(kv)
		}
		kv = append(kv, ":scheme", "https")
		s.feed(Egress).headers(Egress, sid, false, kv...)
		s.feed(Egress).data(sid, true, call.body)
		s.feed(Ingress).headers(Ingress, sid, false, ":status", "200", "content-type", "text/event-stream", "x-call", call.body)
		for j, ev := range call.events {
			s.feed(Ingress).data(sid, j == len(call.events)-1, "data: "+ev+"\n\n")
		}
	}
	return s
}

func pseudoFirst(kv []string) []string { return kv }

// authorityFirst puts :authority before :path, as Go's client does: a
// capture joined later decodes :method but fails at :authority.
func authorityFirst(kv []string) []string {
	out := []string{kv[0], kv[1]}
	for i := 4; i < len(kv); i += 2 {
		if kv[i] == ":authority" {
			out = append(out, kv[i], kv[i+1])
		}
	}
	out = append(out, kv[2], kv[3])
	for i := 4; i < len(kv); i += 2 {
		if kv[i] != ":authority" {
			out = append(out, kv[i], kv[i+1])
		}
	}
	return out
}

func joinCalls() []sentCall {
	var calls []sentCall
	paths := []string{"/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/chat/completions", "/v1/responses", "/v1/chat/completions"}
	for i, p := range paths {
		h := map[string]string{":path": p, ":authority": "api.openai.com", "content-type": "application/json"}
		if i%2 == 1 {
			h["x-trace"] = fmt.Sprintf("t%d", i/2)
		}
		calls = append(calls, sentCall{header: h, body: fmt.Sprintf(`{"call":%d}`, i), events: []string{fmt.Sprintf(`{"n":%d,"i":0}`, i), fmt.Sprintf(`{"n":%d,"i":1}`, i), "[DONE]"}})
	}
	return calls
}

// A capture that joins an HTTP/2 connection at any frame, in either
// order of pseudo-headers, never hands on a wrong header, body or event:
// what it decodes matches what was sent, and what it cannot is counted.
func TestHTTP2JoinNeverWrong(t *testing.T) {
	calls := joinCalls()
	byBody := map[string]sentCall{}
	for _, c := range calls {
		byBody[c.body] = c
	}
	for _, order := range []struct {
		name string
		fn   func([]string) []string
	}{{"path_first", pseudoFirst}, {"authority_first", authorityFirst}} {
		ops := conversation(t, joinScript(calls, order.fn))
		delivered, headLost := 0, 0
		for start := 1; start < len(ops); start++ {
			rec := &callCheck{t: t, sent: byBody}
			c := NewConn(Limits{}, rec)
			c.JoinHTTP2(Egress)
			feedOps(c, ops[start:])
			st := c.Stats()
			if st.HTTP2.JoinedMidstream != 1 {
				t.Errorf("%s from feed %d: JoinedMidstream %d", order.name, start, st.HTTP2.JoinedMidstream)
			}
			delivered += rec.done
			headLost += rec.headLost
		}
		t.Logf("%s: %d exchanges delivered over %d joins, %d with part of a head lost", order.name, delivered, len(ops)-1, headLost)
		if delivered == 0 {
			t.Errorf("%s: no exchange ever decoded after a join", order.name)
		}
	}
}

// callCheck is a Sink that checks each exchange against what was sent.
type callCheck struct {
	t        *testing.T
	sent     map[string]sentCall
	events   map[*Exchange][]string
	done     int
	headLost int
}

func (r *callCheck) Request(x *Exchange) {
	q := &x.Request
	var want sentCall
	found := false
	for _, c := range r.sent {
		if c.header[":path"] == q.Target {
			found = true
		}
	}
	if !found || q.Method != "POST" {
		r.t.Errorf("request %s %s was never sent", q.Method, q.Target)
	}
	if c, ok := r.sent[string(q.Body)]; ok {
		want = c
		if want.header[":path"] != q.Target {
			r.t.Errorf("body %s came with path %s, sent with %s", q.Body, q.Target, want.header[":path"])
		}
	} else if len(q.Body) > 0 || !q.BodyTruncated && x.Err == nil {
		r.t.Errorf("request body %q was never sent", q.Body)
	}
	for k, vs := range q.Header {
		name := strings.ToLower(k)
		if name == "host" {
			name = ":authority"
		}
		if want.header != nil && (len(vs) != 1 || want.header[name] != vs[0]) {
			r.t.Errorf("header %s: %q, sent %q", k, vs, want.header[name])
		}
	}
}

func (r *callCheck) Event(x *Exchange, ev StreamEvent) {
	if r.events == nil {
		r.events = map[*Exchange][]string{}
	}
	r.events[x] = append(r.events[x], string(ev.Data))
}

func (r *callCheck) Done(x *Exchange) {
	r.done++
	if errors.Is(x.Err, ErrGap) {
		r.headLost++
	}
	want, ok := r.sent[string(x.Request.Body)]
	if !ok {
		if len(r.events[x]) > 0 && x.Request.Body != nil {
			r.t.Errorf("events %q for an unknown call", r.events[x])
		}
		return
	}
	got := r.events[x]
	if x.Err == nil && !slices.Equal(got, want.events) || len(got) > len(want.events) || !slices.Equal(got, want.events[:len(got)]) {
		r.t.Errorf("call %s: events %q, sent %q (err %v)", want.body, got, want.events, x.Err)
	}
	if x.HasResponse {
		if x.Response.Status != 200 && x.Response.Status != 0 {
			r.t.Errorf("status %d", x.Response.Status)
		}
		if v := x.Response.Header.Get("X-Call"); v != "" && v != want.body {
			r.t.Errorf("response of %s says X-Call %s", want.body, v)
		}
	}
}

// After a join, a response whose head cannot be decoded is still taken
// for an event stream by its first bytes; the exchange is marked as having
// lost part of a head.
func TestHTTP2JoinSniffsEventStream(t *testing.T) {
	s := newH2Script("sniff", "").open()
	s.feed(Egress).headers(Egress, 1, true, ":method", "GET", ":path", "/v1/models", ":authority", "a", ":scheme", "https")
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream", "x-request-id", "r1")
	s.feed(Ingress).data(1, true, "data: one\n\n")
	cut := len(conversation(t, s))
	s.feed(Egress).headers(Egress, 3, true, ":method", "POST", ":path", "/v1/chat/completions", ":authority", "a", ":scheme", "https")
	s.feed(Ingress).headers(Ingress, 3, false, "content-type", "text/event-stream", ":status", "200")
	s.feed(Ingress).data(3, false, "da").data(3, false, "ta: {\"x\":1}\n\n")
	s.feed(Ingress).data(3, true, "data: [DONE]\n\n")
	ops := conversation(t, s)
	rec := newRecorder(t, base)
	c := NewConn(Limits{}, rec)
	c.JoinHTTP2(Egress)
	feedOps(c, ops[cut:])
	rec.allDone()
	var evs []string
	var done *record
	for i, r := range rec.recs {
		if r.Event != nil {
			evs = append(evs, r.Event.Data)
		}
		if r.Call == "done" {
			done = &rec.recs[i]
		}
	}
	if !slices.Equal(evs, []string{`{"x":1}`, "[DONE]"}) {
		t.Errorf("events %q", evs)
	}
	if done == nil || done.Response == nil || done.Response.Stream != "sse" || done.Response.Status != 0 || !strings.Contains(done.Err, "HPACK") {
		t.Errorf("done record %+v", done)
	}
	if st := c.Stats().HTTP2; st.HPACKErrors == 0 || st.JoinedMidstream != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A capture beginning inside a frame finds the next frame boundary: the
// call it cut is dropped and counted, the next one decoded whole.
func TestHTTP2JoinMidFrame(t *testing.T) {
	s := newH2Script("mid", "").open()
	s.feed(Egress).headers(Egress, 1, false, ":method", "POST", ":path", "/v1/chat/completions", ":scheme", "https", ":authority", "x").
		data(1, true, `{"model":"m","padding":"`+strings.Repeat("p", 100)+`"}`)
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream").data(1, false, "data: a\n\n").data(1, true, "data: b\n\n")
	s.feed(Egress).headers(Egress, 3, false, ":method", "POST", ":path", "/v1/embeddings", ":scheme", "https", ":authority", "y").
		data(3, true, `{"input":"hi"}`)
	s.feed(Ingress).headers(Ingress, 3, false, ":status", "200", "content-type", "application/json").data(3, true, `{"data":[]}`)
	ops := conversation(t, s)[3:]            // after the opening
	for _, from := range []int{5, 60, 100} { // inside the HEADERS frame, then the DATA payload
		rec := newRecorder(t, base)
		c := NewConn(Limits{}, rec)
		c.JoinHTTP2(Ingress) // the server's view
		tick := base
		for i, op := range ops {
			data := op.data
			if i == 0 {
				data = data[from:]
			}
			tick = tick.Add(time.Millisecond)
			c.Feed(other(op.dir), tick, data)
		}
		c.Close(tick)
		rec.allDone()
		var got []string
		for _, r := range rec.recs {
			if r.Request != nil {
				got = append(got, r.Request.Target+" "+r.Request.Body)
			}
			if r.Call == "done" {
				got = append(got, r.Err, r.Response.Body)
			}
		}
		if want := []string{`/v1/embeddings {"input":"hi"}`, "", `{"data":[]}`}; !slices.Equal(got, want) {
			t.Errorf("from %d: got %q, want %q", from, got, want)
		}
		st := c.Stats()
		if st.HTTP2.UnknownStreams != 1 || st.BytesDiscarded == 0 || st.HTTP2.JoinedMidstream != 1 {
			t.Errorf("from %d: stats %+v", from, st)
		}
	}
}

// More streams than MaxStreams: the oldest is given up and counted; a
// header block over the limit is counted and its stream dropped, while
// HPACK stays in step for the next one; a block in frames too large to
// hold is skipped and HPACK restarts.
func TestHTTP2Limits(t *testing.T) {
	s := newH2Script("limits", "").open()
	for sid := uint32(1); sid <= 9; sid += 2 {
		s.feed(Egress).headers(Egress, sid, true, ":method", "GET", ":path", fmt.Sprintf("/v1/models/%d", sid), ":scheme", "https", ":authority", "a")
	}
	for sid := uint32(9); sid >= 5; sid -= 2 {
		s.feed(Ingress).headers(Ingress, sid, false, ":status", "200", "content-type", "application/json").data(sid, true, strings.Repeat("x", 300))
	}
	s.feed(Egress).headers(Egress, 11, true, ":method", "GET", ":path", "/big", ":scheme", "https", ":authority", "a", "x-big", strings.Repeat("b", 700))
	s.feed(Egress).headers(Egress, 13, true, ":method", "GET", ":path", "/after", ":scheme", "https", ":authority", "a")
	s.feed(Ingress).headers(Ingress, 13, true, ":status", "204")
	// A block in frames too large to hold: skipped, HPACK restarted.
	s.maxFrag = 17000
	s.feed(Egress).headers(Egress, 15, true, ":method", "GET", ":path", "/huge", "x-huge", strings.Repeat("h", 40000))
	s.maxFrag = 0
	s.feed(Egress).headers(Egress, 17, true, ":method", "GET", ":path", "/later", ":scheme", "http", ":authority", "b")
	s.feed(Ingress).headers(Ingress, 17, true, ":status", "204")
	rec := newRecorder(t, base)
	c := NewConn(Limits{MaxStreams: 3, MaxBodyBytes: 100, MaxHeaderBytes: 512}, rec)
	for _, op := range conversation(t, s) {
		c.Feed(op.dir, base, op.data)
		checkH2Bounded(t, c)
	}
	c.Close(base)
	rec.allDone()
	st := c.Stats()
	if st.DroppedExchanges != 2 || st.HeadersTooLarge != 2 || st.TruncatedBodies != 3 || st.HTTP2.UnknownStreams != 0 || st.HTTP2.HPACKErrors != 0 {
		t.Errorf("stats %+v", st)
	}
	var targets []string
	for _, r := range rec.recs {
		if r.Call == "done" && r.Err == "" && r.Response != nil {
			targets = append(targets, fmt.Sprint(r.Response.Status))
		}
		if r.Request != nil {
			targets = append(targets, r.Request.Target)
		}
	}
	want := []string{"/v1/models/1", "/v1/models/3", "/v1/models/5", "/v1/models/7", "/v1/models/9", "200", "200", "200", "/after", "204", "/later", "204"}
	if !slices.Equal(targets, want) {
		t.Errorf("got %q\nwant %q", targets, want)
	}
}

// A real Go HTTP/2 client and server over h2c: the bytes on the client's
// connection, fed to a Conn, decode to the calls that were made.
func TestHTTP2RealClientServer(t *testing.T) {
	events := func(tag string) []string {
		return []string{`{"call":"` + tag + `","n":0}`, `{"call":"` + tag + `","n":1}`, `{"call":"` + tag + `","n":2}`, "[DONE]"}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tag := strings.TrimSuffix(strings.TrimPrefix(string(body), `{"tag":"`), `"}`)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Tag", tag)
		for _, ev := range events(tag) {
			fmt.Fprintf(w, "data: %s\n\n", ev)
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[]}`)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(mux, &http2.Server{})}
	go srv.Serve(ln)
	defer srv.Close()

	var mu sync.Mutex
	var conns []*recordingConn
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		rc := &recordingConn{Conn: nc}
		mu.Lock()
		conns = append(conns, rc)
		mu.Unlock()
		return rc, nil
	}}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()

	// The first call alone, so it opens the connection; then two
	// concurrent streams and a plain GET on the same connection.
	call := func(tag string) error {
		resp, err := client.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"tag":"`+tag+`"}`))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := call("first"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, tag := range []string{"a", "b"} {
		wg.Go(func() { errs <- call(tag) })
	}
	wg.Go(func() {
		resp, err := client.Get(url + "/v1/models")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		errs <- err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tr.CloseIdleConnections()

	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("%d connections, want the calls multiplexed on one", len(conns))
	}
	rec := newRecorder(t, base)
	c := NewConn(Limits{}, rec)
	var verdicts []verdict
	c.OnHTTP2Request(func(m, p, ct string) { verdicts = append(verdicts, verdict{m, p, ct}) })
	rc := conns[0]
	rc.mu.Lock()
	for _, w := range rc.log {
		c.Feed(w.dir, w.t, w.b)
	}
	rc.mu.Unlock()
	c.Close(time.Now())
	rec.allDone()
	checkH2Bounded(t, c)

	if !c.HTTP2() || !slices.Equal(verdicts, []verdict{{"POST", "/v1/chat/completions", "application/json"}}) {
		t.Errorf("HTTP2() %v, verdicts %v", c.HTTP2(), verdicts)
	}
	type got struct {
		target, body, tag string
		status            int
		events            []string
	}
	calls := map[uint64]*got{}
	var seqs []uint64
	for _, r := range rec.recs {
		switch r.Call {
		case "request":
			calls[r.Seq] = &got{target: r.Request.Target, body: r.Request.Body}
			seqs = append(seqs, r.Seq)
			if r.Request.Proto != "HTTP/2.0" || r.Request.Header["Host"] == nil {
				t.Errorf("request %+v", r.Request)
			}
		case "event":
			calls[r.Seq].events = append(calls[r.Seq].events, r.Event.Data)
		case "done":
			if r.Err != "" || r.Response == nil {
				t.Errorf("seq %d ended with %q", r.Seq, r.Err)
				continue
			}
			calls[r.Seq].status = r.Response.Status
			if v := r.Response.Header["X-Tag"]; len(v) == 1 {
				calls[r.Seq].tag = v[0]
			}
		}
	}
	if len(seqs) != 4 {
		t.Fatalf("%d exchanges, want 4: %+v", len(seqs), rec.recs)
	}
	for _, seq := range seqs {
		g := calls[seq]
		if g.status != 200 {
			t.Errorf("%s: status %d", g.target, g.status)
		}
		if g.target == "/v1/models" {
			continue
		}
		if g.body != `{"tag":"`+g.tag+`"}` || !slices.Equal(g.events, events(g.tag)) {
			t.Errorf("call %q with body %s: events %q", g.tag, g.body, g.events)
		}
	}
	if st := c.Stats(); st.BytesDiscarded != 0 || st.Malformed != 0 || st.HTTP2.HPACKErrors != 0 || st.TruncatedBodies != 0 {
		t.Errorf("stats %+v", st)
	}
}

type recordedIO struct {
	dir Direction
	t   time.Time
	b   []byte
}

// recordingConn logs what a client wrote (egress) and read (ingress), in
// the order a capture of the client process would see it.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	log []recordedIO
}

func (c *recordingConn) Write(p []byte) (int, error) {
	// Logged before it is sent, so no answer to it can be logged first.
	c.mu.Lock()
	c.log = append(c.log, recordedIO{Egress, time.Now(), bytes.Clone(p)})
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.log = append(c.log, recordedIO{Ingress, time.Now(), bytes.Clone(p[:n])})
		c.mu.Unlock()
	}
	return n, err
}
