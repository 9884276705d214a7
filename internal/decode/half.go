package decode

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

type halfState uint8

const (
	stIdle      halfState = iota // between messages
	stHead                       // in a head, or hunting for a start line
	stBodyLen                    // in a Content-Length body
	stChunkSize                  // in a chunk-size line
	stChunkData                  // in chunk data
	stChunkEnd                   // in the CRLF after chunk data
	stTrailer                    // in the trailer section
	stBodyClose                  // in a body that ends when the connection closes
	stTunnel                     // after a protocol switch; nothing is decoded
)

// maxChunkLine bounds a chunk-size line with its extensions; real ones are
// a few bytes, and the bound keeps a garbage stream from being buffered.
const maxChunkLine = 4096

// half is the decoder of one direction of a connection: one small state
// machine that reads messages one after the other.
type half struct {
	c     *Conn
	dir   Direction
	state halfState
	t     time.Time // time of the write being decoded

	hunting   bool // looking for a start line in bytes of unknown place
	junk      bool // hunting: this line cannot start a message; skip to its end
	firstLine bool // the start line is not complete yet
	hunted    bool // the start line of this head was found by hunting
	fresh     bool // hunting from the first byte of the direction, nothing discarded yet
	// head holds the head (or trailer) being read, in a buffer taken from
	// headBufs when its first byte comes and given back once it is parsed:
	// the fields are cut from a copy, so a connection waiting between
	// messages or on a long body holds no head buffer.
	head      []byte
	headBuf   *[]byte   // where head came from; nil while head is nil
	lineStart int       // where the current line of head begins
	headT     time.Time // time of the first byte of head
	request   bool      // the message being read is a request

	x         *exchange
	detached  bool // x no longer takes body bytes (delivered early, or an orphan)
	remain    int64
	chunkLine []byte
	sawCR     bool
	wire      int64
	last      time.Time // time of the message's last byte so far
	body      []byte
	bodyMax   int
	trunc     bool // the body lost bytes
	full      bool // no more body bytes are decoded
	kind      StreamKind
	dec       bodyDecoder
	trailer   http.Header
	// The parser of a streamed body, only the one of its kind, made when
	// the body begins and dropped when it ends: most connections stream
	// in one direction only, and an idle one holds none.
	sse *sseParser
	nd  *ndjsonParser
	es  *esParser
}

func (h *half) discard(n int) { h.c.stats.BytesDiscarded += int64(n) }

func (h *half) take(n int) {
	h.wire += int64(n)
	h.last = h.t
}

// roles reports which start lines this half may begin with.
func (h *half) roles() (req, resp bool) {
	if !h.c.roles {
		return true, true
	}
	req = h.dir == h.c.reqDir
	return req, !req
}

// hunt makes the half look for the next start line, discarding until then.
// midLine says the bytes before the next line end cannot start a message.
func (h *half) hunt(midLine bool) {
	h.discard(len(h.head))
	h.resetHead()
	h.state = stHead
	h.hunting = true
	h.fresh = false
	h.firstLine = true
	h.junk = midLine
}

// headBufs holds the head buffers of no message being read, shared by
// every connection.
var headBufs = sync.Pool{New: func() any { return new([]byte) }}

// appendHead appends seg to the head being read, taking a buffer first if
// it has none.
func (h *half) appendHead(seg []byte) {
	if h.headBuf == nil {
		h.headBuf = headBufs.Get().(*[]byte)
		h.head = (*h.headBuf)[:0]
	}
	h.head = append(h.head, seg...)
}

// resetHead empties the head and gives its buffer back. A buffer that grew
// past a usual head is let go instead, so the pool keeps no outsized one.
func (h *half) resetHead() {
	if h.headBuf != nil {
		if cap(h.head) <= 8<<10 {
			*h.headBuf = h.head[:0]
			headBufs.Put(h.headBuf)
		}
		h.headBuf = nil
	}
	h.head = nil
	h.lineStart = 0
}

