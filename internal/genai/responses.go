package genai

import (
	"bytes"
	"strings"
	"time"
)

// responsesCall parses the OpenAI Responses API (/v1/responses). Its stream
// is typed events; usage, status and errors come with the final
// response.completed / response.incomplete / response.failed event.
type responsesCall struct{}

// responsesEvents holds the structs events and bodies are read into.
var responsesEvents scratch[responsesEvent]

type responsesRequest struct {
	Model              string        `json:"model"`
	Input              listSpan      `json:"input"`
	Instructions       span          `json:"instructions"`
	Stream             optBool       `json:"stream"`
	MaxOutputTokens    optInt        `json:"max_output_tokens"`
	Temperature        optFloat      `json:"temperature"`
	TopP               optFloat      `json:"top_p"`
	Tools              span          `json:"tools"`
	ServiceTier        string        `json:"service_tier"`
	User               string        `json:"user"`
	SafetyIdentifier   string        `json:"safety_identifier"`
	PreviousResponseID string        `json:"previous_response_id"`
	Conversation       span          `json:"conversation"`
	Text               responsesText `json:"text"`
}

type responsesText struct {
	Format typeOnly `json:"format"`
}

type responsesIncomplete struct {
	Reason span `json:"reason"`
}

type responsesItem struct {
	Type      span               `json:"type"`
	ID        span               `json:"id"`
	CallID    span               `json:"call_id"`
	Name      span               `json:"name"`
	Arguments span               `json:"arguments"`
	Content   []responsesContent `json:"content"`
	Summary   []responsesSummary `json:"summary"`
}

type responsesContent struct {
	Type    string `json:"type"`
	Text    span   `json:"text"`
	Refusal span   `json:"refusal"`
}

type responsesSummary struct {
	Text span `json:"text"`
}

type responsesObject struct {
	ID                span                `json:"id"`
	Model             span                `json:"model"`
	Status            span                `json:"status"`
	ServiceTier       span                `json:"service_tier"`
	Usage             wireUsage           `json:"usage"`
	Error             span                `json:"error"`
	IncompleteDetails responsesIncomplete `json:"incomplete_details"`
	Conversation      span                `json:"conversation"`
	Metrics           span                `json:"metrics"`
	Output            []responsesItem     `json:"output"`
}

type responsesEvent struct {
	Type        span            `json:"type"`
	Delta       span            `json:"delta"`
	OutputIndex optInt          `json:"output_index"`
	Arguments   span            `json:"arguments"`
	Item        responsesItem   `json:"item"`
	Response    responsesObject `json:"response"`
	// the "error" event
	Code    span `json:"code"`
	Message span `json:"message"`
	Error   span `json:"error"`
}

func (f *responsesCall) request(st *callState, body []byte, _, _ string) bool {
	var r responsesRequest
	if !st.json.decode(body, &r) {
		return false
	}
	c := st.c
	c.RequestModel = r.Model
	c.Stream = r.Stream.v
	c.MaxTokens = r.MaxOutputTokens.ptr()
	c.Temperature = r.Temperature.ptr()
	c.TopP = r.TopP.ptr()
	c.ServiceTier = r.ServiceTier
	c.OutputType = outputType(r.Text.Format.Type)
	if r.User != "" {
		st.setEndUser(r.User)
	} else {
		st.setEndUser(r.SafetyIdentifier)
	}
	c.ConversationID = conversationID(r.Conversation)
	if c.ConversationID == "" {
		c.ConversationID = r.PreviousResponseID
	}
	switch {
	case r.Input.raw.hasText():
		c.Messages = 1
	default:
		c.Messages = r.Input.n
		c.ToolResults = responsesToolResults(r.Input.raw, st.opts.CaptureInput)
	}
	if st.opts.CaptureInput {
		c.SystemInstructions = systemParts(r.Instructions)
		c.InputMessages = responsesInput(r.Input.raw)
		c.ToolDefinitions = toolDefinitions(r.Tools)
	}
	return true
}

// idOnly is an object of which only the id matters.
type idOnly struct {
	ID string `json:"id"`
}

