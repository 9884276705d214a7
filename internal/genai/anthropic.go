package genai

import (
	"bytes"
	"time"
)

// anthropicCall parses the Anthropic Messages API (/v1/messages). Its
// input_tokens excludes cached tokens, so the call reports input +
// cache_read + cache_creation; output_tokens in message_delta is cumulative.
type anthropicCall struct {
	input, cacheRead, cacheCreation optInt
}

// anthropicEvents holds the structs events and bodies are read into.
var anthropicEvents scratch[anthropicEvent]

type anthropicRequest struct {
	Model         string            `json:"model"`
	MaxTokens     optInt            `json:"max_tokens"`
	System        span              `json:"system"`
	Messages      listSpan          `json:"messages"`
	Temperature   optFloat          `json:"temperature"`
	TopP          optFloat          `json:"top_p"`
	TopK          optFloat          `json:"top_k"`
	StopSequences stopList          `json:"stop_sequences"`
	Stream        optBool           `json:"stream"`
	Tools         span              `json:"tools"`
	ServiceTier   string            `json:"service_tier"`
	Metadata      anthropicMetadata `json:"metadata"`
	OutputFormat  typeOnly          `json:"output_format"`
}

type anthropicMetadata struct {
	UserID string `json:"user_id"`
}

type anthropicBlock struct {
	Type     span `json:"type"`
	ID       span `json:"id"`
	Name     span `json:"name"`
	Text     span `json:"text"`
	Thinking span `json:"thinking"`
	Input    span `json:"input"`
}

type anthropicMessage struct {
	Type       span             `json:"type"`
	ID         span             `json:"id"`
	Model      span             `json:"model"`
	Role       span             `json:"role"`
	Content    []anthropicBlock `json:"content"`
	StopReason span             `json:"stop_reason"`
	Usage      wireUsage        `json:"usage"`
	Error      span             `json:"error"`
}

type anthropicEvent struct {
	Type         span                `json:"type"`
	Message      anthropicMessage    `json:"message"`
	Index        optInt              `json:"index"`
	ContentBlock anthropicBlock      `json:"content_block"`
	Delta        anthropicEventDelta `json:"delta"`
	Usage        wireUsage           `json:"usage"`
	Error        span                `json:"error"`
}

type anthropicEventDelta struct {
	Type        span `json:"type"`
	Text        span `json:"text"`
	PartialJSON span `json:"partial_json"`
	Thinking    span `json:"thinking"`
	StopReason  span `json:"stop_reason"`
}

func (f *anthropicCall) request(st *callState, body []byte, _, _ string) bool {
	var r anthropicRequest
	if !st.json.decode(body, &r) {
		return false
	}
	c := st.c
	c.RequestModel = r.Model
	c.Stream = r.Stream.v
	c.MaxTokens = r.MaxTokens.ptr()
	c.Temperature = r.Temperature.ptr()
	c.TopP = r.TopP.ptr()
	c.TopK = r.TopK.ptr()
	c.StopSequences = r.StopSequences
	c.ServiceTier = r.ServiceTier
	c.OutputType = outputType(r.OutputFormat.Type)
	c.Messages = r.Messages.n
	c.ToolResults = anthropicToolResults(r.Messages.raw, st.opts.CaptureInput)
	st.setEndUser(r.Metadata.UserID)
	if st.opts.CaptureInput {
		c.SystemInstructions = systemParts(r.System)
		c.InputMessages = anthropicInput(r.Messages.raw)
		c.ToolDefinitions = toolDefinitions(r.Tools)
	}
	return true
}

// usage records whichever counts a usage object holds; later ones are
// cumulative, so they replace earlier ones.
func (f *anthropicCall) usage(st *callState, u *wireUsage, final bool) {
	if u.InputTokens.ok {
		f.input = u.InputTokens
	}
	if u.CacheReadInputTokens.ok {
		f.cacheRead = u.CacheReadInputTokens
	}
	if u.CacheCreationInputTokens.ok {
		f.cacheCreation = u.CacheCreationInputTokens
	}
	// message_start's output_tokens is a placeholder, not a count.
	if final && u.OutputTokens.ok {
		st.c.Usage.OutputTokens = u.OutputTokens.ptr()
	}
	u.ServiceTier.setIfChanged(&st.c.ResponseServiceTier)
}

