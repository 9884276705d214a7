package decode

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 (RFC 9113) is decoded per connection: frames with the Framer of
// golang.org/x/net/http2, header blocks with one HPACK decoder per direction,
// each stream its own Exchange handed to the same Sink as HTTP/1.1. A
// connection becomes HTTP/2 when the first bytes of either direction are the
// client preface, when an HTTP/1.1 request asking for "Upgrade: h2c" gets
// 101 Switching Protocols, or when the caller says so with JoinHTTP2.

// ErrReset is what a *ResetError wraps, for errors.Is.
var ErrReset = errors.New("HTTP/2 stream reset")

// ResetError ends an HTTP/2 exchange that a peer cut short: by RST_STREAM
// on its stream, or by GOAWAY (a stream the server did not process, or any
// stream still open when a GOAWAY with an error code closed the connection).
// It is what the wire said, not a loss of the observer.
type ResetError struct {
	// Code is the HTTP/2 error code sent (RFC 9113 §7), e.g. 0x8 CANCEL.
	Code uint32
	// GoAway is true when the stream was ended by GOAWAY, false for RST_STREAM.
	GoAway bool
	// ByClient is true when the client sent the frame (a cancelled call).
	ByClient bool
}

// CodeName is the error code's name as RFC 9113 spells it, e.g. "CANCEL".
func (e *ResetError) CodeName() string { return http2.ErrCode(e.Code).String() }

func (e *ResetError) Error() string {
	frame, by := "RST_STREAM", "server"
	if e.GoAway {
		frame = "GOAWAY"
	}
	if e.ByClient {
		by = "client"
	}
	return fmt.Sprintf("HTTP/2 stream ended by %s %s from the %s", frame, e.CodeName(), by)
}

// Unwrap makes errors.Is(err, ErrReset) hold.
func (e *ResetError) Unwrap() error { return ErrReset }

// errHeadLost ends an exchange whose request or response head could only
// be decoded in part: the capture began after the HPACK state it refers to
// was built, or lost bytes that held it.
var errHeadLost = fmt.Errorf("HTTP/2 header block not decodable without earlier HPACK state: %w", ErrGap)

// HTTP2Stats count what the HTTP/2 decoding of a connection read but did
// not hand on as exchanges.
type HTTP2Stats struct {
	// OtherBytes belong to no exchange by design: the client preface,
	// connection-level frames (SETTINGS, PING, WINDOW_UPDATE, PRIORITY,
	// GOAWAY, RST_STREAM and frame types not known here), interim 1xx
	// responses, the 101 that switched to h2c, and gRPC streams.
	OtherBytes int64
	// JoinedMidstream counts connections decoded from a point after their
	// start, so without the HPACK state built before it.
	JoinedMidstream int64
	// HPACKErrors counts header blocks that could not be decoded whole,
	// mostly for want of HPACK state after a join or a loss. What was
	// decoded before the failure is used; nothing after it is guessed.
	HPACKErrors int64
	// GRPCStreams counts gRPC streams (content-type application/grpc...),
	// recognised and not decoded.
	GRPCStreams int64
	// UnknownStreams counts streams whose request head was not decoded
	// (lost, or before the capture began); their frames were dropped.
	UnknownStreams int64
}

// JoinHTTP2 says the connection carries HTTP/2 and that the capture may
// have begun after its start. client is the direction carrying requests.
// Decoding finds the next frame boundary, and header blocks that refer to
// HPACK state from before the capture are counted, not guessed. A stream
// preface seen at the very start is honoured as if the capture had begun
// with it. Call it before the first Feed; it has no effect once HTTP/1.x
// decoding has begun or the connection is already HTTP/2.
func (c *Conn) JoinHTTP2(client Direction) {
	if c.h2.dec != nil || c.closed || c.h2.sniffDone && c.roles {
		return
	}
	c.startHTTP2(client, true)
}

// OnHTTP2Request registers fn to be called once per HTTP/2 connection, with
// the first request head decoded, as soon as it is decoded (before its body
// and before Sink.Request); after an h2c upgrade, with the HTTP/1.1
// request that asked for it. It lets the caller decide early whether the
// connection carries calls worth keeping; gRPC requests come with their
// content type so they can be told apart. fn is called from inside Feed.
func (c *Conn) OnHTTP2Request(fn func(method, path, contentType string)) {
	c.h2.onRequest = fn
}

// HTTP2 reports whether the connection is decoded as HTTP/2.
func (c *Conn) HTTP2() bool { return c.h2.dec != nil }

// clientPreface is the first thing an HTTP/2 client sends (RFC 9113 §3.4).
const clientPreface = http2.ClientPreface