func (h *half) feed(b []byte, t time.Time) {
	h.t = t
	if h.hunting && len(h.head) == 0 {
		// Writes and reads usually begin where messages begin, so while
		// lost, the first byte of each one is a possible start of a line.
		h.junk = false
	}
	for len(b) > 0 {
		var n int
		switch h.state {
		case stIdle:
			n = h.idle(b)
		case stHead:
			n = h.readHead(b)
		case stBodyLen:
			n = int(min(int64(len(b)), h.remain))
			h.take(n)
			h.remain -= int64(n)
			h.bodyBytes(b[:n])
			if h.remain == 0 {
				h.endMessage(nil)
			}
		case stChunkSize:
			n = h.readChunkSize(b)
		case stChunkData:
			n = int(min(int64(len(b)), h.remain))
			h.take(n)
			h.remain -= int64(n)
			h.bodyBytes(b[:n])
			if h.remain == 0 {
				h.state = stChunkEnd
			}
		case stChunkEnd:
			n = h.readChunkEnd(b[0])
		case stTrailer:
			n = h.readTrailer(b)
		case stBodyClose:
			n = len(b)
			h.take(n)
			h.bodyBytes(b)
		case stTunnel:
			n = len(b)
			h.c.stats.BytesTunneled += int64(n)
		}
		b = b[n:]
	}
}

// idle skips the empty lines allowed between messages (RFC 9112 §2.2),
// then starts a head.
func (h *half) idle(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	if i == 0 {
		h.state = stHead
		h.hunting = false
		h.hunted = false
		h.firstLine = true
		h.junk = false
	}
	return i
}

func (h *half) readHead(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if h.junk {
		if i < 0 {
			h.discard(len(b))
			return len(b)
		}
		h.discard(i + 1)
		h.junk = false
		return i + 1
	}
	seg := b
	if i >= 0 {
		seg = b[:i+1]
	}
	if len(h.head)+len(seg) > h.c.lim.MaxHeaderBytes {
		h.discard(len(seg))
		if h.hunting {
			h.hunt(i < 0)
		} else {
			h.c.stats.HeadersTooLarge++
			h.headFailed(ErrHeaderTooLarge, i < 0, nil)
		}
		return len(seg)
	}
	if len(h.head) == 0 {
		h.headT = h.t
	}
	h.appendHead(seg)
	h.last = h.t
	if h.firstLine {
		req, resp := h.roles()
		if !startPrefixOK(h.head[:min(len(h.head), maxMethod+4)], req, resp) {
			h.notStart(i < 0)
			return len(seg)
		}
		if i < 0 {
			return len(seg)
		}
		isReq := false
		if _, _, _, ok := requestLine(h.head); ok && req {
			isReq = true
		} else if _, _, ok := statusLine(h.head); !ok || !resp {
			h.notStart(false)
			return len(seg)
		}
		h.firstLine = false
		h.hunted = h.hunting && !h.fresh
		h.hunting = false
		h.request = isReq
		h.lineStart = len(h.head)
		h.c.learn(h.dir, isReq)
		return len(seg)
	}
	if i < 0 {
		return len(seg)
	}
	if line := h.head[h.lineStart:]; len(line) == 1 || len(line) == 2 && line[0] == '\r' {
		h.headDone()
	} else {
		h.lineStart = len(h.head)
	}
	return len(seg)
}

// notStart handles a first line that cannot start a message.
func (h *half) notStart(midLine bool) {
	if h.hunting {
		h.hunt(midLine)
		return
	}
	h.c.stats.Malformed++
	h.headFailed(fmt.Errorf("start line: %w", ErrMalformed), midLine, nil)
}

// headFailed gives up a message whose head could not be read whole (ph is
// the parsed head when only its framing was wrong). The peer saw that
// message too and will likely answer it. A request whose request line was
// read still goes on with what is known of it, cut (see cutRequest); any
// other lost request leaves a placeholder that absorbs its response and
// keeps the pairing in step.
func (h *half) headFailed(err error, midLine bool, ph *parsedHead) {
	if h.hunted {
		// The start line was found in unknown bytes and what followed is
		// not a head: it was a look-alike, and nothing is paired with it.
		h.hunt(midLine)
		return
	}
	req, _ := h.roles()
	if h.c.roles {
		if req {
			if !h.cutRequest(err, ph) {
				h.c.push(&exchange{ghost: true})
			}
		} else {
			h.c.finish(h.c.pop(), err)
		}
	}
	h.hunt(midLine)
}

