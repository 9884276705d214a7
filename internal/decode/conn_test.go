package decode

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// convo drives one Conn by hand in tests; times are milliseconds from base.
type convo struct {
	t   *testing.T
	c   *Conn
	rec *recorder
	now int64
}

var base = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newConvo(t *testing.T, lim Limits) *convo {
	rec := newRecorder(t, base)
	rec.headers = false
	return &convo{t: t, c: NewConn(lim, rec), rec: rec}
}

func (v *convo) at(ms int64) time.Time { return base.Add(time.Duration(ms)) }

func (v *convo) feed(dir Direction, s string) {
	v.now++
	v.c.Feed(dir, v.at(v.now), []byte(s))
}

func (v *convo) calls(kind string) []record {
	var out []record
	for _, r := range v.rec.recs {
		if r.Call == kind {
			out = append(out, r)
		}
	}
	return out
}

func (v *convo) close() {
	v.now++
	v.c.Close(v.at(v.now))
	v.rec.allDone()
	checkBounded(v.t, v.c)
}

const (
	getReq  = "GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n"
	okResp  = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
	sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
)

// Event times are the time of the Feed holding the byte that completed the
// event, checked against offsets worked out by hand.
func TestEventTimeIsTimeOfLastByte(t *testing.T) {
	for _, tc := range []struct {
		name, head, body string
		ends             []int // offset in body of each event's last byte
	}{
		{"sse", sseHead, "data: a\n\n: ping\n\ndata: b\r\n\r\nevent: x\ndata: c\rdata: d\r\r", []int{8, 26, 53}},
		{"ndjson", "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n", "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}\n", []int{7, 17, 25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newConvo(t, Limits{})
			v.feed(Egress, getReq)
			v.feed(Ingress, tc.head)
			start := v.now
			for i := 0; i < len(tc.body); i++ {
				v.feed(Ingress, tc.body[i:i+1])
			}
			evs := v.calls("event")
			if len(evs) != len(tc.ends) {
				t.Fatalf("%d events, want %d", len(evs), len(tc.ends))
			}
			for i, ev := range evs {
				if want := start + 1 + int64(tc.ends[i]); ev.Event.Time != want {
					t.Errorf("event %d (%q) at %d, want %d", i, ev.Event.Data, ev.Event.Time, want)
				}
			}
			v.close()
		})
	}
}

func TestRequestAndResponseTimes(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 4\r\n") // 1
	v.feed(Egress, "\r\nab")                                                      // 2
	v.feed(Egress, "cd")                                                          // 3
	v.feed(Ingress, "HTTP/1.1 200 OK\r\n")                                        // 4
	v.feed(Ingress, "Content-Type: text/event-stream\r\n\r\nda")                  // 5
	v.feed(Ingress, "ta: x\n\n")                                                  // 6
	v.close()                                                                     // 7
	q := v.calls("request")[0].Request
	if q.Start != 1 || q.End != 3 || q.Wire != 61 {
		t.Errorf("request times %d-%d wire %d", q.Start, q.End, q.Wire)
	}
	d := v.calls("done")[0]
	if d.Response.Start != 4 || d.Response.HeaderEnd != 5 || d.Response.End != 6 {
		t.Errorf("response times %d/%d/%d", d.Response.Start, d.Response.HeaderEnd, d.Response.End)
	}
	// A close-delimited stream completes at Close without error.
	if d.Err != "" || d.Response.Events != 1 {
		t.Errorf("err %q events %d", d.Err, d.Response.Events)
	}
}

func TestServerSide(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Ingress, getReq)
	v.feed(Egress, okResp)
	v.close()
	d := v.calls("done")
	if len(d) != 1 || d[0].ClientSide || d[0].Response.Status != 200 {
		t.Fatalf("server side: %+v", d)
	}
	v = newConvo(t, Limits{})
	v.feed(Egress, getReq)
	v.feed(Ingress, okResp)
	v.close()
	if d := v.calls("done"); len(d) != 1 || !d[0].ClientSide {
		t.Fatalf("client side: %+v", d)
	}
}

