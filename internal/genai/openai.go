package genai

import (
	"bytes"
	"math"
	"sync"
	"time"
)

type chatKind uint8

const (
	chatCompletions chatKind = iota
	textCompletions
	embeddings
)

// chatCall parses the OpenAI chat completions, legacy completions and
// embeddings APIs as served by OpenAI and every compatible server (vLLM,
// llama.cpp, Ollama's /v1, LiteLLM, Azure, ...), and llama.cpp's native
// /completion, whose stream differs only in its fields.
type chatCall struct {
	kind chatKind
	// chunk is the event or body being folded, taken from chatChunks for
	// it and given back after: a chunk is over 600 bytes, and a stream
	// waiting for its next event needs none.
	chunk *chatChunk
	// usageRunning is set when usage came in more than one chunk (vLLM's
	// continuous usage stats): its output count is then only the total if
	// the stream ended properly.
	usageSeen    bool
	usageRunning bool
	choicesDone  int
}

type chatRequest struct {
	Model               string   `json:"model"`
	Messages            listSpan `json:"messages"`
	Prompt              span     `json:"prompt"`
	Stream              optBool  `json:"stream"`
	Temperature         optFloat `json:"temperature"`
	TopP                optFloat `json:"top_p"`
	TopK                optFloat `json:"top_k"`
	FrequencyPenalty    optFloat `json:"frequency_penalty"`
	PresencePenalty     optFloat `json:"presence_penalty"`
	MaxTokens           optInt   `json:"max_tokens"`
	MaxCompletionTokens optInt   `json:"max_completion_tokens"`
	NPredict            optInt   `json:"n_predict"`
	N                   optInt   `json:"n"`
	Seed                optInt   `json:"seed"`
	Stop                stopList `json:"stop"`
	Tools               span     `json:"tools"`
	Functions           span     `json:"functions"`
	ResponseFormat      typeOnly `json:"response_format"`
	JSONSchema          span     `json:"json_schema"`
	ServiceTier         string   `json:"service_tier"`
	User                string   `json:"user"`
	SafetyIdentifier    string   `json:"safety_identifier"`
}

// wireUsage is the union of the usage objects of OpenAI chat/completions,
// Responses and Anthropic messages.
type wireUsage struct {
	PromptTokens            optInt           `json:"prompt_tokens"`
	CompletionTokens        optInt           `json:"completion_tokens"`
	PromptTokensDetails     cachedDetails    `json:"prompt_tokens_details"`
	CompletionTokensDetails reasoningDetails `json:"completion_tokens_details"`

	InputTokens         optInt           `json:"input_tokens"`
	OutputTokens        optInt           `json:"output_tokens"`
	InputTokensDetails  cachedDetails    `json:"input_tokens_details"`
	OutputTokensDetails reasoningDetails `json:"output_tokens_details"`

	CacheReadInputTokens     optInt `json:"cache_read_input_tokens"`
	CacheCreationInputTokens optInt `json:"cache_creation_input_tokens"`
	ServiceTier              span   `json:"service_tier"`
}

// seen reports whether any count was present.
func (u *wireUsage) seen() bool {
	return u.PromptTokens.ok || u.CompletionTokens.ok || u.InputTokens.ok || u.OutputTokens.ok
}

// applyOpenAI stores a chat-completions usage object into the call.
func (u *wireUsage) applyOpenAI(c *Call) {
	if u.PromptTokens.ok {
		c.Usage.InputTokens = u.PromptTokens.ptr()
	}
	if u.CompletionTokens.ok {
		c.Usage.OutputTokens = u.CompletionTokens.ptr()
	}
	if u.PromptTokensDetails.CachedTokens.ok {
		c.Usage.CacheReadInputTokens = u.PromptTokensDetails.CachedTokens.ptr()
	}
	if u.CompletionTokensDetails.ReasoningTokens.ok {
		c.Usage.ReasoningOutputTokens = u.CompletionTokensDetails.ReasoningTokens.ptr()
	}
}

type cachedDetails struct {
	CachedTokens optInt `json:"cached_tokens"`
}

type reasoningDetails struct {
	ReasoningTokens optInt `json:"reasoning_tokens"`
}

// typeOnly is an object of which only the type matters (response_format).
type typeOnly struct {
	Type string `json:"type"`
}

