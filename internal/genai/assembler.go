package genai

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// Options say what to extract beyond the always-on metadata.
type Options struct {
	// CaptureInput fills Call.InputMessages, SystemInstructions and
	// ToolDefinitions from the request.
	CaptureInput bool
	// CaptureOutput fills Call.OutputMessages and ToolCall.Arguments from
	// the response. Without it tool calls keep only their id and name.
	CaptureOutput bool
	// UserIDSalt salts Call.EndUserHash, the hex SHA-256 of salt+id, where
	// id is OpenAI's "user" (or "safety_identifier") or Anthropic's
	// metadata.user_id. The id itself is never kept.
	UserIDSalt string
	// Providers maps "host", "host:port" or ":port" (host in lower case) to
	// a provider name, overriding detection. The most specific key wins.
	Providers map[string]string
	// MaxContentChunks bounds Call.ContentChunks: the first ones are kept and
	// the rest counted in ContentChunksDropped (default 100000).
	MaxContentChunks int
	// MaxOutputContentBytes bounds the output text and tool-call arguments
	// kept per call with CaptureOutput (default 1 MiB); the rest is dropped
	// at a word boundary and Call.ContentTruncated set.
	MaxOutputContentBytes int
	// MCPPaths are the request-path prefixes of MCP traffic; nil means
	// DefaultMCPPaths, empty none.
	MCPPaths []string
	// MCPSessions, shared by the assemblers of every connection, matches
	// MCP answers that arrive on another connection's stream; nil leaves
	// such requests unanswered (truncated).
	MCPSessions *MCPSessions
}

const (
	defaultMaxContentChunks      = 100000
	defaultMaxOutputContentBytes = 1 << 20
)

// maxPending bounds the calls one connection may have open at once; the
// decoder pipelines fewer than this, so more means exchanges it never ended.
const maxPending = 64

// Handler receives calls, from the goroutine that feeds the Assembler.
type Handler interface {
	// CallStarted is called when a request is recognised as an LLM call,
	// with the fields known from the request set. The assembler keeps
	// filling the same Call until CallEnded; read it there, not in between.
	CallStarted(c *Call)
	// CallEnded is called once per started call, when it completes or
	// fails, with the same *Call now complete. The assembler never touches
	// it again.
	CallEnded(c *Call)
}

// Stats counts what one Assembler saw.
type Stats struct {
	Requests int64 // requests seen
	Calls    int64 // requests recognised as LLM calls
	Ignored  int64 // requests that were not LLM API calls
	// Unparsed counts bodies and stream events that were not the JSON the
	// API promises (cut, garbage, or an unknown shape).
	Unparsed int64
	// WorkerHops counts requests a model server made to its own worker
	// process (Ollama's runner); they are not calls, and are among Ignored.
	WorkerHops int64
}

// Assembler turns the exchanges of one connection into Calls. It is a
// decode.Sink; like the decoder that drives it, it is not safe for
// concurrent use.
type Assembler struct {
	opts    Options
	ep      Endpoint
	h       Handler
	pending []*callState
	// pending0 backs pending while one call is open, as on a connection
	// without pipelining, so that the assembler needs no array for it.
	pending0 [1]*callState
	stats    Stats
	streams  []*mcpStream // MCP GET streams that may carry answers
}

var _ decode.RequestTaker = (*Assembler)(nil)

// TakesRequests marks the assembler as a decode.RequestTaker: it reads a
// request's header and body only in Request, so the decoder need not hold
// them while the response streams.
func (a *Assembler) TakesRequests() {}

// NewAssembler returns a decode.Sink for one connection; ep describes the
// connection (ClientSide is overwritten from each exchange). opts may be nil.
func NewAssembler(opts *Options, ep Endpoint, h Handler) *Assembler {
	a := &Assembler{ep: ep, h: h}
	a.pending = a.pending0[:0]
	if opts != nil {
		a.opts = *opts
	}
	if a.opts.MaxContentChunks <= 0 {
		a.opts.MaxContentChunks = defaultMaxContentChunks
	}
	if a.opts.MaxOutputContentBytes <= 0 {
		a.opts.MaxOutputContentBytes = defaultMaxOutputContentBytes
	}
	return a
}

// Stats returns what the assembler has counted so far.
func (a *Assembler) Stats() Stats { return a.stats }

// Request starts a call when the request is an LLM API call.
func (a *Assembler) Request(x *decode.Exchange) {
	a.stats.Requests++
	st := a.start(x)
	if st == nil {
		a.stats.Ignored++
		return
	}
	a.stats.Calls++
	if len(a.pending) >= maxPending {
		old := a.pending[0]
		a.pending = a.pending[1:]
		old.abandon()
		a.h.CallEnded(old.c)
	}
	a.pending = append(a.pending, st)
	a.h.CallStarted(st.c)
}

