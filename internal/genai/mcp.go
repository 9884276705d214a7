package genai

import (
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// MCP (the Model Context Protocol) over HTTP is JSON-RPC 2.0 between an
// agent and a tool server. Two transports carry it:
//
//   - Streamable HTTP (protocol revisions 2025-03-26 and later): each
//     message is POSTed to one endpoint; a request is answered in the POST's
//     own response, as application/json or as a text/event-stream whose
//     events carry JSON-RPC messages, the answer among them; a notification
//     is acknowledged with 202 and no body. The server names the session in
//     an Mcp-Session-Id header on its initialize answer, and the client
//     sends it on every later request.
//   - HTTP+SSE (revision 2024-11-05): the client opens a long GET stream
//     whose first event, "endpoint", names the URL to POST messages to
//     (with the session in its query); each POST is acknowledged with 202
//     and its answer arrives later as a "message" event on the stream,
//     matched by JSON-RPC id.
//
// Requests on a configured MCP path (Options.MCPPaths) are read here
// instead of being taken for LLM calls. Each JSON-RPC request or
// notification a POST carries becomes one Call with MCP set: from the
// request's first byte to its answer (the POST's response, the matching
// stream event, or the 202 that acknowledges a notification). A POSTed
// JSON-RPC response (the client answering a server's request) and a batch
// (an array, allowed by 2025-03-26 only) are not calls.

// DefaultMCPPaths are the request-path prefixes taken for MCP traffic when
// Options.MCPPaths is nil: the endpoints the SDKs serve by default.
var DefaultMCPPaths = []string{"/mcp", "/sse", "/messages"}

// Outcomes of an MCP call besides JSON-RPC error codes.
const (
	// ErrorTypeToolError is error.type for a tools/call whose result has
	// isError set: the tool ran and failed, which the conventions tell
	// from a JSON-RPC error.
	ErrorTypeToolError = "tool_error"
	// mcpOpExecuteTool is gen_ai.operation.name of an MCP tools/call, which
	// the conventions set on tool calls only.
	mcpOpExecuteTool = "execute_tool"
)

// MCP is what one MCP message exchange carried.
type MCP struct {
	// Method is the JSON-RPC method, as mcp.method.name.
	Method string
	// RequestID is the JSON-RPC id as text; empty for a notification.
	RequestID string
	// SessionID is the Mcp-Session-Id header (the initialize answer's for
	// initialize itself), or the session named in the HTTP+SSE transport's
	// POST URL.
	SessionID string
	// ProtocolVersion is the MCP revision: the MCP-Protocol-Version header,
	// else what initialize negotiated.
	ProtocolVersion string
	// JSONRPCVersion is the request's "jsonrpc" member.
	JSONRPCVersion string
	// ToolName is params.name of tools/call; PromptName of prompts/get.
	ToolName   string
	PromptName string
	// ResourceURI is params.uri of resources/read, resources/subscribe and
	// resources/unsubscribe.
	ResourceURI string
	// ErrorCode is the JSON-RPC error code of the answer, as text.
	ErrorCode string
	// Answered is set when the answer (or, for a notification, the
	// acknowledgement) was seen.
	Answered bool
}

var apiMCP = &apiSpec{"mcp", "", func() family { return &mcpCall{} }}

// mcpWire are the wire structs of JSON-RPC messages.
var mcpWire = []any{mcpMessage{}}

func init() {
	for _, v := range mcpWire {
		registerTags(reflect.TypeOf(v))
	}
	wireStructs = append(wireStructs, mcpWire...)
}

// mcpMessage is any JSON-RPC message: request, notification or response.
type mcpMessage struct {
	JSONRPC string      `json:"jsonrpc"`
	ID      span        `json:"id"`
	Method  string      `json:"method"`
	Params  mcpParams   `json:"params"`
	Result  *mcpResult  `json:"result"`
	Error   *mcpRPCFail `json:"error"`
}

type mcpParams struct {
	Name            string  `json:"name"`
	URI             string  `json:"uri"`
	ProtocolVersion string  `json:"protocolVersion"`
	Meta            mcpMeta `json:"_meta"`
}

// mcpMeta is the params._meta bag, where the conventions propagate trace
// context in MCP.
type mcpMeta struct {
	TraceParent string `json:"traceparent"`
	TraceState  string `json:"tracestate"`
}

type mcpResult struct {
	IsError         optBool `json:"isError"`
	ProtocolVersion string  `json:"protocolVersion"`
}

type mcpRPCFail struct {
	Code    span   `json:"code"`
	Message string `json:"message"`
}

func (v *mcpMessage) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "jsonrpc":
			r.str(&v.JSONRPC)
		case "id":
			r.span(&v.ID)
		case "method":
			r.str(&v.Method)
		case "params":
			v.Params.readFrom(r)
		case "result":
			readPtr(r, &v.Result, (*mcpResult).readFrom)
		case "error":
			readPtr(r, &v.Error, (*mcpRPCFail).readFrom)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *mcpParams) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "name":
			r.str(&v.Name)
		case "uri":
			r.str(&v.URI)
		case "protocolVersion":
			r.str(&v.ProtocolVersion)
		case "_meta":
			v.Meta.readFrom(r)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *mcpMeta) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "traceparent":
			r.str(&v.TraceParent)
		case "tracestate":
			r.str(&v.TraceState)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *mcpResult) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "isError":
			r.optBool(&v.IsError)
		case "protocolVersion":
			r.str(&v.ProtocolVersion)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

