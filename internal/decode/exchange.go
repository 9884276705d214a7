// Package decode turns the two byte streams of one TCP connection into HTTP
// exchanges. It owns HTTP/1.1 framing (keep-alive, pipelining,
// Content-Length, chunked, and the gzip, deflate, br and zstd content
// codings), HTTP/2 (frames, HPACK, an exchange per stream; see
// JoinHTTP2) and the streaming formats
// carried in a response body (SSE events, NDJSON lines and AWS
// event-stream messages), each stamped
// with the time its last byte was seen. It hands complete requests, stream
// events and finished exchanges to a Sink; it knows nothing of the kernel
// that captured the bytes nor of the LLM APIs inside.
//
// Captures are imperfect, so a Conn reads whatever it is given: it finds
// its footing at the first request or status line, skips bytes the capture
// lost where the framing allows and resynchronises where it does not, and
// bounds what it holds by Limits. What it could not hand on is counted in
// Stats.
package decode

import (
	"errors"
	"net/http"
	"time"
)

// Direction names one of the two byte streams of a connection, as seen by the
// observed process.
type Direction uint8

const (
	// Egress bytes were written by the observed process.
	Egress Direction = iota
	// Ingress bytes were read by the observed process.
	Ingress
)

// String names the direction as logs and errors show it.
func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// StreamKind is the framing of a streaming response body.
type StreamKind uint8

const (
	// NotStreamed bodies are delivered whole in Response.Body.
	NotStreamed StreamKind = iota
	// SSE bodies (text/event-stream) are delivered event by event.
	SSE
	// NDJSON bodies (application/x-ndjson, application/jsonl) are delivered line by line.
	NDJSON
	// EventStream bodies (application/vnd.amazon.eventstream, AWS's binary
	// framing) are delivered message by message, CRCs checked.
	EventStream
)

// String names the framing as logs and golden files show it.
func (k StreamKind) String() string {
	switch k {
	case SSE:
		return "sse"
	case NDJSON:
		return "ndjson"
	case EventStream:
		return "eventstream"
	}
	return "none"
}

// Errors that end an exchange early; found in Exchange.Err.
var (
	// ErrConnClosed: the connection closed before the response was complete.
	ErrConnClosed = errors.New("connection closed before the response was complete")
	// ErrGap: bytes were lost in capture where they could not be skipped
	// (inside headers or a stream of unknown length), so the exchange is cut.
	ErrGap = errors.New("bytes lost in capture")
	// ErrMalformed: the bytes are not HTTP/1.x; the stream is resynchronised at
	// the next request or status line.
	ErrMalformed = errors.New("malformed HTTP message")
	// ErrHeaderTooLarge: a message head exceeded Limits.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("HTTP header exceeds the limit")
	// ErrDropped: more than Limits.MaxPending requests waited for responses,
	// so the oldest was given up to bound memory.
	ErrDropped = errors.New("too many requests waiting for responses")
)

// Limits bound the memory one connection may hold.
type Limits struct {
	// MaxHeaderBytes is the largest request or response head kept (default 64 KiB).
	MaxHeaderBytes int
	// MaxBodyBytes is the largest decoded body kept; the rest is skipped
	// through and the body marked truncated (default 1 MiB). Decompression
	// stops there too, so a small body that inflates hugely costs little.
	// Streamed bodies are not bounded as a whole (they may last for
	// minutes) but each event is, by MaxEventBytes.
	MaxBodyBytes int
	// MaxEventBytes is the largest single SSE event or NDJSON line kept; a
	// longer one is delivered cut, with Truncated set (default 1 MiB).
	MaxEventBytes int
	// MaxPending is how many requests may wait for their responses
	// (pipelining) before the oldest is dropped (default 16). Each keeps
	// its body, so a connection holds at most about
	// MaxPending*MaxBodyBytes of request bodies.
	MaxPending int
	// MaxStreams is how many HTTP/2 streams may be open at once on a
	// connection before the oldest is given up (ErrDropped); default 100,
	// the concurrency servers commonly allow. Each holds up to a body in
	// each direction; bodies of calls are small, the bound is for the
	// rare large one.
	MaxStreams int
	// MaxWindowBytes is the largest history window a br or zstd body may
	// need (default 8 MiB, what RFC 8878 asks every zstd decoder to
	// support); such a body declares its window up front, and one needing
	// more is not decoded but marked truncated and counted in DecodeErrors.
	// gzip and deflate always use 32 KiB.
	MaxWindowBytes int
}