// cutRequest hands on a request whose head could not be read whole, with
// what is known: the request line, the fields read before the failure,
// and its timing. Its body is lost (the framing is unknown), so it is
// marked truncated and the exchange carries err; its response still pairs
// with it and completes the call. It reports false when not even the
// request line was read.
func (h *half) cutRequest(err error, ph *parsedHead) bool {
	if !h.request || h.firstLine {
		return false
	}
	if ph == nil {
		nl := bytes.IndexByte(h.head, '\n')
		if nl < 0 {
			return false
		}
		m, tg, pr, ok := requestLine(h.head[:nl+1])
		if !ok {
			return false
		}
		ph = &parsedHead{method: string(m), target: string(tg), proto: string(pr)}
		if end := h.lineStart; end > nl+1 {
			// Whole field lines only; a bad one ends what can be kept.
			lines := h.head[nl+1 : end]
			if hdr, err := parseFields(lines, string(lines)); err == nil {
				ph.header = hdr
			}
		}
	}
	if ph.header == nil {
		ph.header = http.Header{}
	}
	c := h.c
	x := &exchange{}
	x.Seq = c.seq
	c.seq++
	x.ClientSide = c.reqDir == Egress
	x.Err = err
	x.Request = Request{
		Method: ph.method, Target: ph.target, Proto: ph.proto, Header: ph.header,
		BodyTruncated: true, WireBytes: int64(len(h.head)), Start: h.headT, End: h.last,
	}
	if len(h.head) == 0 { // the head was read whole and already let go
		x.Request.WireBytes = h.wire
	}
	c.stats.TruncatedBodies++
	c.push(x)
	c.sendRequest(x)
	return true
}

func (h *half) headDone() {
	ph, err := parseHead(h.head, h.request)
	if err != nil {
		h.c.stats.Malformed++
		h.headFailed(err, false, nil)
		return
	}
	h.wire = int64(len(h.head))
	h.last = h.t
	h.hunted = false
	h.resetHead()
	if h.request {
		h.requestHead(ph)
	} else {
		h.responseHead(ph)
	}
}

func (h *half) requestHead(ph parsedHead) {
	c := h.c
	fr, n := noBody, int64(0)
	switch {
	case ph.header["Transfer-Encoding"] != nil:
		if !chunkedLast(ph.header["Transfer-Encoding"]) {
			c.stats.Malformed++
			h.headFailed(fmt.Errorf("request transfer coding: %w", ErrMalformed), false, &ph)
			return
		}
		fr = chunkedBody
	case ph.header["Content-Length"] != nil:
		var ok bool
		if n, ok = contentLength(ph.header["Content-Length"]); !ok {
			c.stats.Malformed++
			h.headFailed(fmt.Errorf("request Content-Length: %w", ErrMalformed), false, &ph)
			return
		}
		if n > 0 {
			fr = lengthBody
		}
	}
	x := &exchange{}
	x.Seq = c.seq
	c.seq++
	x.ClientSide = c.reqDir == Egress
	x.Request = Request{Method: ph.method, Target: ph.target, Proto: ph.proto, Header: ph.header, Start: h.headT}
	c.push(x)
	h.begin(x, fr, n, ph.header, NotStreamed)
}