type chatToolDelta struct {
	Index    optInt       `json:"index"`
	ID       span         `json:"id"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      span `json:"name"`
	Arguments span `json:"arguments"`
}

type chatMessage struct {
	Role             span            `json:"role"`
	Content          span            `json:"content"`
	ReasoningContent span            `json:"reasoning_content"`
	Reasoning        span            `json:"reasoning"`
	Refusal          span            `json:"refusal"`
	ToolCalls        []chatToolDelta `json:"tool_calls"`
}

type chatChoice struct {
	Index        optInt      `json:"index"`
	Delta        chatMessage `json:"delta"`
	Message      chatMessage `json:"message"`
	Text         span        `json:"text"`
	FinishReason span        `json:"finish_reason"`
	StopReason   span        `json:"stop_reason"` // vLLM only
}

// vllmMetrics is vLLM's per-request "metrics" object (--enable-per-request-metrics).
type vllmMetrics struct {
	TimeToFirstTokenMs optFloat `json:"time_to_first_token_ms"`
	GenerationTimeMs   optFloat `json:"generation_time_ms"`
	QueueTimeMs        optFloat `json:"queue_time_ms"`
	MeanITLMs          optFloat `json:"mean_itl_ms"`
}

// llamaTimings is llama.cpp's "timings" object.
type llamaTimings struct {
	PromptN     optInt   `json:"prompt_n"`
	PromptMs    optFloat `json:"prompt_ms"`
	PredictedN  optInt   `json:"predicted_n"`
	PredictedMs optFloat `json:"predicted_ms"`
}

// chatChunk is one stream chunk or a whole response body.
type chatChunk struct {
	ID                span         `json:"id"`
	Model             span         `json:"model"`
	SystemFingerprint span         `json:"system_fingerprint"`
	ServiceTier       span         `json:"service_tier"`
	Choices           []chatChoice `json:"choices"`
	Usage             wireUsage    `json:"usage"`
	Error             span         `json:"error"`
	Metrics           span         `json:"metrics"`
	Timings           span         `json:"timings"`
	PromptLogprobs    span         `json:"prompt_logprobs"`
	KVTransferParams  span         `json:"kv_transfer_params"`

	// vLLM's older error shape: {"object":"error","message","type","code"}.
	Object  span `json:"object"`
	Message span `json:"message"`
	Type    span `json:"type"`
	Code    span `json:"code"`

	// llama.cpp native /completion.
	Content         span   `json:"content"`
	Stop            span   `json:"stop"`
	StopType        span   `json:"stop_type"`
	TokensPredicted optInt `json:"tokens_predicted"`
	TokensEvaluated optInt `json:"tokens_evaluated"`
	TokensCached    optInt `json:"tokens_cached"`
}

// chatRequests holds the structs request bodies are read into: one escapes
// to the heap through the jsonObject it is read as, and is needed only
// while the body is read.
var chatRequests scratch[chatRequest]

func (f *chatCall) request(st *callState, body []byte, path, _ string) bool {
	r := chatRequests.get()
	defer chatRequests.put(r)
	if !st.json.decode(body, r) {
		return false
	}
	c := st.c
	c.RequestModel = r.Model
	if c.RequestModel == "" {
		c.RequestModel = modelFromPath(path) // Azure names the deployment in the path
	}
	c.Stream = r.Stream.v
	c.Temperature = r.Temperature.ptr()
	c.TopP = r.TopP.ptr()
	c.TopK = r.TopK.ptr()
	c.FrequencyPenalty = r.FrequencyPenalty.ptr()
	c.PresencePenalty = r.PresencePenalty.ptr()
	switch {
	case r.MaxCompletionTokens.ok:
		c.MaxTokens = r.MaxCompletionTokens.ptr()
	case r.MaxTokens.ok:
		c.MaxTokens = r.MaxTokens.ptr()
	case r.NPredict.ok:
		c.MaxTokens = r.NPredict.ptr()
	}
	if r.N.ok {
		c.ChoiceCount = int(r.N.v)
	}
	c.Seed = r.Seed.ptr()
	c.StopSequences = r.Stop
	c.OutputType = outputType(r.ResponseFormat.Type)
	if c.OutputType == "" && r.JSONSchema.nonEmpty() {
		c.OutputType = "json" // llama.cpp's native json_schema
	}
	c.ServiceTier = r.ServiceTier
	if r.User != "" {
		st.setEndUser(r.User)
	} else {
		st.setEndUser(r.SafetyIdentifier)
	}
	switch f.kind {
	case chatCompletions:
		c.Messages = r.Messages.n
		c.ToolResults = chatToolResults(r.Messages.raw, st.opts.CaptureInput)
		if st.opts.CaptureInput {
			c.InputMessages = openAIInput(r.Messages.raw)
		}
	case textCompletions:
		if st.opts.CaptureInput {
			c.InputMessages = promptInput(r.Prompt)
		}
	}
	if st.opts.CaptureInput && f.kind == chatCompletions {
		if r.Tools.nonEmpty() {
			c.ToolDefinitions = toolDefinitions(r.Tools)
		} else {
			c.ToolDefinitions = toolDefinitions(r.Functions)
		}
	}
	return true
}

// outputType maps a response_format / text.format type to gen_ai.output.type.
func outputType(t string) string {
	switch t {
	case "json_object", "json_schema", "json":
		return "json"
	case "text":
		return "text"
	}
	return ""
}

var doneMarker = []byte("[DONE]")

func (f *chatCall) event(st *callState, _ string, data []byte, t time.Time, timed bool) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return true
	}
	if bytes.Equal(data, doneMarker) {
		st.terminal = true
		return true
	}
	ok := f.parse(st, data)
	if ok && f.fold(st, true) {
		st.contentChunk(t, timed)
	}
	f.release()
	return ok
}

// chatChunks holds the chunks of no event being folded.
var chatChunks = sync.Pool{New: func() any { return new(chatChunk) }}

// parse decodes data into a chunk from chatChunks; release gives it back.
func (f *chatCall) parse(st *callState, data []byte) bool {
	f.chunk = chatChunks.Get().(*chatChunk)
	return st.json.decode(data, f.chunk)
}

// release clears the chunk, which points into the event's data, and gives
// it back with room for a few choices.
func (f *chatCall) release() {
	ch := f.chunk
	f.chunk = nil
	choices := ch.Choices
	if cap(choices) > maxKeptChoices {
		choices = nil
	}
	*ch = chatChunk{Choices: reuse(choices)}
	chatChunks.Put(ch)
}

// maxKeptChoices bounds the choices a pooled chunk keeps room for; more
// are rare (n > 1) and not worth holding between calls.
const maxKeptChoices = 8

// fold merges the parsed chunk into the call and reports whether it carried
// generated content.
func (f *chatCall) fold(st *callState, streamed bool) (content bool) {
	ch := f.chunk
	c := st.c
	if f.error(st) {
		st.terminal = true
		return false
	}
	ch.ID.setIfChanged(&c.ResponseID)
	ch.Model.setIfChanged(&c.ResponseModel)
	ch.SystemFingerprint.setIfChanged(&c.SystemFingerprint)
	ch.ServiceTier.setIfChanged(&c.ResponseServiceTier)
	if string(ch.SystemFingerprint) == `"fp_ollama"` {
		st.setProvider(ProviderOllama, rankEvidence)
	}
	if ch.PromptLogprobs.present() || ch.KVTransferParams.present() {
		st.setProvider(ProviderVLLM, rankEvidence)
	}
	for i := range ch.Choices {
		cc := &ch.Choices[i]
		idx := i
		if cc.Index.ok {
			idx = int(cc.Index.v)
		}
		if cc.StopReason.present() {
			st.setProvider(ProviderVLLM, rankEvidence)
		}
		out := st.out.choice(idx)
		msg := &cc.Delta
		if !streamed || (!msg.Content.present() && cc.Message.Content.present()) || len(cc.Message.ToolCalls) > 0 {
			msg = &cc.Message
		}
		if f.foldMessage(st, out, msg, streamed) {
			content = true
		}
		if cc.Text.hasText() {
			content = true
			st.out.appendText(out, partText, cc.Text)
		}
		if r := cc.FinishReason.str(); r != "" && out != nil {
			if out.finish == "" {
				f.choicesDone++
			}
			out.finish = r
		}
	}
	// llama.cpp native /completion.
	if ch.Content.hasText() {
		content = true
		st.out.appendText(st.out.choice(0), partText, ch.Content)
	}
	if string(ch.Stop) == "true" {
		st.terminal = true
		if r := ch.StopType.str(); r != "" && r != "none" {
			st.out.choice(0).finish = r
		}
		if ch.TokensEvaluated.ok {
			c.Usage.InputTokens = ch.TokensEvaluated.ptr()
		}
		if ch.TokensPredicted.ok {
			c.Usage.OutputTokens = ch.TokensPredicted.ptr()
		}
		if ch.TokensCached.ok {
			c.Usage.CacheReadInputTokens = ch.TokensCached.ptr()
		}
	}
	if ch.Usage.seen() {
		if f.usageSeen {
			f.usageRunning = true
		}
		f.usageSeen = true
		ch.Usage.applyOpenAI(c)
	}
	if ch.Metrics.nonEmpty() {
		st.setProvider(ProviderVLLM, rankEvidence)
		applyVLLMMetrics(&st.json, c, ch.Metrics)
	}
	if ch.Timings.nonEmpty() {
		st.setProvider(ProviderLlamaCpp, rankEvidence)
		applyLlamaTimings(&st.json, c, ch.Timings)
	}
	return content
}

// foldMessage merges one delta (or whole message) of a choice.
func (f *chatCall) foldMessage(st *callState, out *outChoice, m *chatMessage, streamed bool) (content bool) {
	if out != nil && out.role == "" {
		m.Role.setIfChanged(&out.role)
	}
	// Reasoning first: a whole message lists it before the answer it led to.
	for _, r := range [...]span{m.ReasoningContent, m.Reasoning} {
		if r.hasText() {
			content = true
			st.out.appendText(out, partReasoning, r)
		}
	}
	if m.Content.hasText() {
		content = true
		st.out.appendText(out, partText, m.Content)
	}
	if m.Refusal.hasText() {
		content = true
		st.out.appendText(out, partText, m.Refusal)
	}
	for i := range m.ToolCalls {
		td := &m.ToolCalls[i]
		key := i
		if streamed && td.Index.ok {
			key = int(td.Index.v)
		}
		if !td.ID.hasText() && !td.Function.Name.hasText() && !td.Function.Arguments.hasText() {
			continue
		}
		content = true
		p := st.out.keyed(out, key, partToolCall)
		if p == nil {
			continue
		}
		td.ID.setIfChanged(&p.id)
		td.Function.Name.setIfChanged(&p.name)
		st.out.appendArgs(p, td.Function.Arguments)
	}
	return content
}

// error records an error carried by the chunk or body; true if there was one.
func (f *chatCall) error(st *callState) bool {
	ch := f.chunk
	if ch.Error.nonEmpty() {
		typ, msg := openAIError(ch.Error)
		st.fail(typ, msg)
		return true
	}
	if string(ch.Object) == `"error"` {
		st.setProvider(ProviderVLLM, rankEvidence)
		st.fail(errorCode(ch.Code, ch.Type), ch.Message.str())
		return true
	}
	return false
}

func (f *chatCall) body(st *callState, body []byte, t time.Time) bool {
	b := bytes.TrimSpace(body)
	if isEventStream(b) {
		st.c.Stream = true
		return forEachSSE(b, func(name string, data []byte) bool {
			return f.event(st, name, data, t, false)
		})
	}
	ok := f.parse(st, b)
	if ok {
		f.fold(st, false)
		st.terminal = true
	}
	f.release()
	return ok
}

func (f *chatCall) finish(st *callState) {
	// With usage in every chunk, the last one seen is final only if the
	// stream ended properly; a cut stream's output count is not the total.
	if f.usageRunning && !st.terminal && f.choicesDone == 0 {
		st.c.Usage.OutputTokens = nil
		st.c.Usage.ReasoningOutputTokens = nil
	}
	if f.kind == embeddings {
		st.c.Usage.OutputTokens = nil
	}
}

// applyVLLMMetrics takes vLLM's per-request metrics as server timings.
func applyVLLMMetrics(r *jsonReader, c *Call, raw span) {
	var m vllmMetrics
	if !r.decode(raw, &m) {
		return
	}
	var t ServerTiming
	if m.TimeToFirstTokenMs.ok {
		t.TimeToFirstToken = msDuration(m.TimeToFirstTokenMs.v)
	}
	if m.MeanITLMs.ok {
		t.TimePerOutputToken = msDuration(m.MeanITLMs.v)
	}
	if m.TimeToFirstTokenMs.ok && m.GenerationTimeMs.ok {
		// Queue wait, prefill and decode: the server's whole share.
		t.Total = msDuration(m.QueueTimeMs.v + m.TimeToFirstTokenMs.v + m.GenerationTimeMs.v)
	}
	if t != (ServerTiming{}) {
		t.Source = "vllm.metrics"
		c.ServerTiming = t
	}
}

// applyLlamaTimings takes llama.cpp's timings as server timings: prompt
// processing stands in for time to first token.
func applyLlamaTimings(r *jsonReader, c *Call, raw span) {
	var m llamaTimings
	if !r.decode(raw, &m) {
		return
	}
	var t ServerTiming
	if m.PromptMs.ok {
		t.TimeToFirstToken = msDuration(m.PromptMs.v)
	}
	if m.PredictedMs.ok && m.PredictedN.ok && m.PredictedN.v > 0 {
		t.TimePerOutputToken = msDuration(m.PredictedMs.v / float64(m.PredictedN.v))
	}
	if m.PromptMs.ok && m.PredictedMs.ok {
		t.Total = msDuration(m.PromptMs.v + m.PredictedMs.v)
	}
	if t != (ServerTiming{}) {
		t.Source = "llama_cpp.timings"
		c.ServerTiming = t
	}
}

func msDuration(ms float64) time.Duration {
	if ms < 0 || ms > 1e12 {
		return 0
	}
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}
