package decode

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

// The AWS event-stream encoding (application/vnd.amazon.eventstream), as
// Amazon Bedrock's streaming responses use it. Each message is
//
//	total length    4 bytes, big-endian, the whole message included
//	headers length  4 bytes
//	prelude CRC     4 bytes, CRC-32 (IEEE) of the 8 bytes before it
//	headers         name length (1 byte), name, value type (1 byte), value
//	payload         total - headers - 16 bytes
//	message CRC     4 bytes, CRC-32 of every byte before it
//
// A message whose CRC does not match is dropped and counted: its lengths
// were vouched for by the prelude CRC, so the next message is still found.
// A prelude whose CRC does not match leaves no length to trust, so the
// rest of the body is dropped.

// Header value types of the encoding.
const (
	esBoolTrue  = 0
	esBoolFalse = 1
	esByte      = 2
	esInt16     = 3
	esInt32     = 4
	esInt64     = 5
	esBytes     = 6 // 2-byte length, then the bytes
	esString    = 7 // 2-byte length, then UTF-8
	esTimestamp = 8 // milliseconds since the epoch, 8 bytes
	esUUID      = 9 // 16 bytes
)

const (
	esPreludeLen = 12
	esMinMessage = esPreludeLen + 4
	// esMaxHeaders bounds the headers of one message, which are kept whole
	// until the message ends; AWS's own decoders refuse more than 128 KiB.
	esMaxHeaders = 128 << 10
)

// EventStreamStats count what the event-stream framing of response bodies
// could not hand on.
type EventStreamStats struct {
	// CRCErrors counts messages whose message CRC did not match; each was
	// dropped and its call marked truncated.
	CRCErrors int64
	// PreludeErrors counts bodies whose message prelude was corrupt (its
	// CRC did not match, or its lengths were impossible); the rest of such
	// a body cannot be framed and was dropped.
	PreludeErrors int64
	// Malformed counts messages whose CRC matched but whose headers could
	// not be read (an unknown value type, a length running past them), and
	// bodies that ended inside a message.
	Malformed int64
}

// esSink receives the messages of an event stream, and hears of those lost.
type esSink interface {
	eventSink
	// esLost says a message (or the rest of the stream) was dropped.
	esLost()
}

// esParser cuts an event-stream body into messages, in any split, holding
// at most the headers and max bytes of payload of one message. A message
// that lies inside one write is handed out without copying.
type esParser struct {
	max      int
	st       *Stats
	sink     esSink
	pre      [esPreludeLen]byte
	npre     int    // prelude bytes read of the message being read
	hlen     int    // its headers length
	rest     int    // its bytes after the prelude, CRC included
	got      int    // of rest, read so far
	crc      uint32 // running CRC of the message
	want     [4]byte
	buf      []byte // headers and the payload kept so far
	cut      bool   // the payload is longer than max
	dead     bool   // the framing was lost: everything up to the body's end is dropped
	lastType string // reused when the next message has the same values
	lastName string
}

func (e *esParser) init(max int, st *Stats, sink esSink) {
	*e = esParser{max: max, st: st, sink: sink, buf: e.buf[:0]}
}

func (e *esParser) write(p []byte, t time.Time) {
	for len(p) > 0 {
		if e.dead {
			e.st.BytesDiscarded += int64(len(p))
			return
		}
		if e.npre < esPreludeLen {
			n := copy(e.pre[e.npre:], p)
			e.npre += n
			p = p[n:]
			if e.npre < esPreludeLen {
				return
			}
			if !e.prelude() {
				continue
			}
			if len(p) >= e.rest {
				// The whole message is in this write.
				msg := p[:e.rest]
				body := msg[:e.rest-4]
				crc := crc32.Update(e.crc, crc32.IEEETable, body)
				cut := len(body)-e.hlen > e.max
				if cut {
					body = body[:e.hlen+e.max]
				}
				e.deliver(body, cut, crc, binary.BigEndian.Uint32(msg[e.rest-4:]), t)
				p = p[e.rest:]
				e.npre = 0
				continue
			}
		}
		n := min(len(p), e.rest-e.got)
		e.take(p[:n])
		p = p[n:]
		if e.got == e.rest {
			e.deliver(e.buf, e.cut, e.crc, binary.BigEndian.Uint32(e.want[:]), t)
			e.npre, e.got, e.cut = 0, 0, false
			e.buf = keepSmall(e.buf)
		}
	}
}