func (h *half) responseHead(ph parsedHead) {
	c := h.c
	if ph.status < 200 && ph.status != 101 {
		// Interim response (100 Continue, 103 Early Hints): the final one follows.
		h.state = stIdle
		return
	}
	x := c.pop()
	if x == nil || x.ghost {
		if x == nil {
			x = &exchange{}
		}
		x.orphan = true
		c.stats.OrphanResponses++
	}
	if !x.orphan && !x.reqSent {
		c.sendRequest(x)
	}
	x.HasResponse = true
	x.Response = Response{Proto: ph.proto, Status: ph.status, Header: ph.header, Start: h.headT, HeaderEnd: h.t}
	fr, n := noBody, int64(0)
	te, cl := ph.header["Transfer-Encoding"], ph.header["Content-Length"]
	switch {
	case x.Request.Method == "HEAD" || ph.status == 204 || ph.status == 304:
	case ph.status == 101 || x.Request.Method == "CONNECT" && ph.status < 300:
		fr = tunnel
	case te != nil:
		fr = closeBody
		if chunkedLast(te) {
			fr = chunkedBody
		}
	case cl != nil:
		var ok bool
		if n, ok = contentLength(cl); !ok {
			c.stats.Malformed++
			c.finish(x, fmt.Errorf("response Content-Length: %w", ErrMalformed))
			h.hunt(false)
			return
		}
		if n > 0 {
			fr = lengthBody
		}
	default:
		fr = closeBody
	}
	kind := NotStreamed
	if fr != noBody && fr != tunnel {
		kind = streamKind(ph.header.Get("Content-Type"))
	}
	x.Response.Stream = kind
	h.begin(x, fr, n, ph.header, kind)
}

// begin sets up the body of the message whose head was just read.
func (h *half) begin(x *exchange, fr framing, n int64, hdr http.Header, kind StreamKind) {
	h.x = x
	h.detached = x.orphan
	h.body, h.trunc, h.full, h.trailer, h.kind = nil, false, false, nil, kind
	h.bodyMax = h.c.lim.MaxBodyBytes
	switch fr {
	case noBody:
		h.endMessage(nil)
		return
	case tunnel:
		h.endMessage(nil)
		h.c.tunnel()
		return
	case lengthBody:
		h.remain = n
		h.state = stBodyLen
	case chunkedBody:
		h.chunkLine = h.chunkLine[:0]
		h.state = stChunkSize
	case closeBody:
		h.state = stBodyClose
	}
	if h.detached {
		return
	}
	switch cd := contentCoding(hdr["Content-Encoding"]); cd {
	case gzipCoding, deflateCoding, brotliCoding, zstdCoding:
		h.dec = newBodyDecoder(cd, h, h.c.lim.MaxWindowBytes)
	case unsupportedCoding:
		// Kept as sent; the caller sees Content-Encoding in the header.
		h.c.stats.UnsupportedEncodings++
		h.kind = NotStreamed
		x.Response.Stream = NotStreamed
	}
	switch h.kind {
	case SSE:
		h.sse = new(sseParser)
		h.sse.init(h.c.lim.MaxEventBytes, h)
	case NDJSON:
		h.nd = new(ndjsonParser)
		h.nd.init(h.c.lim.MaxEventBytes, h)
	case EventStream:
		h.es = new(esParser)
		h.es.init(h.c.lim.MaxEventBytes, &h.c.stats, h)
	default:
		if fr == lengthBody && h.dec == nil {
			h.body = make([]byte, 0, min(n, int64(h.bodyMax)))
		}
	}
}

// bodyBytes takes body bytes as framed on the wire.
func (h *half) bodyBytes(p []byte) {
	if h.detached || h.full {
		return
	}
	if h.dec != nil {
		if err := h.dec.write(p); err != nil {
			h.decodeFailed()
		}
		return
	}
	h.out(p)
}

// out takes decoded body bytes; false stops the decoder.
func (h *half) out(p []byte) bool {
	switch h.kind {
	case SSE:
		h.sse.write(p, h.t)
		return true
	case NDJSON:
		h.nd.write(p, h.t)
		return true
	case EventStream:
		h.es.write(p, h.t)
		return true
	}
	var cut bool
	if h.body, cut = appendCapped(h.body, p, h.bodyMax); cut {
		h.truncate()
		return false
	}
	return true
}

// decodeFailed ends a body whose content coding broke. What was decoded of
// a body kept whole is dropped: a decoder notices damage only some way past
// it, and how far depends on how the bytes were cut, so the prefix may
// already be wrong. Stream events already handed on stay delivered.
func (h *half) decodeFailed() {
	h.c.stats.DecodeErrors++
	h.body = h.body[:0]
	h.truncate()
}