func (v *mcpRPCFail) readFrom(r *jsonReader) {
	for more := r.openObject(); more; more = r.nextMember() {
	retry:
		switch string(r.key) {
		case "code":
			r.span(&v.Code)
		case "message":
			r.str(&v.Message)
		default:
			if r.refold() {
				goto retry
			}
			r.skip()
		}
	}
}

// isResponse reports whether the message answers a request.
func (m *mcpMessage) isResponse() bool {
	return m.Method == "" && (m.Result != nil || m.Error != nil)
}

// onMCPPath reports whether path is under one of the MCP prefixes.
func (a *Assembler) onMCPPath(path string) bool {
	paths := a.opts.MCPPaths
	if paths == nil {
		paths = DefaultMCPPaths
	}
	for _, p := range paths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// mcpCall is the family of an MCP exchange. The request was read before
// the call was made; what is left is finding the answer.
type mcpCall struct {
	m  *MCP
	id span // the request's id as written, to match the answer's
	// viaStream is set when the answer came on another exchange's stream
	// (HTTP+SSE); answeredAt is when.
	viaStream  bool
	answeredAt time.Time
	key        mcpKey // in Options.MCPSessions while registered
	registered bool
}

// startMCP makes the call of an MCP POST, or registers a GET as a stream
// that may carry answers; nil when the exchange is not a call.
func (a *Assembler) startMCP(x *decode.Exchange, path, query string) *callState {
	req := &x.Request
	switch req.Method {
	case http.MethodGet:
		a.watchMCPStream(x)
		return nil
	case http.MethodPost:
	default:
		return nil // DELETE ends a session; nothing to time
	}
	var msg mcpMessage
	truncated := req.BodyTruncated
	if !readJSON(req.Body, &msg) {
		// A body cut by a limit still names its method near the start.
		salvaged := salvageObject(req.Body)
		if !req.BodyTruncated || salvaged == nil || !readJSON(salvaged, &msg) {
			return nil
		}
		truncated = true
	}
	if msg.Method == "" {
		// Not a request or notification: a batch, or the client
		// answering a server's request.
		return nil
	}
	m := &MCP{
		Method:          msg.Method,
		JSONRPCVersion:  msg.JSONRPC,
		SessionID:       req.Header.Get("Mcp-Session-Id"),
		ProtocolVersion: req.Header.Get("Mcp-Protocol-Version"),
	}
	f := &mcpCall{m: m}
	if !msg.ID.isNull() {
		m.RequestID = msg.ID.idString()
		f.id = append(span(nil), msg.ID...)
	}
	switch msg.Method {
	case "tools/call":
		m.ToolName = msg.Params.Name
	case "prompts/get":
		m.PromptName = msg.Params.Name
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		m.ResourceURI = msg.Params.URI
	case "initialize":
		if m.ProtocolVersion == "" {
			m.ProtocolVersion = msg.Params.ProtocolVersion
		}
	}
	if m.SessionID == "" {
		m.SessionID = sessionFromQuery(query)
	}
	ep := a.ep
	ep.ClientSide = x.ClientSide
	c := &Call{
		API:       apiMCP.name,
		Endpoint:  ep,
		Method:    req.Method,
		Path:      path,
		Start:     req.Start,
		End:       req.End,
		Truncated: truncated,
		MCP:       m,
	}
	if msg.Method == "tools/call" {
		c.Operation = mcpOpExecuteTool
	}
	c.ServerAddress, c.ServerPort = hostPort(req.Header, ep)
	c.HTTP2Stream = x.Stream
	// The conventions carry trace context in params._meta, since one HTTP
	// request may carry several messages; a traceparent header is the
	// fallback.
	if meta := msg.Params.Meta; meta.TraceParent != "" {
		c.TraceParent, c.TraceState = meta.TraceParent, meta.TraceState
	} else {
		c.TraceParent = req.Header.Get("Traceparent")
		c.TraceState = req.Header.Get("Tracestate")
	}
	c.Credentials = RequestCredentials(req.Header, query)
	st := &callState{seq: x.Seq, c: c, opts: &a.opts, spec: apiMCP, fam: f, last: req.End}
	if len(f.id) > 0 && a.opts.MCPSessions != nil {
		// The answer may come on another connection's stream (HTTP+SSE),
		// even before this POST's own response.
		f.key = mcpKey{client: x.ClientSide, session: mcpSessionKey(req.Header, req.Target), id: string(f.id)}
		f.registered = a.opts.MCPSessions.register(f.key, &mcpWait{st: st, h: a.h})
	}
	return st
}

// sessionFromQuery finds the session parameter of an HTTP+SSE POST URL
// (sessionId, session_id, ...).
func sessionFromQuery(query string) string {
	if query == "" {
		return ""
	}
	q, _ := url.ParseQuery(query)
	for k, v := range q {
		if len(v) > 0 && strings.EqualFold(strings.ReplaceAll(k, "_", ""), "sessionid") {
			return v[0]
		}
	}
	return ""
}

// mcpSessionKey names the session a message belongs to, as both the POST
// and the stream that answers it can tell: the Mcp-Session-Id header when
// there is one, else the POST's URL, which the HTTP+SSE stream announced.
func mcpSessionKey(h http.Header, target string) string {
	if id := h.Get("Mcp-Session-Id"); id != "" {
		return "id:" + id
	}
	return "url:" + requestURI(target)
}

// endpointURI is the request target a client POSTs to for the endpoint an
// HTTP+SSE stream announced: an absolute URL, an absolute path, or a path
// relative to the stream's own target.
func endpointURI(streamTarget, endpoint string) string {
	if strings.Contains(endpoint, "://") || strings.HasPrefix(endpoint, "/") {
		return requestURI(endpoint)
	}
	base, err := url.Parse(requestURI(streamTarget))
	ref, err2 := url.Parse(endpoint)
	if err != nil || err2 != nil {
		return endpoint
	}
	return base.ResolveReference(ref).RequestURI()
}

// requestURI strips the scheme and host of an absolute URL.
func requestURI(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[i+3+j:]
		}
		return "/"
	}
	return u
}

