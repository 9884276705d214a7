package genai

import (
	"bytes"
	"strings"
	"time"
)

// geminiCall parses the Gemini API (generativelanguage.googleapis.com and
// Vertex AI): models/{model}:generateContent, :streamGenerateContent (SSE
// with alt=sse, else one JSON array) and :embedContent. The model is named
// in the path. Output tokens are candidates + thoughts (thoughts are billed
// as output, as OpenAI's completion_tokens include reasoning); finish
// reasons are lower-cased ("STOP" → "stop") to match the other APIs.
type geminiCall struct {
	embed bool
	chunk geminiChunk // reused for every event

	usageChunks int
	usage       geminiUsage
}

type geminiPart struct {
	Text         span               `json:"text"`
	Thought      span               `json:"thought"`
	FunctionCall geminiFunctionCall `json:"functionCall"`
}

type geminiFunctionCall struct {
	ID   span `json:"id"`
	Name span `json:"name"`
	Args span `json:"args"`
}

type geminiUsage struct {
	PromptTokenCount        optInt `json:"promptTokenCount"`
	CandidatesTokenCount    optInt `json:"candidatesTokenCount"`
	CachedContentTokenCount optInt `json:"cachedContentTokenCount"`
	ThoughtsTokenCount      optInt `json:"thoughtsTokenCount"`
	ToolUsePromptTokenCount optInt `json:"toolUsePromptTokenCount"`
}

type geminiChunk struct {
	Candidates     []geminiCandidate    `json:"candidates"`
	UsageMetadata  span                 `json:"usageMetadata"`
	ModelVersion   span                 `json:"modelVersion"`
	ResponseID     span                 `json:"responseId"`
	PromptFeedback geminiPromptFeedback `json:"promptFeedback"`
	Error          span                 `json:"error"`
}

type geminiCandidate struct {
	Content      geminiContent `json:"content"`
	FinishReason span          `json:"finishReason"`
	Index        optInt        `json:"index"`
}

type geminiContent struct {
	Role  span         `json:"role"`
	Parts []geminiPart `json:"parts"`
}

type geminiPromptFeedback struct {
	BlockReason span `json:"blockReason"`
}

type geminiRequest struct {
	Contents          listSpan     `json:"contents"`
	SystemInstruction span         `json:"systemInstruction"`
	Tools             span         `json:"tools"`
	GenerationConfig  geminiConfig `json:"generationConfig"`
}

type geminiConfig struct {
	Temperature      optFloat `json:"temperature"`
	TopP             optFloat `json:"topP"`
	TopK             optFloat `json:"topK"`
	MaxOutputTokens  optInt   `json:"maxOutputTokens"`
	CandidateCount   optInt   `json:"candidateCount"`
	StopSequences    stopList `json:"stopSequences"`
	Seed             optInt   `json:"seed"`
	PresencePenalty  optFloat `json:"presencePenalty"`
	FrequencyPenalty optFloat `json:"frequencyPenalty"`
	ResponseMimeType string   `json:"responseMimeType"`
}

func (f *geminiCall) request(st *callState, body []byte, path, query string) bool {
	c := st.c
	c.RequestModel = modelFromPath(path)
	c.Stream = strings.HasSuffix(path, ":streamGenerateContent")
	var r geminiRequest
	if !st.json.decode(body, &r) {
		return false
	}
	g := &r.GenerationConfig
	c.Temperature = g.Temperature.ptr()
	c.TopP = g.TopP.ptr()
	c.TopK = g.TopK.ptr()
	c.MaxTokens = g.MaxOutputTokens.ptr()
	if g.CandidateCount.ok {
		c.ChoiceCount = int(g.CandidateCount.v)
	}
	c.StopSequences = g.StopSequences
	c.Seed = g.Seed.ptr()
	c.PresencePenalty = g.PresencePenalty.ptr()
	c.FrequencyPenalty = g.FrequencyPenalty.ptr()
	switch {
	case strings.Contains(g.ResponseMimeType, "json"):
		c.OutputType = "json"
	case strings.HasPrefix(g.ResponseMimeType, "text/"):
		c.OutputType = "text"
	}
	if !f.embed {
		c.Messages = r.Contents.n
		c.ToolResults = geminiToolResults(r.Contents.raw, st.opts.CaptureInput)
	}
	if st.opts.CaptureInput && !f.embed {
		c.SystemInstructions = geminiSystem(r.SystemInstruction)
		c.InputMessages = geminiInput(r.Contents.raw)
		c.ToolDefinitions = toolDefinitions(r.Tools)
	}
	return true
}

