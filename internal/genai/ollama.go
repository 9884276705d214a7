package genai

import (
	"bytes"
	"time"
)

type ollamaKind uint8

const (
	ollamaChat ollamaKind = iota
	ollamaGenerate
	ollamaEmbed
)

// ollamaCall parses Ollama's native API: /api/chat, /api/generate and
// /api/embed (/api/embeddings). Streaming is the default there, as NDJSON;
// the last line (done: true) carries the counters and durations.
type ollamaCall struct {
	kind ollamaKind
	line ollamaLine // reused for every line
}

type ollamaOptions struct {
	Temperature      optFloat `json:"temperature"`
	TopP             optFloat `json:"top_p"`
	TopK             optFloat `json:"top_k"`
	Seed             optInt   `json:"seed"`
	NumPredict       optInt   `json:"num_predict"`
	Stop             stopList `json:"stop"`
	FrequencyPenalty optFloat `json:"frequency_penalty"`
	PresencePenalty  optFloat `json:"presence_penalty"`
}

type ollamaRequest struct {
	Model    string        `json:"model"`
	Messages listSpan      `json:"messages"`
	Prompt   span          `json:"prompt"`
	System   span          `json:"system"`
	Stream   optBool       `json:"stream"`
	Format   span          `json:"format"`
	Tools    span          `json:"tools"`
	Options  ollamaOptions `json:"options"`
}

type ollamaToolCall struct {
	ID       string         `json:"id"`
	Function ollamaFunction `json:"function"`
}

type ollamaFunction struct {
	Name      string `json:"name"`
	Arguments span   `json:"arguments"`
}

type ollamaMessage struct {
	Role      span             `json:"role"`
	Content   span             `json:"content"`
	Thinking  span             `json:"thinking"`
	ToolCalls []ollamaToolCall `json:"tool_calls"`
}

type ollamaLine struct {
	Model              span          `json:"model"`
	Message            ollamaMessage `json:"message"`
	Response           span          `json:"response"`
	Thinking           span          `json:"thinking"`
	Done               optBool       `json:"done"`
	DoneReason         span          `json:"done_reason"`
	TotalDuration      optInt        `json:"total_duration"`
	LoadDuration       optInt        `json:"load_duration"`
	PromptEvalCount    optInt        `json:"prompt_eval_count"`
	PromptEvalDuration optInt        `json:"prompt_eval_duration"`
	EvalCount          optInt        `json:"eval_count"`
	EvalDuration       optInt        `json:"eval_duration"`
	Error              span          `json:"error"`
}

func (f *ollamaCall) request(st *callState, body []byte, path, _ string) bool {
	var r ollamaRequest
	if !st.json.decode(body, &r) {
		return false
	}
	c := st.c
	c.RequestModel = r.Model
	// Ollama streams unless told not to; embeddings never stream.
	c.Stream = f.kind != ollamaEmbed && (!r.Stream.ok || r.Stream.v)
	o := &r.Options
	c.Temperature = o.Temperature.ptr()
	c.TopP = o.TopP.ptr()
	c.TopK = o.TopK.ptr()
	c.Seed = o.Seed.ptr()
	c.MaxTokens = o.NumPredict.ptr()
	c.FrequencyPenalty = o.FrequencyPenalty.ptr()
	c.PresencePenalty = o.PresencePenalty.ptr()
	c.StopSequences = o.Stop
	if r.Format.nonEmpty() {
		// "json" or a JSON schema object: either way the output is JSON.
		c.OutputType = "json"
	}
	switch f.kind {
	case ollamaChat:
		c.Messages = r.Messages.n
		c.ToolResults = chatToolResults(r.Messages.raw, st.opts.CaptureInput)
		if st.opts.CaptureInput {
			c.InputMessages = ollamaInput(r.Messages.raw)
		}
	case ollamaGenerate:
		if st.opts.CaptureInput {
			if s := r.System.str(); s != "" {
				c.SystemInstructions = []Part{{Type: partText, Content: s}}
			}
			if s := r.Prompt.str(); s != "" {
				c.InputMessages = []Message{{Role: "user", Parts: []Part{{Type: partText, Content: s}}}}
			}
		}
	}
	if st.opts.CaptureInput && f.kind != ollamaEmbed {
		c.ToolDefinitions = toolDefinitions(r.Tools)
	}
	return true
}