func (f *mcpCall) request(*callState, []byte, string, string) bool { return true }

// event reads one SSE event of the POST's response (or of the stream that
// answers it): the answer is the response with the request's id; requests
// and notifications the server sends before it are passed over.
func (f *mcpCall) event(st *callState, _ string, data []byte, t time.Time, _ bool) bool {
	var msg mcpMessage
	if !st.json.decode(data, &msg) {
		return false
	}
	f.take(st, &msg, t)
	return true
}

// body reads a response delivered whole: one JSON-RPC response, a batch
// of them, or an event stream labelled as something else.
func (f *mcpCall) body(st *callState, body []byte, t time.Time) bool {
	b := bytes.TrimSpace(body)
	if isEventStream(b) {
		st.c.Stream = true
		return forEachSSE(b, func(name string, data []byte) bool { return f.event(st, name, data, t, false) })
	}
	if len(b) > 0 && b[0] == '[' {
		return eachElement(b, func(v []byte) {
			var msg mcpMessage
			if readJSON(v, &msg) {
				f.take(st, &msg, t)
			}
		})
	}
	var msg mcpMessage
	if !st.json.decode(b, &msg) {
		return false
	}
	f.take(st, &msg, t)
	return true
}

// take records msg when it is the answer to this call's request.
func (f *mcpCall) take(st *callState, msg *mcpMessage, t time.Time) {
	if len(f.id) == 0 || !msg.isResponse() || string(msg.ID) != string(f.id) || f.m.Answered {
		return
	}
	f.m.Answered = true
	f.answeredAt = t
	st.terminal = true
	if t.After(st.last) {
		st.last = t
	}
	switch {
	case msg.Error != nil:
		code := msg.Error.Code.idString()
		if code == "" {
			code = errorOther
		}
		f.m.ErrorCode = code
		st.fail(code, msg.Error.Message)
	case msg.Result != nil:
		if f.m.Method == "tools/call" && msg.Result.IsError.v {
			st.fail(ErrorTypeToolError, "")
		}
		if f.m.Method == "initialize" && msg.Result.ProtocolVersion != "" {
			f.m.ProtocolVersion = msg.Result.ProtocolVersion
		}
	}
}