func (f *anthropicCall) event(st *callState, name string, data []byte, t time.Time, timed bool) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return true
	}
	e := anthropicEvents.get()
	defer anthropicEvents.put(e)
	if !st.json.decode(data, e) {
		return false
	}
	typ := e.Type.str()
	if typ == "" {
		typ = name
	}
	c := st.c
	ch := st.out.choice(0)
	key := int(e.Index.v)
	content := false
	switch typ {
	case "message_start":
		m := &e.Message
		m.ID.setIfChanged(&c.ResponseID)
		m.Model.setIfChanged(&c.ResponseModel)
		f.usage(st, &m.Usage, false)
	case "content_block_start":
		b := &e.ContentBlock
		switch b.Type.str() {
		case "tool_use", "server_tool_use":
			content = true
			if p := st.out.keyed(ch, key, partToolCall); p != nil {
				b.ID.setIfChanged(&p.id)
				b.Name.setIfChanged(&p.name)
				p.server = string(b.Type) == `"server_tool_use"`
			}
		case "text":
			if b.Text.hasText() {
				content = true
				st.out.appendKeyedText(st.out.keyed(ch, key, partText), b.Text)
			}
		case "thinking":
			if b.Thinking.hasText() {
				content = true
				st.out.appendKeyedText(st.out.keyed(ch, key, partReasoning), b.Thinking)
			}
		}
	case "content_block_delta":
		d := &e.Delta
		switch {
		case d.Text.hasText():
			content = true
			st.out.appendKeyedText(st.out.keyed(ch, key, partText), d.Text)
		case d.PartialJSON.hasText():
			content = true
			st.out.appendArgs(st.out.keyed(ch, key, partToolCall), d.PartialJSON)
		case d.Thinking.hasText():
			content = true
			st.out.appendKeyedText(st.out.keyed(ch, key, partReasoning), d.Thinking)
		}
	case "message_delta":
		if r := e.Delta.StopReason.str(); r != "" {
			ch.finish = r
		}
		f.usage(st, &e.Usage, true)
	case "message_stop":
		st.terminal = true
	case "error":
		st.fail(anthropicError(e.Error))
		st.terminal = true
	}
	if content {
		st.contentChunk(t, timed)
	}
	return true
}

// anthropicError reads {"type": "overloaded_error", "message": "..."}.
func anthropicError(raw span) (typ, msg string) {
	var e wireError
	if raw.nonEmpty() && readJSON(raw, &e) {
		return e.Type.str(), e.Message.str()
	}
	return "", ""
}

func (f *anthropicCall) body(st *callState, body []byte, t time.Time) bool {
	b := bytes.TrimSpace(body)
	if isEventStream(b) {
		st.c.Stream = true
		return forEachSSE(b, func(name string, data []byte) bool {
			return f.event(st, name, data, t, false)
		})
	}
	e := anthropicEvents.get()
	defer anthropicEvents.put(e)
	m := &e.Message
	if !st.json.decode(b, m) {
		return false
	}
	if string(m.Type) == `"error"` || m.Error.nonEmpty() {
		st.fail(anthropicError(m.Error))
		return true
	}
	c := st.c
	m.ID.setIfChanged(&c.ResponseID)
	m.Model.setIfChanged(&c.ResponseModel)
	f.usage(st, &m.Usage, true)
	ch := st.out.choice(0)
	if r := m.StopReason.str(); r != "" {
		ch.finish = r
	}
	for i := range m.Content {
		bl := &m.Content[i]
		switch bl.Type.str() {
		case "text":
			st.out.appendText(ch, partText, bl.Text)
		case "thinking":
			st.out.appendText(ch, partReasoning, bl.Thinking)
		case "tool_use", "server_tool_use":
			st.out.newTool(ch, bl.ID.str(), bl.Name.str(), bl.Input, string(bl.Type) == `"server_tool_use"`)
		}
	}
	st.terminal = true
	return true
}

func (f *anthropicCall) finish(st *callState) {
	if !f.input.ok {
		return
	}
	total := f.input.v + f.cacheRead.v + f.cacheCreation.v
	st.c.Usage.InputTokens = &total
	st.c.Usage.CacheReadInputTokens = f.cacheRead.ptr()
	st.c.Usage.CacheCreationInputTokens = f.cacheCreation.ptr()
}

// roleContent is a message with a role and content.
type roleContent struct {
	Role    string `json:"role"`
	Content span   `json:"content"`
}

type roleContents []roleContent

func (l *roleContents) readFrom(r *jsonReader) {
	readSlice(r, (*[]roleContent)(l), (*roleContent).readFrom)
}

// anthropicInput converts Messages API messages.
func anthropicInput(raw span) []Message {
	var msgs roleContents
	if !readJSON(raw, &msgs) {
		return nil
	}
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		parts := textParts(m.Content)
		if parts == nil {
			parts = []Part{}
		}
		out = append(out, Message{Role: m.Role, Parts: parts})
	}
	return out
}
