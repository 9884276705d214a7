package decode

import (
	"math"
	"time"
)

// Default limits, used where a Limits field is zero or negative.
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxEventBytes  = 1 << 20
	DefaultMaxPending     = 16
	DefaultMaxWindowBytes = 8 << 20
)

// Stats count what a Conn could not hand on whole, so that losses show up
// in the agent's own metrics instead of vanishing. Counts only grow.
type Stats struct {
	// BytesDiscarded were seen outside any message that could be read: the
	// rest of a message the capture joined midway, garbage, a message
	// abandoned after an error, or bytes fed after Close.
	BytesDiscarded int64
	// BytesLost were reported lost by the capture layer through Skip.
	BytesLost int64
	// BytesTunneled followed a switch to another protocol (101 Switching
	// Protocols, or a CONNECT tunnel) and were not decoded.
	BytesTunneled int64
	// Malformed counts messages that broke HTTP/1.x syntax or framing.
	Malformed int64
	// HeadersTooLarge counts heads over Limits.MaxHeaderBytes.
	HeadersTooLarge int64
	// Gaps counts losses that cut a message or lost its start (ErrGap).
	Gaps int64
	// TruncatedBodies counts bodies marked truncated, for any reason.
	TruncatedBodies int64
	// TruncatedEvents counts stream events delivered cut at MaxEventBytes.
	TruncatedEvents int64
	// DecodeErrors counts bodies that failed to decompress (gzip, deflate,
	// br or zstd), or would have needed a history window over
	// Limits.MaxWindowBytes.
	DecodeErrors int64
	// UnsupportedEncodings counts bodies left as sent because their
	// Content-Encoding (stacked codings, unknown ones) is not decoded here.
	UnsupportedEncodings int64
	// OrphanResponses counts responses whose request was not seen.
	OrphanResponses int64
	// Desyncs counts losses of unknown size reported through Desync.
	Desyncs int64
	// DroppedExchanges counts exchanges given up under MaxPending (ErrDropped).
	DroppedExchanges int64
	// HTTP2 counts what HTTP/2 decoding did not hand on; left out of
	// encodings while zero, as for every HTTP/1.x connection.
	HTTP2 HTTP2Stats `json:",omitzero"`
	// EventStream counts what the AWS event-stream framing did not hand
	// on; left out of encodings while zero.
	EventStream EventStreamStats `json:",omitzero"`
}

// Conn decodes the two byte streams of one connection. It is not safe for
// concurrent use: one goroutine feeds it, and the Sink is called from that
// goroutine, inside Feed, Skip and Close.
type Conn struct {
	lim     Limits
	sink    Sink
	halves  [2]half // indexed by Direction
	reqDir  Direction
	roles   bool        // reqDir is known
	pending []*exchange // requests waiting for their responses, oldest first
	// pending0 backs pending while at most one request waits, as without
	// pipelining, so that a connection needs no array of its own for it.
	pending0 [1]*exchange
	seq      uint64
	closed   bool
	stats    Stats
	h2       h2switch
	// handOver: the sink is a RequestTaker.
	handOver bool
}

// exchange is an Exchange with the bookkeeping that keeps Sink calls
// ordered and single.
type exchange struct {
	Exchange
	ghost   bool // stands for a request whose head was lost; its response is read and dropped
	orphan  bool // a response without a request; read for framing, never delivered
	reqSent bool // Sink.Request was called
	done    bool // Sink.Done was called, or the exchange was given up
}