func (f *mcpCall) finish(st *callState) {
	if f.registered {
		// Ended here, by its own exchange or cut short: no answer may
		// touch it any more.
		st.opts.MCPSessions.forget(f.key)
		f.registered = false
	}
	if len(f.id) == 0 {
		// A notification is done when it is acknowledged.
		f.m.Answered = st.headSeen && st.c.Status < 300
		return
	}
	if !f.m.Answered {
		// The answer was never seen: the observer's loss, not an error.
		st.c.Truncated = true
	}
}

// mcpDone handles the end of an MCP POST before the call is finished: the
// session the initialize answer names, and a request acknowledged without
// its answer (HTTP+SSE), which then waits for the stream. It reports
// whether the call is left waiting.
func (a *Assembler) mcpDone(st *callState, x *decode.Exchange) bool {
	f, ok := st.fam.(*mcpCall)
	if !ok {
		return false
	}
	if f.m.SessionID == "" && x.HasResponse {
		f.m.SessionID = x.Response.Header.Get("Mcp-Session-Id")
	}
	s := a.opts.MCPSessions
	if !f.registered || s == nil {
		return false
	}
	waitForStream := !f.m.Answered && x.Err == nil && x.HasResponse &&
		x.Response.Status >= 200 && x.Response.Status < 300 &&
		x.Response.Stream == decode.NotStreamed && len(bytes.TrimSpace(x.Response.Body)) == 0
	if waitForStream && s.posted(f.key) {
		if !x.Response.End.IsZero() && x.Response.End.After(st.last) {
			st.last = x.Response.End
		}
		return true
	}
	return false
}

// mcpEnd fixes the end of an MCP call answered on a stream: the answer,
// not the POST's acknowledgement, ends it.
func mcpEnd(st *callState) {
	if f, ok := st.fam.(*mcpCall); ok && f.viaStream && !f.answeredAt.IsZero() && !f.answeredAt.Before(st.c.Start) {
		st.c.End = f.answeredAt
	}
}

// mcpStream is a GET on an MCP path whose SSE events may carry answers to
// requests POSTed elsewhere.
type mcpStream struct {
	seq     uint64
	client  bool
	target  string // the GET's, against which a relative endpoint resolves
	session string // as mcpSessionKey names it
}

// maxMCPStreams bounds the open streams of one connection (normally one).
const maxMCPStreams = 8

func (a *Assembler) watchMCPStream(x *decode.Exchange) {
	if a.opts.MCPSessions == nil {
		return
	}
	if len(a.streams) >= maxMCPStreams {
		a.endMCPStream(0)
	}
	s := &mcpStream{seq: x.Seq, client: x.ClientSide, target: x.Request.Target}
	if id := x.Request.Header.Get("Mcp-Session-Id"); id != "" {
		s.session = "id:" + id
	}
	a.streams = append(a.streams, s)
}

func (a *Assembler) mcpStreamIndex(x *decode.Exchange) int {
	for i, s := range a.streams {
		if s.seq == x.Seq {
			return i
		}
	}
	return -1
}

// mcpStreamEvent reads one event of a watched stream: the endpoint it
// announces, or an answer for a call waiting in Options.MCPSessions.
func (a *Assembler) mcpStreamEvent(x *decode.Exchange, ev decode.StreamEvent) {
	i := a.mcpStreamIndex(x)
	if i < 0 {
		return
	}
	s := a.streams[i]
	if ev.Name == "endpoint" {
		if s.session == "" {
			s.session = "url:" + endpointURI(s.target, strings.TrimSpace(string(ev.Data)))
		}
		return
	}
	if s.session == "" {
		return
	}
	var msg mcpMessage
	if !readJSON(ev.Data, &msg) {
		a.stats.Unparsed++
		return
	}
	if !msg.isResponse() || msg.ID.isNull() {
		return
	}
	a.opts.MCPSessions.answer(mcpKey{client: s.client, session: s.session, id: string(msg.ID)}, &msg, ev.Time)
}

// mcpStreamDone ends a watched stream; false when x is not one.
func (a *Assembler) mcpStreamDone(x *decode.Exchange) bool {
	i := a.mcpStreamIndex(x)
	if i < 0 {
		return false
	}
	a.endMCPStream(i)
	return true
}