// prelude checks the prelude just read and sets the message up; false
// when the framing is lost.
func (e *esParser) prelude() bool {
	total := binary.BigEndian.Uint32(e.pre[0:4])
	hlen := binary.BigEndian.Uint32(e.pre[4:8])
	if crc32.ChecksumIEEE(e.pre[:8]) != binary.BigEndian.Uint32(e.pre[8:12]) ||
		total < esMinMessage || hlen > total-esMinMessage || hlen > esMaxHeaders {
		e.st.EventStream.PreludeErrors++
		e.st.BytesDiscarded += int64(e.npre)
		e.dead = true
		e.sink.esLost()
		return false
	}
	e.hlen = int(hlen)
	e.rest = int(total) - esPreludeLen
	e.got = 0
	e.crc = crc32.ChecksumIEEE(e.pre[:])
	e.buf, e.cut = e.buf[:0], false
	return true
}

// take reads bytes of a message that straddles writes.
func (e *esParser) take(p []byte) {
	body := e.rest - 4
	if e.got < body {
		n := min(len(p), body-e.got)
		e.crc = crc32.Update(e.crc, crc32.IEEETable, p[:n])
		if room := e.hlen + e.max - len(e.buf); room > 0 {
			e.buf = append(e.buf, p[:min(n, room)]...)
			if n > room {
				e.cut = true
			}
		} else if n > 0 {
			e.cut = true
		}
		e.got += n
		p = p[n:]
	}
	for _, b := range p {
		e.want[e.got-body] = b
		e.got++
	}
}

// deliver checks a complete message (body is its headers and the payload
// kept) and hands it on.
func (e *esParser) deliver(body []byte, cut bool, crc, want uint32, t time.Time) {
	if crc != want {
		e.st.EventStream.CRCErrors++
		e.sink.esLost()
		return
	}
	typ, name, ok := e.headers(body[:e.hlen])
	if !ok {
		e.st.EventStream.Malformed++
		e.sink.esLost()
		return
	}
	if typ == "" {
		typ = "event" // the default when a message does not say
	}
	e.sink.event(StreamEvent{Time: t, Name: name, MessageType: typ, Data: body[e.hlen:], Truncated: cut})
}

// headers reads a message's headers for its type (":message-type") and
// name: ":event-type" for events, ":exception-type" for exceptions and
// ":error-code" for errors. Every value type is walked so that the ones
// after it are found; false when one cannot be.
func (e *esParser) headers(h []byte) (typ, name string, ok bool) {
	var evType, excType, errCode []byte
	for len(h) > 0 {
		nl := int(h[0])
		if nl == 0 || len(h) < 2+nl {
			return "", "", false
		}
		key := h[1 : 1+nl]
		vt := h[1+nl]
		h = h[2+nl:]
		var n int
		switch vt {
		case esBoolTrue, esBoolFalse:
		case esByte:
			n = 1
		case esInt16:
			n = 2
		case esInt32:
			n = 4
		case esInt64, esTimestamp:
			n = 8
		case esUUID:
			n = 16
		case esBytes, esString:
			if len(h) < 2 {
				return "", "", false
			}
			n = 2 + int(binary.BigEndian.Uint16(h))
		default:
			return "", "", false
		}
		if len(h) < n {
			return "", "", false
		}
		if vt == esString {
			v := h[2:n]
			switch string(key) {
			case ":message-type":
				if string(v) != e.lastType {
					e.lastType = string(v)
				}
				typ = e.lastType
			case ":event-type":
				evType = v
			case ":exception-type":
				excType = v
			case ":error-code":
				errCode = v
			}
		}
		h = h[n:]
	}
	v := evType
	switch typ {
	case "exception":
		v = excType
	case "error":
		v = errCode
	}
	if string(v) != e.lastName {
		e.lastName = string(v)
	}
	return typ, e.lastName, true
}

// gap says bytes of the body were lost: where the next message starts is
// no longer known, so the rest of the body is dropped.
func (e *esParser) gap() {
	e.dead = true
	e.buf = e.buf[:0]
}

// end is called when the body ends; a message left half read is counted.
func (e *esParser) end() {
	if !e.dead && e.npre > 0 {
		e.st.EventStream.Malformed++
		e.st.BytesDiscarded += int64(e.npre + e.got)
		e.sink.esLost()
	}
	e.npre, e.got = 0, 0
	e.buf = keepSmall(e.buf)
}

// EventStreamMessages cuts a whole event-stream body into its messages and
// calls fn for each good one, for a stream that reached its reader as one
// body (no per-message times). It reports the messages dropped: failed
// CRCs, unreadable headers, or a corrupt prelude and what followed it.
func EventStreamMessages(body []byte, fn func(StreamEvent)) (dropped int) {
	var st Stats
	w := &wholeES{fn: fn}
	var e esParser
	e.init(DefaultMaxEventBytes, &st, w)
	e.write(body, time.Time{})
	e.end()
	return w.lostN
}

type wholeES struct {
	fn    func(StreamEvent)
	lostN int
}

func (w *wholeES) event(ev StreamEvent) { w.fn(ev) }
func (w *wholeES) esLost()              { w.lostN++ }
