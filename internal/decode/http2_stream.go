package decode

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// h2stream is one HTTP/2 stream: an exchange, or a gRPC call that is
// only followed to its end.
type h2stream struct {
	id       uint32
	x        *exchange // nil for a gRPC stream
	reqEnded bool      // the client ended its side
	respHead bool      // the final response head was read
	headLost bool      // a header block of the stream decoded only in part
	body     [2]h2body // request, response
}

// side returns the message that d carries for the stream.
func (s *h2stream) side(d *h2dir) *h2body {
	if d.dir == d.h.client {
		return &s.body[0]
	}
	return &s.body[1]
}

// data takes DATA payload bytes that d read for the stream.
func (s *h2stream) data(d *h2dir, p []byte) {
	if s.x != nil {
		s.side(d).write(p, d.t)
	}
}

// bodyGap says bytes of the stream's message in d's direction were lost.
func (s *h2stream) bodyGap(d *h2dir) {
	if s.x != nil {
		s.side(d).gap()
	}
}

// ended handles END_STREAM from d's side.
func (s *h2stream) ended(d *h2dir) {
	if d.dir == d.h.client {
		d.h.requestEnded(s)
	} else {
		d.h.responseEnded(s)
	}
}

// h2body is the body of one message of a stream, decoded as half decodes
// an HTTP/1.x body: content coding undone, and a streamed response cut
// into events stamped with the time of the write that completed them.
type h2body struct {
	h       *h2conn
	x       *exchange
	resp    bool
	on      bool // taking body bytes: the head was read and the message is not over
	t       time.Time
	body    []byte
	trunc   bool // the body lost bytes
	full    bool // no more body bytes are decoded
	kind    StreamKind
	sniff   bool   // the head was lost: the format is told from the first bytes
	sniffed []byte // first bytes held until the format is told
	dec     bodyDecoder
	sse     sseParser
	nd      ndjsonParser
	es      esParser
	wire    int64
	last    time.Time
	trailer http.Header
}

// begin sets the body up after its head, as half.begin does.
func (b *h2body) begin(h *h2conn, x *exchange, resp bool, hdr http.Header, kind StreamKind) {
	b.h, b.x, b.resp, b.on, b.kind = h, x, resp, true, kind
	switch cd := contentCoding(hdr["Content-Encoding"]); cd {
	case gzipCoding, deflateCoding, brotliCoding, zstdCoding:
		b.dec = newBodyDecoder(cd, b, h.c.lim.MaxWindowBytes)
	case unsupportedCoding:
		h.c.stats.UnsupportedEncodings++
		b.kind = NotStreamed
	}
	b.setKind(b.kind)
}

func (b *h2body) setKind(kind StreamKind) {
	b.kind = kind
	if b.resp {
		b.x.Response.Stream = kind
	}
	lim := b.h.c.lim
	switch kind {
	case SSE:
		b.sse.init(lim.MaxEventBytes, b)
	case NDJSON:
		b.nd.init(lim.MaxEventBytes, b)
	case EventStream:
		b.es.init(lim.MaxEventBytes, &b.h.c.stats, b)
	}
}

// sseStarts are how an event stream may begin; a response whose head was
// lost is taken for one only when its body starts so.
var sseStarts = []string{"data:", "event:", "id:", ":", "retry:"}

const sniffLen = 6

// tell decides the format of a body whose head was lost, from its first
// bytes; final says no more will come.
func (b *h2body) tell(final bool) {
	p := b.sniffed
	if len(p) < sniffLen && !final {
		return
	}
	b.sniff = false
	for _, s := range sseStarts {
		if strings.HasPrefix(string(p), s) || final && len(p) < len(s) && len(p) > 0 && strings.HasPrefix(s, string(p)) {
			b.setKind(SSE)
			break
		}
	}
	b.sniffed = nil
	b.bytes(p)
}

func (b *h2body) write(p []byte, t time.Time) {
	if !b.on || b.full {
		return
	}
	b.t = t
	if b.sniff {
		k := min(len(p), sniffLen-len(b.sniffed))
		b.sniffed = append(b.sniffed, p[:k]...)
		if b.tell(false); b.sniff {
			return
		}
		p = p[k:]
	}
	b.bytes(p)
}