func (f *ollamaCall) event(st *callState, _ string, data []byte, t time.Time, timed bool) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return true
	}
	l := &f.line
	tools := reuse(l.Message.ToolCalls)
	*l = ollamaLine{}
	l.Message.ToolCalls = tools
	if !st.json.decode(data, l) {
		return false
	}
	c := st.c
	if l.Error.present() && !l.Error.isNull() {
		// An error line, possibly mid-stream with status 200: Ollama gives
		// only a message, no type.
		st.fail("", errorText(l.Error))
		st.terminal = true
		return true
	}
	l.Model.setIfChanged(&c.ResponseModel)
	ch := st.out.choice(0)
	content := false
	if l.Message.Content.hasText() || l.Response.hasText() {
		content = true
		st.out.appendText(ch, partText, l.Message.Content)
		st.out.appendText(ch, partText, l.Response)
	}
	if l.Message.Thinking.hasText() || l.Thinking.hasText() {
		content = true
		st.out.appendText(ch, partReasoning, l.Message.Thinking)
		st.out.appendText(ch, partReasoning, l.Thinking)
	}
	for i := range l.Message.ToolCalls {
		tc := &l.Message.ToolCalls[i]
		content = true
		st.out.newTool(ch, tc.ID, tc.Function.Name, tc.Function.Arguments, false)
	}
	if content {
		st.contentChunk(t, timed)
	}
	if l.Done.v || f.kind == ollamaEmbed {
		st.terminal = true
		if r := l.DoneReason.str(); r != "" {
			ch.finish = r
		}
		f.counters(st)
	}
	return true
}

// counters takes usage and server timings from the final object.
func (f *ollamaCall) counters(st *callState) {
	l := &f.line
	c := st.c
	c.Usage.InputTokens = l.PromptEvalCount.ptr()
	if f.kind != ollamaEmbed {
		c.Usage.OutputTokens = l.EvalCount.ptr()
	}
	var timing ServerTiming
	if l.TotalDuration.ok {
		timing.Total = nsDuration(l.TotalDuration.v)
	}
	if f.kind != ollamaEmbed {
		// The prompt phase (model load plus prompt evaluation) stands in for
		// the server's time to first token; Ollama reports no finer mark.
		if l.LoadDuration.ok || l.PromptEvalDuration.ok {
			timing.TimeToFirstToken = nsDuration(l.LoadDuration.v + l.PromptEvalDuration.v)
		}
		if l.EvalDuration.ok && l.EvalCount.ok && l.EvalCount.v > 0 {
			timing.TimePerOutputToken = nsDuration(l.EvalDuration.v / l.EvalCount.v)
		}
	}
	if timing != (ServerTiming{}) {
		timing.Source = "ollama"
		c.ServerTiming = timing
	}
}

func (f *ollamaCall) body(st *callState, body []byte, t time.Time) bool {
	ok := true
	n := 0
	forEachLine(body, func(line []byte) {
		n++
		if !f.event(st, "", line, t, false) {
			ok = false
		}
	})
	if n > 1 {
		st.c.Stream = true
	}
	return ok
}

func (f *ollamaCall) finish(*callState) {}

// ollamaInputMessage is an Ollama chat request message.
type ollamaInputMessage struct {
	Role       string           `json:"role"`
	Content    span             `json:"content"`
	Thinking   span             `json:"thinking"`
	ToolCalls  []ollamaToolCall `json:"tool_calls"`
	ToolName   string           `json:"tool_name"`
	ToolCallID string           `json:"tool_call_id"`
}

type ollamaMessages []ollamaInputMessage

func (l *ollamaMessages) readFrom(r *jsonReader) {
	readSlice(r, (*[]ollamaInputMessage)(l), (*ollamaInputMessage).readFrom)
}

// ollamaInput converts Ollama chat messages to the conventions' schema.
func ollamaInput(raw span) []Message {
	var msgs ollamaMessages
	if !readJSON(raw, &msgs) {
		return nil
	}
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		msg := Message{Role: m.Role, Parts: []Part{}}
		if m.Role == "tool" {
			msg.Parts = append(msg.Parts, Part{Type: partToolResponse, ID: m.ToolCallID, Response: textValue(m.Content)})
			out = append(out, msg)
			continue
		}
		if s := m.Thinking.str(); s != "" {
			msg.Parts = append(msg.Parts, Part{Type: partReasoning, Content: s})
		}
		if s := m.Content.str(); s != "" {
			msg.Parts = append(msg.Parts, Part{Type: partText, Content: s})
		}
		for _, tc := range m.ToolCalls {
			msg.Parts = append(msg.Parts, Part{Type: partToolCall, ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments.clone()})
		}
		out = append(out, msg)
	}
	return out
}

// forEachLine calls fn with each non-blank line of b.
func forEachLine(b []byte, fn func([]byte)) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			fn(line)
		}
	}
}

func nsDuration(ns int64) time.Duration {
	if ns < 0 {
		return 0
	}
	return time.Duration(ns)
}
