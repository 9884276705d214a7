package export

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// toolTracker turns the tool calls a response asks for, and the later
// request of the same process that hands their results back, into one
// execute_tool span per tool execution: kind INTERNAL, in the calling
// process, from the last byte of the response that asked to the first byte
// of the request that answered — the time the application spent running the
// tool, which no wire shows directly.
//
// Results are matched to calls by the tool call id; where the API has none
// (Gemini, older Ollama) by tool name, oldest call first, and failing that
// by order alone. Only the results after a request's last assistant message
// are looked at (genai takes no others), and a result whose call was already
// answered — a retried request, or a history that repeats the last turn —
// is neither a new execution nor an orphan.
//
// # Parenting
//
// An execute_tool span sits beside the chat spans of the same agent loop,
// under the span that holds the loop:
//
//   - when the asking request carried a traceparent, that is the
//     application's span it names (usually its agent or workflow span), so
//     the tool span is a sibling of both chat spans in the application's
//     trace;
//   - when it carried none, the observer has no span above the chats, and
//     the loop's first chat span takes that place: the tool span is its
//     child, and the answering request, having no traceparent of its own,
//     is put under the same span. Each later round follows, so one user
//     turn with all its tool rounds is one trace, rooted at its first chat
//     span, with the chats and tools of the loop side by side in time order.
//
// The answering request itself may carry a traceparent naming another
// span; the tool span then goes under that one, in the answering request's
// trace, as the tool ran in the context that sent its result.
//
// The span's IDs are chosen when the asking response ends, not when the
// answer comes, so that calls the tool makes while it runs (an MCP
// tools/call to a tool server) can be parented under it: runningTool finds
// it.
//
// # Bounds and counts
//
// A call waits at most wait for its answer and each process holds at most
// maxPendingTools waiting calls, the oldest pushed out first; either way it
// is counted (ToolStats). Without content capture nothing of the arguments
// or results is held: ids, names, times and span IDs only.
type toolTracker struct {
	wait time.Duration

	mu    sync.Mutex
	procs map[processKey]*processTools

	unanswered, evicted, orphaned, executions atomic.Uint64
}

const (
	// defaultToolWait is how long a tool call waits for its result: agents
	// run tools for seconds, sometimes minutes (a human approving a step),
	// rarely longer.
	defaultToolWait = 10 * time.Minute
	// maxPendingTools bounds the tool calls one process may have waiting.
	maxPendingTools = 256
	// maxAnsweredTools bounds the answered calls remembered per process,
	// for retried requests and for calls a tool makes late.
	maxAnsweredTools = 256
	// maxToolProcesses bounds the processes tracked at once.
	maxToolProcesses = 4096
)

// processTools is the tool state of one process.
type processTools struct {
	pending  []*toolExecution // oldest first
	answered []*toolExecution // oldest first
}

// toolExecution is one tool call from the response that asked for it to
// the request that answered it.
type toolExecution struct {
	id, name, typ string
	args          string // only with output capture
	asked         time.Time
	answeredAt    time.Time // zero while waiting
	deadline      time.Time // wall clock: dropped after it
	span          trace.SpanContext
	parent        trace.SpanContext
}

func newToolTracker(wait time.Duration) *toolTracker {
	if wait <= 0 {
		wait = defaultToolWait
	}
	return &toolTracker{wait: wait, procs: map[processKey]*processTools{}}
}

// ToolStats counts what the execute_tool matching saw.
type ToolStats struct {
	// Executions is the execute_tool spans emitted.
	Executions uint64
	// Unanswered counts tool calls whose result no request of their
	// process carried within the wait.
	Unanswered uint64
	// Evicted counts tool calls pushed out unanswered by newer ones, past
	// the bound of calls one process may have waiting.
	Evicted uint64
	// Orphaned counts tool results that answered no tool call seen.
	Orphaned uint64
}

// ToolStats returns the execute_tool matching's counters so far; zeros
// when traces are not exported, since the matching then does not run.
func (e *Exporter) ToolStats() ToolStats {
	if e.tools == nil {
		return ToolStats{}
	}
	t := e.tools
	return ToolStats{
		Executions: t.executions.Load(),
		Unanswered: t.unanswered.Load(),
		Evicted:    t.evicted.Load(),
		Orphaned:   t.orphaned.Load(),
	}
}