// Event folds one stream event into its call.
func (a *Assembler) Event(x *decode.Exchange, ev decode.StreamEvent) {
	st := a.find(x)
	if st == nil {
		a.mcpStreamEvent(x, ev)
		return
	}
	st.head(x)
	st.c.Chunks++
	if ev.Time.After(st.last) {
		st.last = ev.Time
	}
	if ev.Truncated {
		st.c.Truncated = true
	}
	var ok bool
	if mr, is := st.fam.(messageReader); is && ev.MessageType != "" {
		ok = mr.message(st, ev, true)
	} else {
		ok = st.fam.event(st, ev.Name, ev.Data, ev.Time, true)
	}
	if !ok {
		a.stats.Unparsed++
	}
}

// Done completes the call of a finished exchange and hands it on.
func (a *Assembler) Done(x *decode.Exchange) {
	i := a.index(x)
	if i < 0 {
		a.mcpStreamDone(x)
		return
	}
	st := a.pending[i]
	// slices.Delete clears the vacated slot, so that the array does not
	// keep the finished call alive until the next request.
	a.pending = slices.Delete(a.pending, i, i+1)
	st.head(x)
	// A body cut or undecodable (its content coding broke) is the
	// observer's loss even when nothing of it is left to parse, streamed
	// or not: the call is never reported as a clean success.
	if x.HasResponse && x.Response.BodyTruncated {
		st.c.Truncated = true
	}
	if x.HasResponse && x.Response.Stream == decode.NotStreamed && len(x.Response.Body) > 0 {
		if !st.fam.body(st, x.Response.Body, x.Response.End) {
			a.stats.Unparsed++
		}
	}
	if a.mcpDone(st, x) {
		return // answered on another connection's stream, later
	}
	st.finish(x)
	mcpEnd(st)
	a.h.CallEnded(st.c)
}

// Close ends the calls still open, as cut short; for a connection torn down
// without its decoder ending every exchange.
func (a *Assembler) Close() {
	for _, st := range a.pending {
		st.abandon()
		a.h.CallEnded(st.c)
	}
	a.pending = nil
	for len(a.streams) > 0 {
		a.endMCPStream(0)
	}
}

func (a *Assembler) index(x *decode.Exchange) int {
	for i, st := range a.pending {
		if st.seq == x.Seq {
			return i
		}
	}
	return -1
}

func (a *Assembler) find(x *decode.Exchange) *callState {
	if i := a.index(x); i >= 0 {
		return a.pending[i]
	}
	return nil
}

// start recognises the request and builds the call from it, or returns nil.
func (a *Assembler) start(x *decode.Exchange) *callState {
	req := &x.Request
	path, query, _ := strings.Cut(req.Target, "?")
	if i := strings.Index(path, "://"); i >= 0 { // absolute-form target (proxies)
		if j := strings.IndexByte(path[i+3:], '/'); j >= 0 {
			path = path[i+3+j:]
		} else {
			path = "/"
		}
	}
	if a.onMCPPath(path) {
		return a.startMCP(x, path, query)
	}
	if isWorkerHop(req.Method, path, req.Body) {
		a.stats.WorkerHops++
		return nil
	}
	spec := recognise(req.Method, path, req.Header, req.Body)
	if spec == nil {
		return nil
	}
	ep := a.ep
	ep.ClientSide = x.ClientSide
	c := &Call{
		Operation: spec.operation,
		API:       spec.name,
		Endpoint:  ep,
		Method:    req.Method,
		Path:      path,
		Start:     req.Start,
		End:       req.End,
		Truncated: req.BodyTruncated,
	}
	host, port := hostPort(req.Header, ep)
	c.ServerAddress, c.ServerPort = host, port
	c.HTTP2Stream = x.Stream
	c.TraceParent = req.Header.Get("Traceparent")
	c.TraceState = req.Header.Get("Tracestate")
	c.RequestID = req.Header.Get("X-Request-Id") // a response's own id replaces it
	c.Credentials = RequestCredentials(req.Header, query)
	st := &callState{
		seq:  x.Seq,
		c:    c,
		opts: &a.opts,
		spec: spec,
		last: req.End,
	}
	st.out.capture = a.opts.CaptureOutput
	st.out.budget = a.opts.MaxOutputContentBytes
	st.fam = spec.newFamily()
	st.detectFromRequest(host, port, path, req.Header)

	body := req.Body
	if len(body) > 0 {
		if !st.fam.request(st, body, path, query) {
			if salvaged := salvageObject(body); salvaged != nil {
				st.c.Truncated = true
				st.fam.request(st, salvaged, path, query)
			}
		}
	} else {
		st.fam.request(st, []byte("{}"), path, query)
	}
	return st
}

// family is one API family's parser. Each call gets its own value, which
// holds the little state that family needs between stream events.
type family interface {
	// request parses the request body into the call; false when it is not
	// well-formed JSON.
	request(st *callState, body []byte, path, query string) bool
	// event folds one stream event (SSE name and data, or an NDJSON line)
	// into the call; timed is false for events cut from a body delivered
	// whole, whose arrival times are unknown. False when unparsable.
	event(st *callState, name string, data []byte, t time.Time, timed bool) bool
	// body parses a response delivered whole; false when unparsable.
	body(st *callState, body []byte, t time.Time) bool
	// finish completes family-specific fields once the exchange is over.
	finish(st *callState)
}