// endMCPStream drops stream i; the calls that were only waiting for its
// answers end now, cut short.
func (a *Assembler) endMCPStream(i int) {
	s := a.streams[i]
	a.streams = append(a.streams[:i], a.streams[i+1:]...)
	if s.session != "" {
		a.opts.MCPSessions.streamEnded(s.client, s.session)
	}
}

// MCPSessions holds the MCP requests whose answers may arrive on another
// connection (the HTTP+SSE transport, or a resumed Streamable HTTP
// stream), keyed by side, session and JSON-RPC id. One is shared by the
// Assemblers of every connection; it is safe for concurrent use.
type MCPSessions struct {
	mu      sync.Mutex
	waiting map[mcpKey]*mcpWait
	order   []mcpKey // registration order, for the bound; may hold stale keys
}

// NewMCPSessions returns an empty table.
func NewMCPSessions() *MCPSessions {
	return &MCPSessions{waiting: map[mcpKey]*mcpWait{}}
}

type mcpKey struct {
	client  bool
	session string
	id      string
}

// mcpWait is a call that may be answered on a stream, and the Handler of
// the connection that started it.
type mcpWait struct {
	st *callState
	h  Handler
	// posted: its POST is over (acknowledged), so only the stream can end it.
	posted bool
}

// maxMCPWaiting bounds the table; past it the oldest entry goes, and a call
// that was only waiting ends cut short.
const maxMCPWaiting = 1024

func (s *MCPSessions) register(k mcpKey, w *mcpWait) bool {
	var evicted []*mcpWait
	s.mu.Lock()
	if _, dup := s.waiting[k]; dup {
		s.mu.Unlock()
		return false // a reused id: the first request keeps it
	}
	for len(s.waiting) >= maxMCPWaiting && len(s.order) > 0 {
		old := s.order[0]
		s.order = s.order[1:]
		if o, ok := s.waiting[old]; ok {
			delete(s.waiting, old)
			o.st.fam.(*mcpCall).registered = false
			if o.posted {
				evicted = append(evicted, o)
			}
		}
	}
	if len(s.order) > 4*maxMCPWaiting {
		s.compact()
	}
	s.waiting[k] = w
	s.order = append(s.order, k)
	s.mu.Unlock()
	for _, o := range evicted {
		o.st.abandon()
		o.h.CallEnded(o.st.c)
	}
	return true
}

// compact drops stale keys from order.
func (s *MCPSessions) compact() {
	kept := s.order[:0]
	for _, k := range s.order {
		if _, ok := s.waiting[k]; ok {
			kept = append(kept, k)
		}
	}
	clear(s.order[len(kept):])
	s.order = kept
}

// posted marks k's POST as over; false when k is no longer waiting.
func (s *MCPSessions) posted(k mcpKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.waiting[k]
	if ok {
		w.posted = true
	}
	return ok
}

func (s *MCPSessions) forget(k mcpKey) {
	s.mu.Lock()
	delete(s.waiting, k)
	s.mu.Unlock()
}

// answer gives msg to the call waiting under k; a call whose POST is over
// ends here.
func (s *MCPSessions) answer(k mcpKey, msg *mcpMessage, t time.Time) {
	s.mu.Lock()
	w, ok := s.waiting[k]
	if !ok {
		s.mu.Unlock()
		return
	}
	f := w.st.fam.(*mcpCall)
	f.take(w.st, msg, t)
	f.viaStream = true
	if !w.posted {
		// The POST's own end comes later and finishes the call.
		s.mu.Unlock()
		return
	}
	delete(s.waiting, k)
	f.registered = false
	s.mu.Unlock()
	w.st.endFromStream()
	w.h.CallEnded(w.st.c)
}

// streamEnded ends the calls of a session whose stream closed while they
// waited for it.
func (s *MCPSessions) streamEnded(client bool, session string) {
	var cut []*mcpWait
	s.mu.Lock()
	for k, w := range s.waiting {
		if k.client == client && k.session == session {
			delete(s.waiting, k)
			w.st.fam.(*mcpCall).registered = false
			if w.posted {
				cut = append(cut, w)
			}
		}
	}
	s.mu.Unlock()
	for _, w := range cut {
		w.st.abandon()
		w.h.CallEnded(w.st.c)
	}
}

// endFromStream completes a call answered on a stream after its POST ended.
func (st *callState) endFromStream() {
	st.fam.finish(st)
	st.out.finish(st)
	st.c.End = st.last
	mcpEnd(st)
	if st.c.End.Before(st.c.Start) {
		st.c.End = st.c.Start
	}
}