// asked records the tool calls of client call c, which ended with span
// chat, to wait for their results.
func (t *toolTracker) asked(pk processKey, c *genai.Call, chat trace.SpanContext, now time.Time) {
	parent := requestSpanContext(c)
	if !parent.IsValid() {
		parent = chat
	}
	if !parent.IsValid() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.procs[pk]
	for i := range c.ToolCalls {
		tc := &c.ToolCalls[i]
		if tc.Type != genai.ToolFunction || tc.Name == "" && tc.ID == "" {
			continue // the provider ran it itself: no request answers it
		}
		if pt == nil {
			if len(t.procs) >= maxToolProcesses {
				t.evicted.Add(1)
				continue
			}
			pt = &processTools{}
			t.procs[pk] = pt
		}
		if len(pt.pending) >= maxPendingTools {
			pt.pending[0] = nil
			pt.pending = pt.pending[1:]
			t.evicted.Add(1)
		}
		pt.pending = append(pt.pending, &toolExecution{
			id: tc.ID, name: tc.Name, typ: tc.Type, args: tc.Arguments,
			asked: c.End, deadline: now.Add(t.wait),
			span: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: parent.TraceID(), SpanID: newSpanID(),
				TraceFlags: parent.TraceFlags() | trace.FlagsSampled, TraceState: parent.TraceState(),
			}),
			parent: parent,
		})
	}
}

// toolMatch is a tool execution ended by a result.
type toolMatch struct {
	x      *toolExecution
	args   string
	result *genai.ToolResult
}

// answer matches the tool results of client call c against the waiting
// calls of its process. It returns the executions they end and the span the
// answering request belongs under when it carries no traceparent: that of
// the executions it ends, else that of those it repeats the results of (a
// retried request stays in the loop's trace); invalid when neither.
func (t *toolTracker) answer(pk processKey, c *genai.Call, now time.Time) ([]toolMatch, trace.SpanContext) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.procs[pk]
	var (
		out            []toolMatch
		parent, repeat trace.SpanContext
	)
	for i := range c.ToolResults {
		r := &c.ToolResults[i]
		x := pt.take(r)
		if x == nil {
			if prev := pt.answeredBefore(r); prev != nil {
				if !repeat.IsValid() {
					repeat = prev.parent
				}
			} else {
				t.orphaned.Add(1)
			}
			continue
		}
		x.answeredAt = c.Start
		x.deadline = now.Add(t.wait)
		out = append(out, toolMatch{x: x, args: x.args, result: r})
		pt.remember(x)
		if !parent.IsValid() {
			parent = x.parent
		}
	}
	if !parent.IsValid() {
		parent = repeat
	}
	return out, parent
}

// take removes and returns the waiting call result r answers, or nil.
func (p *processTools) take(r *genai.ToolResult) *toolExecution {
	if p == nil {
		return nil
	}
	i := -1
	switch {
	case r.ID != "":
		i = p.find(func(x *toolExecution) bool { return x.id == r.ID })
		if i < 0 && r.Name != "" {
			i = p.find(func(x *toolExecution) bool { return x.id == "" && x.name == r.Name })
		}
	case r.Name != "":
		i = p.find(func(x *toolExecution) bool { return x.name == r.Name })
	default:
		i = p.find(func(x *toolExecution) bool { return x.id == "" })
	}
	if i < 0 {
		return nil
	}
	x := p.pending[i]
	p.pending = append(p.pending[:i], p.pending[i+1:]...)
	return x
}

func (p *processTools) find(match func(*toolExecution) bool) int {
	for i, x := range p.pending {
		if match(x) {
			return i
		}
	}
	return -1
}

// answeredBefore returns the latest answered call whose result r repeats
// (a retried request, or a history that lists it again), or nil.
func (p *processTools) answeredBefore(r *genai.ToolResult) *toolExecution {
	if p == nil || r.ID == "" && r.Name == "" {
		return nil
	}
	for i := len(p.answered) - 1; i >= 0; i-- {
		x := p.answered[i]
		if r.ID != "" && x.id == r.ID || r.ID == "" && x.name == r.Name {
			return x
		}
	}
	return nil
}

func (p *processTools) remember(x *toolExecution) {
	if len(p.answered) >= maxAnsweredTools {
		p.answered[0] = nil
		p.answered = p.answered[1:]
	}
	x.args = "" // its span is emitted; only what matching needs stays
	p.answered = append(p.answered, x)
}

// running returns the span of the tool execution of process pk under way at
// time at, for a call the tool makes while it runs: the one named name when
// there is one, else the only one under way. Executions answered since stay
// findable for the wait, for calls reported late.
func (t *toolTracker) running(pk processKey, name string, at time.Time) (trace.SpanContext, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.procs[pk]
	if pt == nil {
		return trace.SpanContext{}, false
	}
	var named, any *toolExecution
	n := 0
	for _, list := range [][]*toolExecution{pt.pending, pt.answered} {
		for _, x := range list {
			if at.Before(x.asked) || !x.answeredAt.IsZero() && at.After(x.answeredAt) {
				continue
			}
			n++
			any = x
			if name != "" && x.name == name {
				named = x
			}
		}
	}
	switch {
	case named != nil:
		return named.span, true
	case n == 1:
		return any.span, true
	}
	return trace.SpanContext{}, false
}

// expire drops the calls whose wait is over, counting those never answered.
func (t *toolTracker) expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pk, pt := range t.procs {
		pt.pending = keepLive(pt.pending, now, func() { t.unanswered.Add(1) })
		pt.answered = keepLive(pt.answered, now, func() {})
		if len(pt.pending) == 0 && len(pt.answered) == 0 {
			delete(t.procs, pk)
		}
	}
}