// event hands a stream event of the current response to the sink.
func (h *half) event(ev StreamEvent) {
	x := h.x
	if x == nil || x.done || x.orphan {
		return
	}
	if ev.Truncated {
		h.c.stats.TruncatedEvents++
	}
	x.Response.Events++
	h.c.sink.Event(&x.Exchange, ev)
}

// esLost marks the body truncated when an event-stream message was
// dropped; later messages are still read.
func (h *half) esLost() {
	if !h.trunc {
		h.trunc = true
		h.c.stats.TruncatedBodies++
	}
}

// truncate marks the body as a prefix and stops taking body bytes.
func (h *half) truncate() {
	if !h.trunc {
		h.trunc = true
		h.c.stats.TruncatedBodies++
	}
	h.full = true
}

// bodyGap handles bytes lost inside a body whose framing is intact. A
// plain or compressed body keeps its prefix; a stream drops the event being
// read and resumes at the next one.
func (h *half) bodyGap() {
	if h.detached || h.full {
		if !h.detached {
			h.truncate()
		}
		return
	}
	if h.dec == nil && h.kind != NotStreamed {
		if !h.trunc {
			h.trunc = true
			h.c.stats.TruncatedBodies++
		}
		switch h.kind {
		case SSE:
			h.sse.gap()
		case NDJSON:
			h.nd.gap()
		case EventStream:
			h.es.gap()
		}
		return
	}
	h.truncate()
}

func (h *half) readChunkSize(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	seg := b
	if i >= 0 {
		seg = b[:i+1]
	}
	h.take(len(seg))
	if len(h.chunkLine)+len(seg) > maxChunkLine {
		h.cut(fmt.Errorf("chunk-size line too long: %w", ErrMalformed), i < 0)
		return len(seg)
	}
	line := seg
	if i < 0 || len(h.chunkLine) > 0 {
		h.chunkLine = append(h.chunkLine, seg...)
		if i < 0 {
			return len(seg)
		}
		line = h.chunkLine
	}
	size, ok := chunkSize(line)
	h.chunkLine = h.chunkLine[:0]
	switch {
	case !ok:
		h.cut(fmt.Errorf("chunk-size line: %w", ErrMalformed), false)
	case size == 0:
		h.resetHead()
		h.state = stTrailer
	default:
		h.remain = size
		h.state = stChunkData
	}
	return len(seg)
}