// Request is an HTTP request as it crossed the connection.
type Request struct {
	Method string      // as sent; methods are case-sensitive, so never folded
	Target string      // request-target as sent, e.g. "/api/chat?x=1"
	Proto  string      // "HTTP/1.1"
	Header http.Header // canonical keys; values as sent, trimmed of whitespace
	// Body is the decoded body (de-chunked, decompressed), at most
	// Limits.MaxBodyBytes. It stays valid after the Sink call.
	Body []byte
	// BodyTruncated says Body holds only a prefix of the body: the rest was
	// over the limit, lost in capture, or could not be decompressed.
	BodyTruncated bool
	// Trailer holds the trailer fields of a chunked body, if any.
	Trailer http.Header
	// WireBytes counts every byte of the message on the wire, head included.
	WireBytes int64
	Start     time.Time // first byte seen
	End       time.Time // last byte seen
}

// Response is an HTTP response as it crossed the connection.
type Response struct {
	Proto     string      // "HTTP/1.1" or "HTTP/1.0"
	Status    int         // the final status; interim 1xx responses are skipped
	Header    http.Header // canonical keys; values as sent, trimmed of whitespace
	Start     time.Time   // first byte of the status line seen
	HeaderEnd time.Time   // last byte of the head seen
	// Stream says how the body is delivered. For NotStreamed, Body holds it;
	// otherwise each event went to Sink.Event and Body is empty.
	Stream StreamKind
	// Body is the decoded body when not streamed, at most
	// Limits.MaxBodyBytes. A Content-Encoding other than gzip, deflate, br
	// or zstd (or more than one of them) is left as sent, and then the
	// body is never streamed.
	Body []byte
	// BodyTruncated says Body holds only a prefix of the body (as for
	// Request), or for a stream that bytes were lost between events.
	BodyTruncated bool
	Trailer       http.Header // trailer fields of a chunked body, if any
	Events        int         // stream events delivered
	// WireBytes counts the bytes of the final response on the wire, head
	// included; interim 1xx responses before it are not counted.
	WireBytes int64
	End       time.Time // last byte seen
}

// Exchange is one request and its response on a connection.
type Exchange struct {
	Seq uint64 // 0 for the first exchange seen on the connection
	// Stream is the HTTP/2 stream the exchange travelled on; 0 over
	// HTTP/1.x. Both ends of a connection see the same number.
	Stream   uint32
	Request  Request
	Response Response
	// ClientSide is true when requests were written by the observed process
	// (it is the HTTP client); false when it read them (it is the server).
	ClientSide bool
	// HasResponse is false when the exchange ended before any response head.
	HasResponse bool
	// Err is nil for a complete exchange, else why it ended early.
	Err error
}

// StreamEvent is one SSE event, NDJSON line or event-stream message of a
// streaming response.
type StreamEvent struct {
	Time time.Time // when the event's last byte was seen
	// Name is the SSE "event:" field; empty for NDJSON. For an event-stream
	// message, its ":event-type" header, or ":exception-type" for an
	// exception and ":error-code" for an error.
	Name string
	ID   string // SSE "id:" field
	// MessageType is an event-stream message's ":message-type" header
	// ("event", "exception", "error"); empty for SSE and NDJSON.
	MessageType string
	// Data is the SSE data lines joined with "\n", the NDJSON line without
	// its newline, or an event-stream message's payload. It is only valid
	// during the Sink.Event call.
	Data []byte
	// Truncated says Data was cut at Limits.MaxEventBytes.
	Truncated bool
}

// Sink receives what a Conn decodes. Calls come from the goroutine feeding
// the Conn, in stream order.
type Sink interface {
	// Request is called when a request head and body are complete.
	Request(x *Exchange)
	// Event is called for each event of a streaming response as it completes.
	Event(x *Exchange, ev StreamEvent)
	// Done is called once per exchange that reached Request, when its
	// response is complete or can no longer complete (x.Err says why).
	Done(x *Exchange)
}

// RequestTaker is a Sink that takes what it needs of each request during
// Sink.Request. A Conn whose sink is one clears the request's Header, Body
// and Trailer from the Exchange when that call returns, instead of holding
// them until Sink.Done, so that a response streaming for minutes does not
// keep them alive. Their contents are never changed, so the sink may keep
// them; Method, Target and the other fields stay.
type RequestTaker interface {
	Sink
	// TakesRequests marks the sink; it is never called.
	TakesRequests()
}