// Sniffing holds the first bytes of the connection while they may still be
// the client preface, so that an HTTP/2 connection never reaches the
// HTTP/1.x decoder, and an HTTP/1.x one reaches it in the same pieces and
// with the same times as it was fed. An HTTP/1.x message never starts with
// 'P','R','I',' ' nor with a zero byte, so almost every connection is
// decided by its first byte or two.
const (
	maxSniffHeld  = 16 << 10 // bytes held while undecided
	maxSniffFeeds = 64       // feeds held while undecided
)

// h2switch is the HTTP/2 state of a Conn: detection, then the decoder.
type h2switch struct {
	dec       *h2conn
	sniffDone bool
	// matched is per direction: bytes of the preface matched so far; -1
	// when the direction's first bytes are not the preface but may be a
	// server's first frame (a zero byte); -2 when they are HTTP/1.x.
	matched   [2]int
	held      []heldFeed
	heldBytes int
	onRequest func(method, path, contentType string)
	// upgrade is the HTTP/1.1 exchange that asked for h2c and got 101; its
	// response comes as HTTP/2 stream 1.
	upgrade *exchange
}

type heldFeed struct {
	dir Direction
	t   time.Time
	b   []byte
}

const (
	sniffMaybeServer = -1
	sniffHTTP1       = -2
)

// feed takes b if the connection is or may be HTTP/2.
func (s *h2switch) feed(c *Conn, dir Direction, t time.Time, b []byte) bool {
	if s.dec != nil {
		s.dec.feed(dir, t, b)
		return true
	}
	if s.sniffDone {
		return false
	}
	m := s.matched[dir]
	if m >= 0 {
		k := min(len(b), len(clientPreface)-m)
		switch {
		case string(b[:k]) == clientPreface[m:m+k]:
			m += k
		case m == 0 && b[0] == 0:
			m = sniffMaybeServer
		default:
			m = sniffHTTP1
		}
		s.matched[dir] = m
	}
	switch {
	case m == len(clientPreface):
		s.hold(dir, t, b)
		c.startHTTP2(dir, false)
		return true
	case m == sniffHTTP1, s.matched[other(dir)] == sniffMaybeServer && m == sniffMaybeServer,
		s.heldBytes+len(b) > maxSniffHeld, len(s.held) >= maxSniffFeeds:
		s.sniffDone = true
		s.flush(c)
		return false
	}
	s.hold(dir, t, b)
	return true
}

func (s *h2switch) hold(dir Direction, t time.Time, b []byte) {
	s.held = append(s.held, heldFeed{dir, t, append([]byte(nil), b...)})
	s.heldBytes += len(b)
}

// flush hands the held feeds to the HTTP/1.x decoder, in order.
func (s *h2switch) flush(c *Conn) {
	held := s.held
	s.held, s.heldBytes = nil, 0
	for _, f := range held {
		c.half(f.dir).feed(f.b, f.t)
	}
}

// startHTTP2 switches the connection to HTTP/2 and replays what was held.
func (c *Conn) startHTTP2(client Direction, joined bool) {
	s := &c.h2
	s.sniffDone = true
	s.dec = newH2Conn(c, client, joined)
	if x := s.upgrade; x != nil {
		s.upgrade = nil
		s.dec.adoptUpgrade(x)
	}
	held := s.held
	s.held, s.heldBytes = nil, 0
	for _, f := range held {
		s.dec.feed(f.dir, f.t, f.b)
	}
}

// upgraded intercepts the end of an HTTP/1.1 exchange that switched to
// h2c: its request is answered on HTTP/2 stream 1, so it is not ended here.
func (s *h2switch) upgraded(x *exchange) bool {
	if !x.HasResponse || x.Response.Status != 101 || x.ghost || x.orphan || !h2cRequested(x) {
		return false
	}
	s.upgrade = x
	return true
}

func h2cRequested(x *exchange) bool {
	for _, v := range x.Request.Header["Upgrade"] {
		if containsToken(v, "h2c") {
			for _, w := range x.Response.Header["Upgrade"] {
				if containsToken(w, "h2c") {
					return true
				}
			}
		}
	}
	return false
}

// containsToken reports whether the comma-separated list v holds tok,
// compared without case.
func containsToken(v, tok string) bool {
	for item := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(item), tok) {
			return true
		}
	}
	return false
}

// undecided ends sniffing where the preface can no longer be told (a loss,
// the close): what was held is HTTP/1.x.
func (s *h2switch) undecided(c *Conn) {
	if s.dec == nil && !s.sniffDone {
		s.sniffDone = true
		s.flush(c)
	}
}