// bytes takes body bytes as framed on the wire.
func (b *h2body) bytes(p []byte) {
	if len(p) == 0 || b.full {
		return
	}
	if b.dec != nil {
		if err := b.dec.write(p); err != nil {
			b.h.c.stats.DecodeErrors++
			b.truncate()
		}
		return
	}
	b.out(p)
}

// out takes decoded body bytes; false stops the decoder.
func (b *h2body) out(p []byte) bool {
	switch b.kind {
	case SSE:
		b.sse.write(p, b.t)
		return true
	case NDJSON:
		b.nd.write(p, b.t)
		return true
	case EventStream:
		b.es.write(p, b.t)
		return true
	}
	var cut bool
	if b.body, cut = appendCapped(b.body, p, b.h.c.lim.MaxBodyBytes); cut {
		b.truncate()
		return false
	}
	return true
}

// event hands a stream event of the response to the sink.
func (b *h2body) event(ev StreamEvent) {
	x := b.x
	if x.done {
		return
	}
	if ev.Truncated {
		b.h.c.stats.TruncatedEvents++
	}
	x.Response.Events++
	b.h.c.sink.Event(&x.Exchange, ev)
}

// esLost marks the body truncated when an event-stream message was dropped.
func (b *h2body) esLost() {
	if !b.trunc {
		b.trunc = true
		b.h.c.stats.TruncatedBodies++
	}
}

func (b *h2body) truncate() {
	if !b.trunc {
		b.trunc = true
		b.h.c.stats.TruncatedBodies++
	}
	b.full = true
}

// gap handles bytes of the body lost in capture, as half.bodyGap does.
func (b *h2body) gap() {
	if !b.on {
		return
	}
	if b.sniff {
		b.tell(true)
	}
	if !b.full && b.dec == nil && b.kind != NotStreamed {
		if !b.trunc {
			b.trunc = true
			b.h.c.stats.TruncatedBodies++
		}
		switch b.kind {
		case SSE:
			b.sse.gap()
		case NDJSON:
			b.nd.gap()
		case EventStream:
			b.es.gap()
		}
		return
	}
	b.truncate()
}

// end completes the body at the end of its message.
func (b *h2body) end() {
	if !b.on {
		return
	}
	if b.sniff {
		b.tell(true)
	}
	if b.dec != nil && !b.full {
		if err := b.dec.finish(); err != nil {
			b.h.c.stats.DecodeErrors++
			b.truncate()
		}
	}
	if b.kind == NDJSON && !b.full {
		b.nd.end()
	}
	if b.kind == EventStream && !b.full {
		b.es.end()
	}
	b.on = false
	b.release()
}

// abort ends a body cut short: what came is kept, marked truncated.
func (b *h2body) abort() {
	if b.on {
		b.truncate()
		b.on = false
	}
	b.release()
}

func (b *h2body) release() {
	if b.dec != nil {
		b.dec.release()
		b.dec = nil
	}
	b.sse.data = keepSmall(b.sse.data)
	b.sse.line = keepSmall(b.sse.line)
	b.nd.line = keepSmall(b.nd.line)
	b.es.buf = keepSmall(b.es.buf)
	b.sniffed = nil
}

// dataStream returns the stream a DATA frame of d belongs to, accounting
// its bytes; nil drops the frame.
func (h *h2conn) dataStream(d *h2dir, sid uint32, wire int64) *h2stream {
	s := h.streams[sid]
	switch {
	case s == nil:
		h.c.stats.BytesDiscarded += wire
		return nil
	case s.x == nil:
		h.c.stats.HTTP2.OtherBytes += wire
		return s
	}
	b := s.side(d)
	if b.h == nil {
		// DATA before its head: the head was lost.
		h.c.stats.BytesDiscarded += wire
		return s
	}
	b.wire += wire
	b.last = d.t
	return s
}