// conversationID reads a conversation given as an id or as {"id": ...}.
func conversationID(raw span) string {
	if raw.hasText() {
		return raw.str()
	}
	if len(raw) > 0 && raw[0] == '{' {
		var o idOnly
		if readJSON(raw, &o) {
			return o.ID
		}
	}
	return ""
}

func (f *responsesCall) event(st *callState, name string, data []byte, t time.Time, timed bool) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, doneMarker) {
		return true
	}
	e := responsesEvents.get()
	defer responsesEvents.put(e)
	if !st.json.decode(data, e) {
		return false
	}
	typ := e.Type.str()
	if typ == "" {
		typ = name
	}
	ch := st.out.choice(0)
	key := int(e.OutputIndex.v)
	content := false
	switch typ {
	case "response.created", "response.in_progress", "response.queued":
		f.object(st, &e.Response, false)
	case "response.completed", "response.incomplete", "response.failed", "response.cancelled":
		f.object(st, &e.Response, true)
		st.terminal = true
	case "error":
		code := errorCode(e.Code, span(nil))
		msg := e.Message.str()
		if e.Error.nonEmpty() {
			code, msg = openAIError(e.Error)
		}
		st.fail(code, msg)
		st.terminal = true
	case "response.output_item.added", "response.output_item.done":
		if it := &e.Item; isToolItem(it.Type) {
			if typ == "response.output_item.added" {
				content = true
			}
			p := st.out.keyed(ch, key, partToolCall)
			if p != nil {
				f.toolItem(st, p, it, typ == "response.output_item.done")
			}
		}
	case "response.function_call_arguments.delta", "response.custom_tool_call_input.delta":
		if e.Delta.hasText() {
			content = true
			st.out.appendArgs(st.out.keyed(ch, key, partToolCall), e.Delta)
		}
	case "response.output_text.delta", "response.refusal.delta":
		if e.Delta.hasText() {
			content = true
			st.out.appendKeyedText(st.out.keyed(ch, key, partText), e.Delta)
		}
	case "response.reasoning_summary_text.delta", "response.reasoning_text.delta":
		if e.Delta.hasText() {
			content = true
			st.out.appendKeyedText(st.out.keyed(ch, key, partReasoning), e.Delta)
		}
	default:
		// Other generated deltas (audio transcripts, code interpreter input, ...).
		if strings.HasSuffix(typ, ".delta") && e.Delta.hasText() {
			content = true
		}
	}
	if content {
		st.contentChunk(t, timed)
	}
	return true
}

func isToolItem(typ span) bool {
	switch typ.str() {
	case "function_call", "custom_tool_call":
		return true
	}
	return false
}

// toolItem fills a tool-call part from an output item; a done item carries
// the complete arguments, which replace what the deltas built.
func (f *responsesCall) toolItem(st *callState, p *outPart, it *responsesItem, done bool) {
	if it.CallID.hasText() {
		it.CallID.setIfChanged(&p.id)
	} else if p.id == "" {
		it.ID.setIfChanged(&p.id)
	}
	it.Name.setIfChanged(&p.name)
	if st.out.capture && it.Arguments.hasText() && (done || len(p.text) == 0) {
		p.text = it.Arguments.appendStr(p.text[:0])
	}
}

// object takes what a response object says; final is set for the events
// that end the stream (and for a body).
func (f *responsesCall) object(st *callState, r *responsesObject, final bool) {
	c := st.c
	r.ID.setIfChanged(&c.ResponseID)
	r.Model.setIfChanged(&c.ResponseModel)
	r.ServiceTier.setIfChanged(&c.ResponseServiceTier)
	if c.ConversationID == "" {
		c.ConversationID = conversationID(r.Conversation)
	}
	if !final {
		return
	}
	if r.Usage.seen() {
		u := &r.Usage
		c.Usage.InputTokens = u.InputTokens.ptr()
		c.Usage.OutputTokens = u.OutputTokens.ptr()
		c.Usage.CacheReadInputTokens = u.InputTokensDetails.CachedTokens.ptr()
		c.Usage.ReasoningOutputTokens = u.OutputTokensDetails.ReasoningTokens.ptr()
	}
	ch := st.out.choice(0)
	if reason := r.IncompleteDetails.Reason.str(); reason != "" {
		ch.finish = reason
	} else if s := r.Status.str(); s != "" {
		ch.finish = s
	}
	if r.Error.nonEmpty() {
		st.fail(openAIError(r.Error))
	}
	if r.Metrics.nonEmpty() {
		st.setProvider(ProviderVLLM, rankEvidence)
		applyVLLMMetrics(&st.json, c, r.Metrics)
	}
}