func (f *geminiCall) event(st *callState, _ string, data []byte, t time.Time, timed bool) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return true
	}
	ch := &f.chunk
	*ch = geminiChunk{Candidates: reuse(ch.Candidates)}
	if !st.json.decode(data, ch) {
		return false
	}
	if f.fold(st) {
		st.contentChunk(t, timed)
	}
	return true
}

// fold merges the parsed chunk and reports whether it carried content.
func (f *geminiCall) fold(st *callState) (content bool) {
	ch := &f.chunk
	c := st.c
	if ch.Error.nonEmpty() {
		st.fail(geminiError(ch.Error))
		st.terminal = true
		return false
	}
	ch.ModelVersion.setIfChanged(&c.ResponseModel)
	ch.ResponseID.setIfChanged(&c.ResponseID)
	for i := range ch.Candidates {
		cand := &ch.Candidates[i]
		idx := i
		if cand.Index.ok {
			idx = int(cand.Index.v)
		}
		out := st.out.choice(idx)
		for j := range cand.Content.Parts {
			p := &cand.Content.Parts[j]
			if p.Text.hasText() {
				content = true
				typ := partText
				if string(p.Thought) == "true" {
					typ = partReasoning
				}
				st.out.appendText(out, typ, p.Text)
			}
			if fc := &p.FunctionCall; fc.Name.hasText() {
				content = true
				st.out.newTool(out, fc.ID.str(), fc.Name.str(), fc.Args, false)
			}
		}
		if r := cand.FinishReason.str(); r != "" && out != nil {
			out.finish = strings.ToLower(r)
			st.terminal = true
		}
	}
	if len(ch.Candidates) == 0 {
		if r := ch.PromptFeedback.BlockReason.str(); r != "" {
			// The prompt was refused: no candidate, so this is the only reason.
			st.out.choice(0).finish = strings.ToLower(r)
			st.terminal = true
		}
	}
	if ch.UsageMetadata.nonEmpty() {
		var u geminiUsage
		if st.json.decode(ch.UsageMetadata, &u) {
			f.usageChunks++
			f.usage = u
		}
	}
	return content
}

// geminiError reads {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED"}.
func geminiError(raw span) (typ, msg string) {
	var e wireError
	if !readJSON(raw, &e) {
		return "", errorText(raw)
	}
	return e.Status.str(), e.Message.str()
}

func (f *geminiCall) body(st *callState, body []byte, t time.Time) bool {
	b := bytes.TrimSpace(body)
	if isEventStream(b) {
		st.c.Stream = true
		return forEachSSE(b, func(name string, data []byte) bool {
			return f.event(st, name, data, t, false)
		})
	}
	if len(b) > 0 && b[0] == '[' {
		// streamGenerateContent without alt=sse: the chunks as one array.
		var items spanList
		if !st.json.decode(b, &items) {
			return false
		}
		ok := true
		for _, it := range items {
			ok = f.event(st, "", it, t, false) && ok
		}
		return ok
	}
	if f.embed {
		var e errorOnly
		if !st.json.decode(b, &e) {
			return false
		}
		if e.Error.nonEmpty() {
			st.fail(geminiError(e.Error))
		}
		return true
	}
	ok := f.event(st, "", b, t, false)
	st.terminal = st.terminal || ok
	return ok
}