// requestBlock handles a header block from the client.
func (h *h2conn) requestBlock(d *h2dir, b *headerBlock) {
	st := &h.c.stats
	if s := h.streams[b.sid]; s != nil {
		// Trailers.
		if s.x == nil || s.reqEnded {
			st.HTTP2.OtherBytes += b.wire
		} else {
			rb := &s.body[0]
			if !b.failed && !b.tooLarge {
				rb.trailer = b.header
			}
			s.headLost = s.headLost || b.failed
			rb.wire += b.wire
			rb.last = d.t
		}
		if b.endStream {
			h.requestEnded(s)
		}
		return
	}
	if b.sid <= h.maxClient || b.sid%2 == 0 {
		st.BytesDiscarded += b.wire // a stream closed, dropped or not the client's
		return
	}
	h.maxClient = b.sid
	if b.tooLarge {
		st.BytesDiscarded += b.wire // counted in HeadersTooLarge
		return
	}
	if b.method == "" || b.path == "" {
		// Without its method and path a call cannot be told; what came
		// after the failure is not guessed.
		st.HTTP2.UnknownStreams++
		st.BytesDiscarded += b.wire
		return
	}
	ct := b.header.Get("Content-Type")
	h.report(b.method, b.path, ct)
	s := &h2stream{id: b.sid}
	if isGRPC(ct) {
		st.HTTP2.GRPCStreams++
		st.HTTP2.OtherBytes += b.wire
		h.add(s)
		s.reqEnded = b.endStream
		return
	}
	hdr := b.header
	if b.authority != "" && hdr["Host"] == nil {
		if hdr == nil {
			hdr = make(http.Header, 1)
		}
		hdr["Host"] = []string{b.authority}
	}
	x := &exchange{}
	x.Seq = h.c.seq
	x.Stream = s.id
	h.c.seq++
	x.ClientSide = h.client == Egress
	x.Request = Request{Method: b.method, Target: b.path, Proto: "HTTP/2.0", Header: hdr, Start: b.start}
	s.x, s.headLost = x, b.failed
	rb := &s.body[0]
	rb.begin(h, x, false, hdr, NotStreamed)
	rb.wire, rb.last = b.wire, d.t
	h.add(s)
	if b.endStream {
		h.requestEnded(s)
	}
}

func isGRPC(ct string) bool {
	return len(ct) >= 16 && strings.EqualFold(ct[:16], "application/grpc")
}

// responseBlock handles a header block from the server.
func (h *h2conn) responseBlock(d *h2dir, b *headerBlock) {
	st := &h.c.stats
	s := h.streams[b.sid]
	switch {
	case s == nil:
		if b.status != "" || b.failed {
			st.HTTP2.UnknownStreams++
		}
		st.BytesDiscarded += b.wire
		return
	case s.x == nil:
		st.HTTP2.OtherBytes += b.wire
		if b.endStream {
			h.remove(s)
		}
		return
	}
	x, rb := s.x, &s.body[1]
	if s.respHead {
		// Trailers.
		if !b.failed && !b.tooLarge {
			rb.trailer = b.header
		}
		s.headLost = s.headLost || b.failed
		rb.wire += b.wire
		rb.last = d.t
	} else {
		status, err := strconv.Atoi(b.status)
		ok := err == nil && len(b.status) == 3 && status >= 100
		if !ok {
			status = 0
			if !b.failed && !b.tooLarge {
				st.Malformed++
			}
		}
		if ok && status < 200 && !b.endStream {
			// Interim response (100 Continue, 103 Early Hints): the final one follows.
			st.HTTP2.OtherBytes += b.wire
			return
		}
		if b.tooLarge {
			// As over HTTP/1.x: the response is given up.
			st.BytesDiscarded += b.wire
			h.finish(s, fmt.Errorf("HTTP/2 response head: %w", ErrHeaderTooLarge))
			return
		}
		s.respHead = true
		s.headLost = s.headLost || !ok || b.failed
		if !x.reqSent {
			h.sendRequest(s)
		}
		x.HasResponse = true
		x.Response = Response{Proto: "HTTP/2.0", Status: status, Header: b.header, Start: b.start, HeaderEnd: d.t}
		ct := b.header.Get("Content-Type")
		rb.begin(h, x, true, b.header, streamKind(ct))
		rb.sniff = ct == "" && s.headLost && rb.dec == nil
		rb.wire, rb.last = b.wire, d.t
	}
	if b.endStream {
		h.responseEnded(s)
	}
}

// add opens a stream, giving up the oldest open one over MaxStreams.
func (h *h2conn) add(s *h2stream) {
	for len(h.open) >= maxStreams(h.c.lim) {
		old := h.open[0]
		if old.x != nil && !old.x.done {
			h.c.stats.DroppedExchanges++
		}
		h.finish(old, ErrDropped)
	}
	h.streams[s.id] = s
	h.open = append(h.open, s)
}