// Provider ranks: a later clue replaces the provider only when it ranks higher.
const (
	rankNone     = iota
	rankShape    // what the API's shape suggests (OpenAI-shaped → openai_compatible)
	rankEvidence // what the server revealed about itself (port, headers, fields)
	rankHost     // a well-known public host
	rankOverride // Options.Providers
)

// callState is one call under construction.
type callState struct {
	seq  uint64
	c    *Call
	opts *Options
	spec *apiSpec
	fam  family
	out  output
	// json reads the request, each stream event and the response body, one
	// after another, reusing its buffers.
	json jsonReader

	providerRank int
	headSeen     bool
	// terminal is set when the response's own end marker was seen (final
	// NDJSON line, [DONE], message_stop, response.completed, ...), so a
	// connection lost afterwards did not cut the call short.
	terminal bool
	// failed is set once a provider error was recorded; the first one wins.
	failed bool
	// last is the latest time anything of the exchange was seen.
	last time.Time
}

// setProvider records p if the clue outranks the one already used.
func (st *callState) setProvider(p string, rank int) {
	if p != "" && rank > st.providerRank {
		st.c.Provider = p
		st.providerRank = rank
	}
}

// head takes what the response head says, once.
func (st *callState) head(x *decode.Exchange) {
	if st.headSeen || !x.HasResponse {
		return
	}
	st.headSeen = true
	r := &x.Response
	st.c.Status = r.Status
	if r.End.After(st.last) {
		st.last = r.End
	}
	if r.HeaderEnd.After(st.last) {
		st.last = r.HeaderEnd
	}
	if r.Stream != decode.NotStreamed {
		st.c.Stream = true
	}
	st.readResponseHeaders(r)
}

// contentChunk records a stream event that carried generated content.
func (st *callState) contentChunk(t time.Time, timed bool) {
	if !timed {
		return
	}
	if len(st.c.ContentChunks) < st.opts.MaxContentChunks {
		if st.c.ContentChunks == nil {
			// A stream has tens of chunks or more: start past the
			// first few doublings of append.
			st.c.ContentChunks = make([]time.Time, 0, min(st.opts.MaxContentChunks, 16))
		}
		st.c.ContentChunks = append(st.c.ContentChunks, t)
	} else {
		st.c.ContentChunksDropped++
	}
}

// fail records a provider-reported error; typ may be empty.
func (st *callState) fail(typ, msg string) {
	if st.failed {
		return
	}
	st.failed = true
	st.c.ErrorType = typ
	st.c.ErrorMessage = msg
}

// setEndUser hashes the end-user id into the call.
func (st *callState) setEndUser(id string) {
	if id == "" {
		return
	}
	h := sha256.Sum256([]byte(st.opts.UserIDSalt + id))
	st.c.EndUserHash = hex.EncodeToString(h[:])
}

// abandon ends a call whose exchange will never be completed. What the
// observer did not see is its loss, not the application's failure: the call
// is marked truncated and keeps whatever outcome the wire already showed.
func (st *callState) abandon() {
	st.c.Truncated = true
	st.fam.finish(st)
	st.out.finish(st)
	st.c.End = st.last
}

const errorOther = "_OTHER"

// finish completes the call once its exchange is over.
func (st *callState) finish(x *decode.Exchange) {
	c := st.c
	st.fam.finish(st)
	st.out.finish(st)
	if x.Request.BodyTruncated {
		c.Truncated = true
	}
	if x.Err != nil {
		c.Truncated = true
	}
	end := st.last
	if x.HasResponse && !x.Response.End.IsZero() && x.Response.End.After(end) {
		end = x.Response.End
	}
	if x.HasResponse && !x.Response.End.IsZero() && x.Err == nil {
		end = x.Response.End
	}
	c.End = end
	if c.End.Before(c.Start) {
		c.End = c.Start
	}

	reset := resetError(x.Err)
	switch {
	case st.failed:
		if c.ErrorType == "" {
			if c.Status >= 400 {
				c.ErrorType = strconv.Itoa(c.Status)
			} else {
				c.ErrorType = errorOther
			}
		}
	case x.HasResponse && c.Status >= 400:
		c.ErrorType = strconv.Itoa(c.Status)
	case reset != nil && !st.terminal:
		// RST_STREAM or GOAWAY: the peer said the call was cut.
		c.ErrorType = reset.CodeName()
		c.ErrorMessage = reset.Error()
	case !x.HasResponse || (x.Err != nil && !st.terminal):
		// Cut before its end: by a gap, a close, a dropped record or a
		// limit, and a gap or lost records look just like a close from
		// here. None of that is an error the wire showed, so the call is
		// only marked truncated; error.type stays for what the server said.
		c.Truncated = true
	}
}

// resetError returns the *decode.ResetError in err's chain, or nil. Apart
// from the switch that uses it, so that the target errors.As needs is made
// only when there is an error to look into.
func resetError(err error) *decode.ResetError {
	if err == nil {
		return nil
	}
	var reset *decode.ResetError
	if errors.As(err, &reset) {
		return reset
	}
	return nil
}