func (f *geminiCall) finish(st *callState) {
	if f.usageChunks == 0 {
		return
	}
	u := &f.usage
	c := st.c
	if u.PromptTokenCount.ok {
		in := u.PromptTokenCount.v + u.ToolUsePromptTokenCount.v
		c.Usage.InputTokens = &in
	}
	c.Usage.CacheReadInputTokens = u.CachedContentTokenCount.ptr()
	// Streams repeat usageMetadata in every chunk, counting so far; the
	// output count is the total only if the stream got to its end.
	if st.terminal || f.usageChunks == 1 && !c.Stream {
		if u.CandidatesTokenCount.ok || u.ThoughtsTokenCount.ok {
			out := u.CandidatesTokenCount.v + u.ThoughtsTokenCount.v
			c.Usage.OutputTokens = &out
		}
		c.Usage.ReasoningOutputTokens = u.ThoughtsTokenCount.ptr()
	}
}

// geminiInputContent is an entry of a Gemini request's contents.
type geminiInputContent struct {
	Role  string            `json:"role"`
	Parts []geminiInputPart `json:"parts"`
}

type geminiInputPart struct {
	Text             span                 `json:"text"`
	Thought          span                 `json:"thought"`
	FunctionCall     *geminiInputCall     `json:"functionCall"`
	FunctionResponse *geminiInputResponse `json:"functionResponse"`
}

type geminiInputCall struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Args span   `json:"args"`
}

type geminiInputResponse struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Response span   `json:"response"`
}

type geminiContents []geminiInputContent

func (l *geminiContents) readFrom(r *jsonReader) {
	readSlice(r, (*[]geminiInputContent)(l), (*geminiInputContent).readFrom)
}

// geminiSystemInstruction is a Gemini request's systemInstruction.
type geminiSystemInstruction struct {
	Parts []geminiTextPart `json:"parts"`
}

type geminiTextPart struct {
	Text span `json:"text"`
}

// errorOnly is a body of which only the error matters.
type errorOnly struct {
	Error span `json:"error"`
}

// geminiInput converts Gemini contents; role "model" is the assistant.
func geminiInput(raw span) []Message {
	var contents geminiContents
	if !readJSON(raw, &contents) {
		return nil
	}
	out := make([]Message, 0, len(contents))
	for _, ct := range contents {
		msg := Message{Role: geminiRole(ct.Role), Parts: []Part{}}
		for _, p := range ct.Parts {
			switch {
			case p.FunctionCall != nil:
				msg.Parts = append(msg.Parts, Part{Type: partToolCall, ID: p.FunctionCall.ID, Name: p.FunctionCall.Name, Arguments: p.FunctionCall.Args.clone()})
			case p.FunctionResponse != nil:
				msg.Parts = append(msg.Parts, Part{Type: partToolResponse, ID: p.FunctionResponse.ID, Response: p.FunctionResponse.Response.clone()})
			case p.Text.hasText():
				typ := partText
				if string(p.Thought) == "true" {
					typ = partReasoning
				}
				msg.Parts = append(msg.Parts, Part{Type: typ, Content: p.Text.str()})
			}
		}
		out = append(out, msg)
	}
	return out
}

func geminiRole(r string) string {
	switch r {
	case "model":
		return "assistant"
	case "", "user":
		return "user"
	case "function":
		return "tool"
	}
	return r
}

// geminiSystem converts systemInstruction ({"parts": [{"text": ...}]}).
func geminiSystem(raw span) []Part {
	if raw.isNull() {
		return nil
	}
	if raw.hasText() {
		return []Part{{Type: partText, Content: raw.str()}}
	}
	var si geminiSystemInstruction
	if !readJSON(raw, &si) {
		return nil
	}
	var parts []Part
	for _, p := range si.Parts {
		if s := p.Text.str(); s != "" {
			parts = append(parts, Part{Type: partText, Content: s})
		}
	}
	return parts
}