// NewConn returns the decoder of one connection; zero Limits fields take defaults.
func NewConn(lim Limits, sink Sink) *Conn {
	if lim.MaxHeaderBytes <= 0 {
		lim.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if lim.MaxBodyBytes <= 0 {
		lim.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if lim.MaxEventBytes <= 0 {
		lim.MaxEventBytes = DefaultMaxEventBytes
	}
	if lim.MaxPending <= 0 {
		lim.MaxPending = DefaultMaxPending
	}
	if lim.MaxWindowBytes <= 0 {
		lim.MaxWindowBytes = DefaultMaxWindowBytes
	}
	c := &Conn{lim: lim, sink: sink}
	c.pending = c.pending0[:0]
	_, c.handOver = sink.(RequestTaker)
	for i := range c.halves {
		h := &c.halves[i]
		h.c = c
		h.dir = Direction(i)
		// Capture may begin anywhere: look for a start line first. If it
		// is right at the first byte, the capture began with the message.
		h.hunt(false)
		h.fresh = true
	}
	return c
}

// request calls Sink.Request, then lets go of what a RequestTaker took.
// The header of a request asking for an upgrade stays: the 101 that
// switches to h2c is matched against it.
func (c *Conn) request(x *Exchange) {
	c.sink.Request(x)
	if c.handOver {
		r := &x.Request
		if r.Header["Upgrade"] == nil {
			r.Header = nil
		}
		r.Body, r.Trailer = nil, nil
	}
}

// Stats returns the connection's loss counters.
func (c *Conn) Stats() Stats { return c.stats }

func (c *Conn) half(d Direction) *half {
	if d == Egress {
		return &c.halves[0]
	}
	return &c.halves[1]
}

// Feed hands the next bytes seen in one direction; t is when the last of
// them was seen. Events completed by these bytes are stamped t. b is not
// kept after Feed returns.
func (c *Conn) Feed(dir Direction, t time.Time, b []byte) {
	if len(b) == 0 {
		return
	}
	if c.closed {
		c.stats.BytesDiscarded += int64(len(b))
		return
	}
	if c.h2.feed(c, dir, t, b) {
		return
	}
	tunneled := c.stats.BytesTunneled
	c.half(dir).feed(b, t)
	if c.h2.dec != nil {
		// An h2c upgrade: the bytes after 101 Switching Protocols, which
		// the half took for a tunnel, are HTTP/2.
		n := c.stats.BytesTunneled - tunneled
		c.stats.BytesTunneled = tunneled
		c.h2.dec.feed(dir, t, b[len(b)-int(n):])
	}
}

// Skip says n bytes of dir were lost in capture. Inside a body of known
// length (Content-Length, or within a chunk) they are skipped and the body
// marked truncated, and parsing stays in step. Anywhere else (a head, a
// chunk-size line, a body delimited by close) the exchange ends with ErrGap
// and the direction resynchronises at the next start line. A request cut
// this way still pairs with its response, which is worth having (it holds
// the usage); its Done comes when that response ends, with Err = ErrGap.
func (c *Conn) Skip(dir Direction, t time.Time, n int) {
	if n <= 0 {
		return
	}
	c.stats.BytesLost += int64(n)
	if c.closed {
		return
	}
	if c.h2.dec != nil {
		c.h2.dec.skip(dir, t, n)
		return
	}
	c.h2.undecided(c)
	h := c.half(dir)
	h.t = t
	h.skip(int64(n))
}

// Desync tells the decoder that an unknown number of bytes of dir went
// missing before the next Feed: the message being read is cut as if all of
// its rest were lost, and the stream is searched for the next message start.
func (c *Conn) Desync(dir Direction, t time.Time) {
	c.stats.Desyncs++
	if c.closed {
		return
	}
	if c.h2.dec != nil {
		c.h2.dec.skip(dir, t, math.MaxInt32)
		return
	}
	c.h2.undecided(c)
	h := c.half(dir)
	h.t = t
	h.skip(math.MaxInt64 / 2)
}

// Close ends the connection at t: a response delimited by the close
// completes; every exchange still open ends with ErrConnClosed.
func (c *Conn) Close(t time.Time) {
	if c.closed {
		return
	}
	if c.h2.dec != nil {
		c.h2.dec.close(t)
	}
	c.h2.undecided(c)
	// The response being read belongs to the oldest exchange, so it ends
	// first and Done calls keep the order of the requests.
	first := Ingress
	if c.roles {
		first = other(c.reqDir)
	}
	for _, d := range []Direction{first, other(first)} {
		h := c.half(d)
		h.t = t
		h.close()
	}
	for len(c.pending) > 0 {
		c.finish(c.pop(), ErrConnClosed)
	}
	for i := range c.halves {
		c.halves[i].release()
		c.halves[i].resetHead()
	}
	c.closed = true
}

func other(d Direction) Direction {
	if d == Egress {
		return Ingress
	}
	return Egress
}

// learn fixes which direction carries requests, from the first start line
// recognised in either direction.
func (c *Conn) learn(dir Direction, request bool) {
	if c.roles {
		return
	}
	c.roles = true
	if request {
		c.reqDir = dir
	} else {
		c.reqDir = other(dir)
	}
}

func (c *Conn) push(x *exchange) {
	if len(c.pending) >= c.lim.MaxPending {
		old := c.pop()
		if !old.ghost {
			c.stats.DroppedExchanges++
		}
		c.finish(old, ErrDropped)
	}
	c.pending = append(c.pending, x)
}

func (c *Conn) pop() *exchange {
	if len(c.pending) == 0 {
		return nil
	}
	x := c.pending[0]
	n := copy(c.pending, c.pending[1:])
	c.pending[n] = nil
	c.pending = c.pending[:n]
	return x
}

// sendRequest calls Sink.Request. If the request is still being read (its
// response came first, or the exchange is ending) it goes out with the
// body read so far, marked truncated, and later body bytes are not kept.
func (c *Conn) sendRequest(x *exchange) {
	x.reqSent = true
	if qh := c.half(c.reqDir); qh.x == x {
		qh.truncate()
		qh.fillRequest(x)
		qh.detached = true
	}
	c.request(&x.Exchange)
}

// finish ends an exchange: Sink.Done once, after Sink.Request.
func (c *Conn) finish(x *exchange, err error) {
	if x == nil || x.done || c.h2.upgraded(x) {
		return
	}
	x.done = true
	if x.ghost || x.orphan {
		return
	}
	if !x.reqSent {
		c.sendRequest(x)
	}
	if x.Err == nil {
		x.Err = err
	}
	c.sink.Done(&x.Exchange)
}

// tunnel stops decoding: the connection now carries another protocol.
func (c *Conn) tunnel() {
	for i := range c.halves {
		h := &c.halves[i]
		h.discard(len(h.head))
		h.resetHead()
		h.release()
		h.state = stTunnel
	}
	if c.h2.upgrade != nil {
		c.startHTTP2(c.reqDir, false)
	}
}