func (f *responsesCall) body(st *callState, body []byte, t time.Time) bool {
	b := bytes.TrimSpace(body)
	if isEventStream(b) {
		st.c.Stream = true
		return forEachSSE(b, func(name string, data []byte) bool {
			return f.event(st, name, data, t, false)
		})
	}
	e := responsesEvents.get()
	defer responsesEvents.put(e)
	r := &e.Response
	if !st.json.decode(b, r) {
		return false
	}
	if r.Error.nonEmpty() && !r.Status.present() {
		// An HTTP error body: {"error": {...}}.
		st.fail(openAIError(r.Error))
		return true
	}
	f.object(st, r, true)
	st.terminal = true
	ch := st.out.choice(0)
	for i := range r.Output {
		it := &r.Output[i]
		switch it.Type.str() {
		case "message":
			for _, cp := range it.Content {
				st.out.appendText(ch, partText, cp.Text)
				st.out.appendText(ch, partText, cp.Refusal)
			}
		case "reasoning":
			for _, s := range it.Summary {
				st.out.appendText(ch, partReasoning, s.Text)
			}
		case "function_call", "custom_tool_call":
			id := it.CallID.str()
			if id == "" {
				id = it.ID.str()
			}
			st.out.newTool(ch, id, it.Name.str(), it.Arguments, false)
		}
	}
	return true
}

func (f *responsesCall) finish(*callState) {}

// responsesInputItem is an entry of a Responses request's input.
type responsesInputItem struct {
	Type      string        `json:"type"`
	Role      string        `json:"role"`
	Content   span          `json:"content"`
	CallID    string        `json:"call_id"`
	Name      string        `json:"name"`
	Arguments span          `json:"arguments"`
	Output    span          `json:"output"`
	Summary   []summaryText `json:"summary"`
}

type summaryText struct {
	Text string `json:"text"`
}

type responsesInputItems []responsesInputItem

func (l *responsesInputItems) readFrom(r *jsonReader) {
	readSlice(r, (*[]responsesInputItem)(l), (*responsesInputItem).readFrom)
}

// responsesInput converts Responses input: a string, or a list of message
// items, function calls and their outputs.
func responsesInput(raw span) []Message {
	if raw.hasText() {
		return []Message{{Role: "user", Parts: []Part{{Type: partText, Content: raw.str()}}}}
	}
	var items responsesInputItems
	if !readJSON(raw, &items) {
		return nil
	}
	var out []Message
	for _, it := range items {
		switch it.Type {
		case "function_call", "custom_tool_call":
			out = append(out, Message{Role: "assistant", Parts: []Part{{Type: partToolCall, ID: it.CallID, Name: it.Name, Arguments: argsValue(it.Arguments)}}})
		case "function_call_output", "custom_tool_call_output":
			out = append(out, Message{Role: "tool", Parts: []Part{{Type: partToolResponse, ID: it.CallID, Response: textValue(it.Output)}}})
		case "reasoning":
			var parts []Part
			for _, s := range it.Summary {
				if s.Text != "" {
					parts = append(parts, Part{Type: partReasoning, Content: s.Text})
				}
			}
			if len(parts) > 0 {
				out = append(out, Message{Role: "assistant", Parts: parts})
			}
		case "message", "":
			if it.Role == "" {
				continue
			}
			parts := textParts(it.Content)
			if parts == nil {
				parts = []Part{}
			}
			out = append(out, Message{Role: it.Role, Parts: parts})
		}
	}
	return out
}