// chunkSize parses "1*HEXDIG [BWS ; ext...] CRLF".
func chunkSize(line []byte) (int64, bool) {
	line = trimEOL(line)
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

func (h *half) readChunkEnd(c byte) int {
	switch {
	case c == '\r' && !h.sawCR:
		h.sawCR = true
	case c == '\n':
		h.sawCR = false
		h.state = stChunkSize
	default:
		h.sawCR = false
		h.cut(fmt.Errorf("no CRLF after chunk data: %w", ErrMalformed), true)
		return 0
	}
	h.take(1)
	return 1
}

func (h *half) readTrailer(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	seg := b
	if i >= 0 {
		seg = b[:i+1]
	}
	h.take(len(seg))
	if len(h.head)+len(seg) > h.c.lim.MaxHeaderBytes {
		h.c.stats.HeadersTooLarge++
		h.cut(fmt.Errorf("trailer: %w", ErrHeaderTooLarge), i < 0)
		return len(seg)
	}
	h.appendHead(seg)
	if i < 0 {
		return len(seg)
	}
	if line := h.head[h.lineStart:]; len(line) == 1 || len(line) == 2 && line[0] == '\r' {
		if h.lineStart > 0 {
			tr, err := parseFields(h.head[:h.lineStart], string(h.head[:h.lineStart]))
			if err != nil {
				h.c.stats.Malformed++ // the body is intact; only the trailer is lost
			} else {
				h.trailer = tr
			}
		}
		h.resetHead()
		h.endMessage(nil)
	} else {
		h.lineStart = len(h.head)
	}
	return len(seg)
}

// skip handles n bytes lost at the current position.
func (h *half) skip(n int64) {
	switch h.state {
	case stTunnel:
		return
	case stHead:
		if h.hunting {
			h.hunt(true)
			return
		}
		h.lost()
	case stIdle:
		h.lost()
	case stBodyLen:
		k := min(n, h.remain)
		h.take(int(k))
		h.remain -= k
		h.bodyGap()
		if h.remain == 0 {
			h.endMessage(nil)
			if n > k {
				h.skip(n - k)
			}
		}
	case stChunkData:
		if n <= h.remain {
			h.take(int(n))
			h.remain -= n
			h.bodyGap()
			if h.remain == 0 {
				h.state = stChunkEnd
			}
			return
		}
		h.bodyGap()
		h.cut(fmt.Errorf("%d bytes lost across a chunk boundary: %w", n, ErrGap), true)
	default:
		h.bodyGap()
		h.cut(fmt.Errorf("%d bytes lost in %s framing: %w", n, h.dir, ErrGap), true)
	}
}

// lost handles a loss where a message starts or in its head: that message
// is gone. A lost request leaves a placeholder for its response; a lost
// response ends the exchange waiting for it.
func (h *half) lost() {
	h.c.stats.Gaps++
	if h.c.roles {
		if req, _ := h.roles(); req {
			h.c.push(&exchange{ghost: true})
		} else {
			h.c.finish(h.c.pop(), ErrGap)
		}
	}
	h.hunt(true)
}

// cut ends the message being read at a framing error or loss, then hunts.
// A cut request stays paired: its response is still worth reading.
func (h *half) cut(err error, midLine bool) {
	if h.x != nil {
		if errors.Is(err, ErrGap) {
			h.c.stats.Gaps++
		} else {
			h.c.stats.Malformed++
		}
	}
	h.abort(err)
	h.hunt(midLine)
}

// abort ends the message being read with err, without touching the state.
func (h *half) abort(err error) {
	x := h.x
	if x == nil {
		return
	}
	if h.request {
		if !x.done {
			if x.Err == nil {
				x.Err = err
			}
			if !x.reqSent {
				h.c.sendRequest(x)
			}
		}
	} else {
		h.truncate()
		if !x.done {
			h.fillResponse(x)
		}
		h.c.finish(x, err)
	}
	h.x = nil
	h.release()
}

// endMessage completes the message being read.
func (h *half) endMessage(err error) {
	x := h.x
	if h.dec != nil && !h.detached && !h.full {
		if e := h.dec.finish(); e != nil {
			h.decodeFailed()
		}
	}
	if h.kind == NDJSON && !h.detached && !h.full {
		// A last line may go without its newline. An SSE event without its
		// empty line is dropped, as the event-stream rules say.
		h.nd.end()
	}
	if h.kind == EventStream && !h.detached && !h.full {
		h.es.end()
	}
	h.release()
	h.x = nil
	h.state = stIdle
	if x == nil || x.done {
		return
	}
	if h.request {
		if !x.reqSent {
			h.fillRequest(x)
			x.reqSent = true
			h.c.request(&x.Exchange)
		}
		return
	}
	h.fillResponse(x)
	h.c.finish(x, err)
}

func (h *half) fillRequest(x *exchange) {
	r := &x.Request
	r.Body, r.BodyTruncated, r.Trailer, r.WireBytes, r.End = h.body, h.trunc, h.trailer, h.wire, h.last
	h.body = nil
}

func (h *half) fillResponse(x *exchange) {
	r := &x.Response
	r.Body, r.BodyTruncated, r.Trailer, r.WireBytes, r.End = h.body, h.trunc, h.trailer, h.wire, h.last
	h.body = nil
}

// release frees what the message being read held.
func (h *half) release() {
	if h.dec != nil {
		h.dec.release()
		h.dec = nil
	}
	h.sse, h.nd, h.es = nil, nil, nil
}

// close ends the half at connection close.
func (h *half) close() {
	switch h.state {
	case stBodyClose:
		h.endMessage(nil)
	case stBodyLen, stChunkSize, stChunkData, stChunkEnd, stTrailer:
		h.abort(ErrConnClosed)
	case stHead:
		h.discard(len(h.head))
		h.resetHead()
	}
	h.state = stIdle
}