func keepLive(list []*toolExecution, now time.Time, dropped func()) []*toolExecution {
	kept := list[:0]
	for _, x := range list {
		if x.deadline.After(now) {
			kept = append(kept, x)
		} else {
			dropped()
		}
	}
	clear(list[len(kept):])
	return kept
}

// emitTool writes the execute_tool span of one matched execution; answer
// is the request that carried the result.
func (e *Exporter) emitTool(pt *processTelemetry, m toolMatch, answer *genai.Call) {
	x := m.x
	parent := x.parent
	if app := requestSpanContext(answer); app.IsValid() {
		parent = app
	}
	name := semconv.GenAIOperationNameExecuteTool.Value.AsString()
	if x.name != "" {
		name += " " + x.name
	}
	var buf [8]attribute.KeyValue
	d := spanData{
		name: name, kind: trace.SpanKindInternal,
		start: x.asked, end: x.answeredAt,
		self: x.span, parent: parent,
		attrs: append(buf[:0], semconv.GenAIOperationNameExecuteTool),
	}
	if x.name != "" {
		d.attrs = append(d.attrs, semconv.GenAIToolName(x.name))
	}
	if x.id != "" {
		d.attrs = append(d.attrs, semconv.GenAIToolCallID(x.id))
	}
	if x.typ != "" {
		d.attrs = append(d.attrs, semconv.GenAIToolType(x.typ))
	}
	if m.result.Error {
		d.attrs = append(d.attrs, semconv.ErrorTypeKey.String(errorTypeToolFailed))
		d.errMsg = "the tool's result says it failed"
	}
	if e.content.dest.toSpan() {
		d.attrs = append(d.attrs, e.content.toolAttributes(m.args, m.result.Content)...)
	}
	e.writeSpan(pt, &d)
	e.tools.executions.Add(1)
}

// errorTypeToolFailed is error.type of a tool execution whose result says
// it failed (Anthropic's is_error), as for an MCP result with isError.
const errorTypeToolFailed = "tool_error"

// toolAttributes returns gen_ai.tool.call.arguments (output capture: the
// model wrote them) and gen_ai.tool.call.result (input capture: the
// request carried it), redacted and capped like the other content. The
// conventions define them on the execute_tool span and no event for them,
// so they are left out when content goes to logs only.
func (p *contentPolicy) toolAttributes(args, result string) []attribute.KeyValue {
	if !p.enabled() {
		return nil
	}
	var out []attribute.KeyValue
	cut := false
	add := func(key attribute.Key, text string) {
		s, c := p.encode(validJSON(json.RawMessage(text)), false)
		out = append(out, key.String(s))
		cut = cut || c
	}
	if p.capture.Output() && args != "" {
		add(semconv.GenAIToolCallArgumentsKey, args)
	}
	if p.capture.Input() && result != "" {
		add(semconv.GenAIToolCallResultKey, result)
	}
	if cut {
		out = append(out, keyContentTruncated.Bool(true))
	}
	return out
}

// adoptToolParent puts an answering request without a traceparent of its
// own under the span its tool executions belong under, so that the chat
// span joins their trace: it fills the call's trace context as a
// traceparent header would have.
func adoptToolParent(c *genai.Call, parent trace.SpanContext) {
	if c.TraceParent != "" || !parent.IsValid() {
		return
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(trace.ContextWithRemoteSpanContext(context.Background(), parent), carrier)
	c.TraceParent = carrier["traceparent"]
	c.TraceState = carrier["tracestate"]
}

// toolsAnswered handles the tool results of a client call at its start:
// it emits the executions they end and brings the call into their trace.
// Called before pairing reserves the call's own span.
func (e *Exporter) toolsAnswered(p *Process, pt *processTelemetry, c *genai.Call, now time.Time) {
	if e.tools == nil || !c.Endpoint.ClientSide || len(c.ToolResults) == 0 {
		return
	}
	matches, parent := e.tools.answer(keyOfProcess(p), c, now)
	for _, m := range matches {
		e.emitTool(pt, m, c)
	}
	adoptToolParent(c, parent)
}

// toolsAsked records the tool calls of a client call that ended with span
// chat.
func (e *Exporter) toolsAsked(p *Process, c *genai.Call, chat trace.SpanContext, now time.Time) {
	if e.tools == nil || !c.Endpoint.ClientSide || len(c.ToolCalls) == 0 {
		return
	}
	e.tools.asked(keyOfProcess(p), c, chat, now)
}

// runningTool returns the span of the tool execution process p has under
// way at time at (see toolTracker.running); false when there is none or
// traces are off.
func (e *Exporter) runningTool(p *Process, name string, at time.Time) (trace.SpanContext, bool) {
	if e.tools == nil {
		return trace.SpanContext{}, false
	}
	return e.tools.running(keyOfProcess(p), name, at)
}