func TestSkipInsideBodyKeepsSync(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123")
	v.c.Skip(Egress, v.at(v.now), 3)
	v.feed(Egress, "789"+getReq)
	v.feed(Ingress, okResp+okResp)
	v.close()
	reqs := v.calls("request")
	if len(reqs) != 2 || reqs[0].Request.Body != "0123" || !reqs[0].Request.Truncated || reqs[1].Request.Truncated {
		t.Fatalf("requests: %+v %+v", reqs[0].Request, reqs)
	}
	for _, d := range v.calls("done") {
		if d.Err != "" || d.Response == nil {
			t.Errorf("seq %d: %q", d.Seq, d.Err)
		}
	}
	if s := v.c.Stats(); s.BytesLost != 3 || s.TruncatedBodies != 1 || s.Gaps != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A loss that runs past the end of a body also eats the start of the next
// message: the body is done, and the next request is lost (a placeholder
// absorbs its response so later pairs stay right).
func TestSkipPastBodyEnd(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, "POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\n01")
	v.c.Skip(Egress, v.at(v.now), 2+10) // 2 body bytes and 10 of the next request
	v.feed(Egress, "ion HTTP/1.1\r\n\r\n")
	v.feed(Ingress, okResp+okResp)
	v.feed(Egress, "GET /b HTTP/1.1\r\n\r\n")
	v.feed(Ingress, okResp)
	v.close()
	reqs, dones := v.calls("request"), v.calls("done")
	if len(reqs) != 2 || reqs[0].Request.Target != "/a" || reqs[1].Request.Target != "/b" {
		t.Fatalf("requests %+v", reqs)
	}
	for _, d := range dones {
		if d.Err != "" || d.Response == nil {
			t.Errorf("seq %d: %q", d.Seq, d.Err)
		}
	}
	if s := v.c.Stats(); s.OrphanResponses != 1 || s.Gaps != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestSkipInHeadResyncs(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, getReq)
	v.feed(Ingress, "HTTP/1.1 200 OK\r\nContent-")
	v.c.Skip(Ingress, v.at(v.now), 10)
	v.feed(Ingress, ": 2\r\n\r\n{}")
	v.feed(Egress, "GET /next HTTP/1.1\r\n\r\n")
	v.feed(Ingress, okResp)
	v.close()
	d := v.calls("done")
	if len(d) != 2 || !errors.Is(errFromRecord(d[0]), ErrGap) || d[0].Response != nil || d[1].Err != "" || d[1].Response.Status != 200 {
		t.Fatalf("dones %+v", d)
	}
}

func errFromRecord(r record) error {
	if r.Err == ErrGap.Error() {
		return ErrGap
	}
	return errors.New(r.Err)
}

// A loss in a chunk-size line of a request cuts the request (ErrGap) but
// its response is still read and paired.
func TestSkipInRequestChunkLine(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
	v.c.Skip(Egress, v.at(v.now), 5)
	v.feed(Egress, "zzz\r\n0\r\n\r\n")
	v.feed(Ingress, okResp)
	v.feed(Egress, getReq)
	v.feed(Ingress, okResp)
	v.close()
	reqs, d := v.calls("request"), v.calls("done")
	if len(reqs) != 2 || reqs[0].Request.Body != "abc" || !reqs[0].Request.Truncated {
		t.Fatalf("requests %+v", reqs)
	}
	if len(d) != 2 || !strings.Contains(d[0].Err, ErrGap.Error()) || d[0].Response == nil || d[1].Err != "" {
		t.Fatalf("dones %+v", d)
	}
}