// DefaultMaxStreams is used where Limits.MaxStreams is zero or negative.
const DefaultMaxStreams = 100

func maxStreams(lim Limits) int {
	if lim.MaxStreams > 0 {
		return lim.MaxStreams
	}
	return DefaultMaxStreams
}

func (h *h2conn) remove(s *h2stream) {
	if h.streams[s.id] != s {
		return
	}
	delete(h.streams, s.id)
	for i, o := range h.open {
		if o == s {
			n := copy(h.open[i:], h.open[i+1:])
			h.open[i+n] = nil
			h.open = h.open[:i+n]
			break
		}
	}
}

// adoptUpgrade makes an HTTP/1.1 request that switched to h2c stream 1,
// which carries its response (RFC 7540 §3.2).
func (h *h2conn) adoptUpgrade(x *exchange) {
	h.c.stats.HTTP2.OtherBytes += x.Response.WireBytes // the 101 head
	x.HasResponse = false
	x.Response = Response{}
	s := &h2stream{id: 1, x: x, reqEnded: true}
	h.maxClient = 1
	h.add(s)
	h.report(x.Request.Method, x.Request.Target, x.Request.Header.Get("Content-Type"))
}

// report hands the connection's first request head to OnHTTP2Request.
func (h *h2conn) report(method, path, contentType string) {
	if h.reported {
		return
	}
	h.reported = true
	if fn := h.c.h2.onRequest; fn != nil {
		fn(method, path, contentType)
	}
}

func (h *h2conn) requestEnded(s *h2stream) {
	if s.reqEnded {
		return
	}
	s.reqEnded = true
	if s.x != nil && !s.x.reqSent {
		h.sendRequest(s)
	}
}

// sendRequest calls Sink.Request. A request still being read (its
// response came first, or the stream is ending) goes out with the body
// read so far, marked truncated, and later body bytes are not kept.
func (h *h2conn) sendRequest(s *h2stream) {
	x, b := s.x, &s.body[0]
	if s.reqEnded {
		b.end()
	} else {
		b.abort()
	}
	r := &x.Request
	r.Body, r.BodyTruncated, r.Trailer, r.WireBytes, r.End = b.body, b.trunc, b.trailer, b.wire, b.last
	b.body = nil
	x.reqSent = true
	h.c.request(&x.Exchange)
}

func (h *h2conn) responseEnded(s *h2stream) {
	if s.x == nil {
		h.remove(s)
		return
	}
	s.body[1].end()
	h.finish(s, nil)
}

// finish ends a stream; for an exchange, Sink.Done once, after Sink.Request.
func (h *h2conn) finish(s *h2stream, err error) {
	h.remove(s)
	x := s.x
	if x == nil || x.done {
		return
	}
	if !x.reqSent {
		h.sendRequest(s)
	}
	if s.respHead {
		b := &s.body[1]
		b.abort()
		r := &x.Response
		r.Body, r.BodyTruncated, r.Trailer, r.WireBytes, r.End = b.body, b.trunc, b.trailer, b.wire, b.last
		b.body = nil
	}
	s.body[0].release()
	if err == nil && s.headLost {
		err = errHeadLost
	}
	x.done = true
	if x.Err == nil {
		x.Err = err
	}
	h.c.sink.Done(&x.Exchange)
}

// reset ends the stream a RST_STREAM from d names.
func (h *h2conn) reset(d *h2dir, sid uint32, code uint32) {
	if s := h.streams[sid]; s != nil {
		h.finish(s, &ResetError{Code: code, ByClient: d.dir == h.client})
	}
}

// goAwayFrame ends the streams a GOAWAY says were not processed. One with
// an error code also ends, at close, whatever is still open.
func (h *h2conn) goAwayFrame(d *h2dir, last uint32, code uint32) {
	e := &ResetError{Code: code, GoAway: true, ByClient: d.dir == h.client}
	if code != 0 {
		h.goAway = e
	}
	if e.ByClient {
		return // it names streams the server would open (push): none are decoded
	}
	var gone []*h2stream
	for _, s := range h.open {
		if s.id > last {
			gone = append(gone, s)
		}
	}
	for _, s := range gone {
		h.finish(s, e)
	}
}