func TestMaxPendingDropsOldest(t *testing.T) {
	v := newConvo(t, Limits{MaxPending: 2})
	v.feed(Egress, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n")
	d := v.calls("done")
	if len(d) != 1 || d[0].Seq != 0 || d[0].Err != ErrDropped.Error() {
		t.Fatalf("dones %+v", d)
	}
	v.feed(Ingress, okResp+okResp)
	v.close()
	if s := v.c.Stats(); s.DroppedExchanges != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A server may answer before the request body is complete (an early 413):
// the request goes out with what was read, marked truncated, and the rest
// of its body is still framed so the next request is found.
func TestResponseBeforeRequestEnds(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, "POST /big HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234")
	v.feed(Ingress, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
	v.feed(Egress, "56789"+getReq)
	v.feed(Ingress, okResp)
	v.close()
	reqs, d := v.calls("request"), v.calls("done")
	if len(reqs) != 2 || reqs[0].Request.Body != "01234" || !reqs[0].Request.Truncated || reqs[1].Request.Target != "/api/version" {
		t.Fatalf("requests %+v", reqs)
	}
	if len(d) != 2 || d[0].Response.Status != 413 || d[1].Response.Status != 200 {
		t.Fatalf("dones %+v", d)
	}
}

func TestInterimResponses(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, getReq)
	v.feed(Ingress, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"+okResp)
	v.close()
	if d := v.calls("done"); len(d) != 1 || d[0].Response.Status != 200 || d[0].Response.Body != "{}" {
		t.Fatalf("dones %+v", d)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	v := newConvo(t, Limits{MaxHeaderBytes: 256})
	v.feed(Egress, getReq)
	v.feed(Ingress, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 400)+"\r\nContent-Length: 2\r\n\r\n{}")
	v.feed(Egress, getReq)
	v.feed(Ingress, okResp)
	v.close()
	d := v.calls("done")
	if len(d) != 2 || !strings.Contains(d[0].Err, ErrHeaderTooLarge.Error()) || d[1].Err != "" {
		t.Fatalf("dones %+v", d)
	}
	if s := v.c.Stats(); s.HeadersTooLarge != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A request whose head is readable but whose framing is not (two
// differing Content-Lengths, an invalid one) is still answered by the
// server: it goes on cut, with what is known, and pairs with that answer,
// so the next response pairs correctly too.
func TestMalformedRequestKeepsPairing(t *testing.T) {
	for _, cl := range []string{"Content-Length: nope\r\n", "Content-Length: 5\r\nContent-Length: 6\r\n"} {
		v := newConvo(t, Limits{})
		v.feed(Egress, getReq)
		v.feed(Ingress, okResp)
		v.feed(Egress, "POST /x HTTP/1.1\r\n"+cl+"\r\n")
		v.feed(Ingress, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		v.feed(Egress, "GET /y HTTP/1.1\r\n\r\n")
		v.feed(Ingress, okResp)
		v.close()
		d, q := v.calls("done"), v.calls("request")
		if len(d) != 3 || len(q) != 3 || d[1].Response.Status != 400 || d[2].Response.Status != 200 || q[2].Request.Target != "/y" {
			t.Fatalf("%q: dones %+v", cl, d)
		}
		if q[1].Request.Target != "/x" || !q[1].Request.Truncated || q[1].Request.Start != 3 || !strings.Contains(d[1].Err, ErrMalformed.Error()) {
			t.Errorf("%q: cut request %+v, err %q", cl, q[1].Request, d[1].Err)
		}
		if s := v.c.Stats(); s.Malformed != 1 || s.OrphanResponses != 0 || s.TruncatedBodies != 1 {
			t.Errorf("%q: stats %+v", cl, s)
		}
	}
}

// A request line that cannot be read leaves nothing to report but the
// count; a placeholder takes its answer so the next response pairs.
func TestUnreadableRequestLineIsCounted(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, getReq)
	v.feed(Ingress, okResp)
	v.feed(Egress, "POST /x y HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
	v.feed(Ingress, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
	v.feed(Egress, "GET /y HTTP/1.1\r\n\r\n")
	v.feed(Ingress, okResp)
	v.close()
	d := v.calls("done")
	if len(d) != 2 || d[1].Response.Status != 200 || v.calls("request")[1].Request.Target != "/y" {
		t.Fatalf("dones %+v", d)
	}
	if s := v.c.Stats(); s.Malformed != 1 || s.OrphanResponses != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A real call with one 70 KiB header (over the 64 KiB default) is still
// reported: cut after the fields read before it, paired with its response,
// which is read in full.
func TestRequestHeadOverLimitStillPairs(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n")
	v.feed(Egress, "X-Trace-Baggage: "+strings.Repeat("b", 70<<10)+"\r\n")
	v.feed(Egress, "Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"model\":\"gpt-4\"}")
	sse := "data: {\"a\":1}\n\ndata: [DONE]\n\n"
	v.feed(Ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s", len(sse), sse))
	v.feed(Egress, getReq)
	v.feed(Ingress, okResp)
	v.close()
	q, d := v.calls("request"), v.calls("done")
	if len(q) != 2 || len(d) != 2 {
		t.Fatalf("requests %+v dones %+v", q, d)
	}
	r := q[0].Request
	if r.Method != "POST" || r.Target != "/v1/chat/completions" || !r.Truncated || r.Start != 1 || r.End != 1 {
		t.Errorf("cut request %+v", r)
	}
	if !strings.Contains(d[0].Err, ErrHeaderTooLarge.Error()) || d[0].Response.Events != 2 || d[1].Err != "" || d[1].Response.Body != "{}" {
		t.Errorf("dones %+v", d)
	}
	if s := v.c.Stats(); s.HeadersTooLarge != 1 || s.TruncatedBodies != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, getReq+"GET /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc")
	v.feed(Ingress, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
	v.close()
	d := v.calls("done")
	if len(d) != 3 {
		t.Fatalf("dones %+v", d)
	}
	for _, r := range d {
		if r.Err != ErrConnClosed.Error() {
			t.Errorf("seq %d: %q", r.Seq, r.Err)
		}
	}
	if !d[0].Response.Truncated || d[0].Response.Body != "abc" {
		t.Errorf("cut response %+v", d[0].Response)
	}
	if q := v.calls("request")[2].Request; q.Body != "abc" || !q.Truncated {
		t.Errorf("cut request %+v", q)
	}
	v.c.Feed(Egress, v.at(100), []byte("late"))
	if s := v.c.Stats(); s.BytesDiscarded != 4 {
		t.Errorf("stats %+v", s)
	}
}

// The HTTP/2 preface switches the connection to HTTP/2 decoding; it is
// never read as an HTTP/1.x request.
func TestHTTP2PrefaceIsNotHTTP1(t *testing.T) {
	v := newConvo(t, Limits{})
	v.feed(Egress, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00")
	v.close()
	if len(v.rec.recs) != 0 || !v.c.HTTP2() || v.c.Stats().HTTP2.OtherBytes != 24+9+18 || v.c.Stats().Malformed != 0 {
		t.Fatalf("records %+v stats %+v", v.rec.recs, v.c.Stats())
	}
}

// A small gzip body that inflates far past MaxBodyBytes stops being
// decompressed at the limit.
func TestGzipBombStopsAtLimit(t *testing.T) {
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
	chunk := make([]byte, 1<<20)
	for i := 0; i < 64; i++ { // 64 MiB of zeros
		zw.Write(chunk)
	}
	zw.Close()
	v := newConvo(t, Limits{MaxBodyBytes: 64 << 10})
	v.feed(Egress, getReq)
	start := time.Now()
	v.feed(Ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", zb.Len())+zb.String())
	v.close()
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	d := v.calls("done")
	if len(d) != 1 || len(d[0].Response.Body) != 64<<10 || !d[0].Response.Truncated || d[0].Err != "" {
		t.Fatalf("done %d bytes truncated=%v err=%q", len(d[0].Response.Body), d[0].Response.Truncated, d[0].Err)
	}
}

func TestCorruptGzipIsCounted(t *testing.T) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(`{"ok":true,"padding":"` + strings.Repeat("abc", 100) + `"}`))
	zw.Close()
	b := zb.Bytes()
	b[len(b)-6] ^= 0xff // the stored length no longer matches
	v := newConvo(t, Limits{})
	v.feed(Egress, getReq)
	v.feed(Ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(b))+string(b))
	v.feed(Egress, getReq)
	v.feed(Ingress, okResp)
	v.close()
	d := v.calls("done")
	if len(d) != 2 || !d[0].Response.Truncated || d[1].Err != "" {
		t.Fatalf("dones %+v", d)
	}
	if s := v.c.Stats(); s.DecodeErrors != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestBodyOutlivesFeedBuffer(t *testing.T) {
	v := newConvo(t, Limits{})
	rec := &keepSink{}
	v.c = NewConn(Limits{}, rec)
	buf := []byte("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
	v.c.Feed(Egress, base, buf)
	for i := range buf {
		buf[i] = 'X'
	}
	if len(rec.xs) != 1 || string(rec.xs[0].Request.Body) != "hello" || rec.xs[0].Request.Target != "/a" || rec.xs[0].Request.Header.Get("Content-Length") != "5" {
		t.Fatalf("kept request changed with the feed buffer: %+v", rec.xs)
	}
}

type keepSink struct{ xs []*Exchange }

func (k *keepSink) Request(x *Exchange)              { k.xs = append(k.xs, x) }
func (k *keepSink) Event(x *Exchange, _ StreamEvent) {}
func (k *keepSink) Done(x *Exchange)                 {}

// TestHandOverRequests checks that a Conn whose sink is a RequestTaker
// shows it the same exchanges, HTTP/1.x and HTTP/2 fixtures alike, and clears
// a request's header and body from the Exchange once Sink.Request returns.
func TestHandOverRequests(t *testing.T) {
	for _, path := range fixturePaths(t) {
		f := loadFixture(t, path)
		t.Run(f.name, func(t *testing.T) {
			kept, _, _ := runFixture(t, f, runOpts{split: wholeFeeds})
			handed, _, _ := runFixture(t, f, runOpts{split: wholeFeeds, handOver: true})
			if !reflect.DeepEqual(kept, handed) {
				t.Errorf("handing requests over changed what the sink saw:\n%+v\nwant\n%+v", handed, kept)
			}
		})
	}
	cases := []struct {
		name     string
		handOver bool
	}{
		{"kept until done", false},
		{"handed over", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &keepSink{}
			var sink Sink = rec
			if tc.handOver {
				sink = takingSink{rec}
			}
			c := NewConn(Limits{}, sink)
			c.Feed(Egress, base, []byte("POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"))
			c.Feed(Ingress, base, []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"))
			if len(rec.xs) != 1 {
				t.Fatalf("%d requests, want 1", len(rec.xs))
			}
			r := &rec.xs[0].Request
			if r.Method != "POST" || r.Target != "/v1/chat" || r.WireBytes == 0 {
				t.Errorf("request line or size lost: %+v", r)
			}
			if held := r.Header != nil || r.Body != nil; held == tc.handOver {
				t.Errorf("header %v and body %q held while the response streams, want held %v", r.Header, r.Body, !tc.handOver)
			}
		})
	}
}

// takingSink makes any sink a RequestTaker.
type takingSink struct{ Sink }

func (takingSink) TakesRequests() {}
