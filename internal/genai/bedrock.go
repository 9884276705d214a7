package genai

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// Amazon Bedrock runtime: POST /model/{modelId}/converse, /converse-stream,
// /invoke and /invoke-with-response-stream. The model is named only by the
// path (URL-encoded; it may be an ARN). Converse speaks Bedrock's own
// message format; InvokeModel passes the model's native body through, so
// an Anthropic model on Bedrock is read with the Anthropic Messages parser
// and Amazon Nova, whose native format is Converse's (its stream events
// each wrapped in an object named for their type), as Converse.
// Streams come in the AWS event-stream framing (decode.EventStream): each
// message a ConverseStream event (messageStart, contentBlockStart,
// contentBlockDelta, contentBlockStop, messageStop, metadata) or, for
// InvokeModelWithResponseStream, a "chunk" whose "bytes" is the native
// stream event, base64-encoded; exceptions are messages of type
// "exception".
//
// Operation: Converse is chat. InvokeModel is chat when the native body
// holds messages (Anthropic Messages, Amazon Nova), text_completion when it
// holds a prompt, embeddings for an embedding model.
//
// Tokens: Converse usage {inputTokens, outputTokens, totalTokens,
// cacheReadInputTokens, cacheWriteInputTokens}. The conventions' input
// count includes cached tokens; Bedrock's inputTokens, like the Anthropic
// usage beneath it, counts them apart, with totalTokens their sum with the
// output. So the call reports inputTokens + cacheRead + cacheWrite, unless
// totalTokens is inputTokens + outputTokens, which says inputTokens held
// them already. InvokeModel: the native usage when the parser knows the
// format, else "amazon-bedrock-invocationMetrics" {inputTokenCount,
// outputTokenCount} in the stream's last chunk, or the
// X-Amzn-Bedrock-Input-Token-Count and -Output-Token-Count response
// headers.
//
// Errors: the HTTP status, the X-Amzn-ErrorType header (its shape name,
// before any ':'), an exception message's :exception-type with its first
// letter upper-cased to the same shape name, and the {"message"} body.

// Bedrock's runtime operations, as Call.API names them.
var (
	apiBedrockConverse       = &apiSpec{"aws.bedrock.converse", OpChat, func() family { return &bedrockCall{} }}
	apiBedrockConverseStream = &apiSpec{"aws.bedrock.converse_stream", OpChat, func() family { return &bedrockCall{stream: true} }}
	apiBedrockInvoke         = &apiSpec{"aws.bedrock.invoke_model", OpChat, func() family { return &bedrockCall{invoke: true} }}
	apiBedrockInvokeStream   = &apiSpec{"aws.bedrock.invoke_model_with_response_stream", OpChat, func() family { return &bedrockCall{invoke: true, stream: true} }}
)

// bedrockSpec recognises a Bedrock runtime path, or returns nil.
func bedrockSpec(path string) *apiSpec {
	model, action, ok := bedrockPath(path)
	if !ok || model == "" {
		return nil
	}
	switch action {
	case "converse":
		return apiBedrockConverse
	case "converse-stream":
		return apiBedrockConverseStream
	case "invoke":
		return apiBedrockInvoke
	case "invoke-with-response-stream":
		return apiBedrockInvokeStream
	}
	return nil
}

// bedrockPath splits ".../model/{modelId}/{action}" into the raw model id
// and the action. SDKs escape the slashes of an ARN, but the id is taken
// up to the last segment so that an unescaped one is whole too.
func bedrockPath(path string) (model, action string, ok bool) {
	i := strings.Index(path, "/model/")
	if i < 0 {
		return "", "", false
	}
	rest := path[i+len("/model/"):]
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return "", "", false
	}
	return rest[:j], rest[j+1:], true
}

// bedrockModel returns the model a path names: the id unescaped, and for
// a foundation-model or inference-profile ARN the id inside it
// ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
// is "us.anthropic.claude-3-5-haiku-20241022-v1:0"). Other ARNs (a
// provisioned model, an application inference profile) name an opaque
// resource: their type and id are kept, without the account.
func bedrockModel(path string) string {
	raw, _, _ := bedrockPath(path)
	id, err := url.PathUnescape(raw)
	if err != nil {
		id = raw
	}
	if !strings.HasPrefix(id, "arn:") {
		return id
	}
	// arn:partition:service:region:account:resource
	parts := strings.SplitN(id, ":", 6)
	if len(parts) < 6 {
		return id
	}
	res := parts[5]
	if typ, name, ok := strings.Cut(res, "/"); ok && (typ == "foundation-model" || typ == "inference-profile") {
		return name
	}
	return res
}

// isBedrockHost tells Bedrock's runtime endpoints
// (bedrock-runtime.{region}.amazonaws.com, -fips, and .com.cn).
func isBedrockHost(host string) bool {
	return strings.HasPrefix(host, "bedrock-runtime") &&
		(strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn"))
}

// bedrockCall parses one Bedrock runtime call.
type bedrockCall struct {
	invoke, stream bool
	// anthropic is set when an InvokeModel body is Anthropic's Messages
	// format, which then reads the native request and response.
	anthropic bool
	anth      anthropicCall

	ev      bedrockEvent   // reused for every event
	wrapped bedrockWrapped // reused for every native chunk
	chunk   []byte         // a decoded InvokeModelWithResponseStream chunk
	usage   bedrockUsage
	metrics bedrockInvocationMetrics // InvokeModel's own counts, the fallback
	headers bool                     // metrics came from the response headers
	errType string                   // from X-Amzn-ErrorType
}

type bedrockRequest struct {
	Messages        listSpan         `json:"messages"`
	System          span             `json:"system"`
	InferenceConfig bedrockInference `json:"inferenceConfig"`
	ToolConfig      bedrockTools     `json:"toolConfig"`
	// InvokeModel's native bodies.
	AnthropicVersion string `json:"anthropic_version"`
	Prompt           span   `json:"prompt"`
	InputText        span   `json:"inputText"`
}

type bedrockInference struct {
	MaxTokens     optInt   `json:"maxTokens"`
	Temperature   optFloat `json:"temperature"`
	TopP          optFloat `json:"topP"`
	StopSequences stopList `json:"stopSequences"`
}

type bedrockTools struct {
	Tools span `json:"tools"`
}

type bedrockUsage struct {
	InputTokens           optInt `json:"inputTokens"`
	OutputTokens          optInt `json:"outputTokens"`
	TotalTokens           optInt `json:"totalTokens"`
	CacheReadInputTokens  optInt `json:"cacheReadInputTokens"`
	CacheWriteInputTokens optInt `json:"cacheWriteInputTokens"`
}

type bedrockMetrics struct {
	LatencyMs optFloat `json:"latencyMs"`
}

// bedrockBlock is a content block of a Converse message, and also the
// "start" and "delta" of the stream's content block events.
type bedrockBlock struct {
	Text             span             `json:"text"`
	ToolUse          bedrockToolUse   `json:"toolUse"`
	ReasoningContent bedrockReasoning `json:"reasoningContent"`
	ToolResult       bedrockResult    `json:"toolResult"`
}

type bedrockToolUse struct {
	ToolUseID span `json:"toolUseId"`
	Name      span `json:"name"`
	Input     span `json:"input"`
}

type bedrockReasoning struct {
	ReasoningText bedrockText `json:"reasoningText"`
	Text          span        `json:"text"` // in a delta
}

type bedrockText struct {
	Text span `json:"text"`
}

type bedrockResult struct {
	ToolUseID span `json:"toolUseId"`
	Content   span `json:"content"`
}

type bedrockMessage struct {
	Role    string         `json:"role"`
	Content []bedrockBlock `json:"content"`
}

type bedrockOutput struct {
	Message bedrockMessage `json:"message"`
}

// bedrockResponse is a Converse response, or an error body {"message"}.
type bedrockResponse struct {
	Output     bedrockOutput  `json:"output"`
	StopReason span           `json:"stopReason"`
	Usage      bedrockUsage   `json:"usage"`
	Metrics    bedrockMetrics `json:"metrics"`
	Message    span           `json:"message"`
}

// bedrockEvent is the payload of any ConverseStream event, of an
// exception, or of an InvokeModelWithResponseStream chunk.
type bedrockEvent struct {
	Role              span           `json:"role"`
	ContentBlockIndex optInt         `json:"contentBlockIndex"`
	Start             bedrockBlock   `json:"start"`
	Delta             bedrockBlock   `json:"delta"`
	StopReason        span           `json:"stopReason"`
	Usage             bedrockUsage   `json:"usage"`
	Metrics           bedrockMetrics `json:"metrics"`
	Message           span           `json:"message"`
	Bytes             span           `json:"bytes"`
}

// bedrockWrapped is a chunk of Amazon Nova's native stream: a
// ConverseStream event under its type's name.
type bedrockWrapped struct {
	MessageStart      span `json:"messageStart"`
	ContentBlockStart span `json:"contentBlockStart"`
	ContentBlockDelta span `json:"contentBlockDelta"`
	ContentBlockStop  span `json:"contentBlockStop"`
	MessageStop       span `json:"messageStop"`
	Metadata          span `json:"metadata"`
}

// bedrockChunkMetrics is the part of a native stream chunk Bedrock adds.
type bedrockChunkMetrics struct {
	Metrics bedrockInvocationMetrics `json:"amazon-bedrock-invocationMetrics"`
}

type bedrockInvocationMetrics struct {
	InputTokenCount   optInt   `json:"inputTokenCount"`
	OutputTokenCount  optInt   `json:"outputTokenCount"`
	InvocationLatency optFloat `json:"invocationLatency"`
	FirstByteLatency  optFloat `json:"firstByteLatency"`
}

var invocationMetricsKey = []byte(`"amazon-bedrock-invocationMetrics"`)

func (f *bedrockCall) request(st *callState, body []byte, path, _ string) bool {
	var r bedrockRequest
	ok := st.json.decode(body, &r)
	c := st.c
	model := bedrockModel(path)
	if f.invoke && (r.AnthropicVersion != "" || isAnthropicModel(model)) {
		f.anthropic = true
		ok = f.anth.request(st, body, path, "")
	} else if ok {
		c.MaxTokens = r.InferenceConfig.MaxTokens.ptr()
		c.Temperature = r.InferenceConfig.Temperature.ptr()
		c.TopP = r.InferenceConfig.TopP.ptr()
		c.StopSequences = r.InferenceConfig.StopSequences
		c.Messages = r.Messages.n
		if st.opts.CaptureInput {
			c.SystemInstructions = converseSystem(r.System)
			c.InputMessages = converseInput(r.Messages.raw)
			c.ToolDefinitions = converseTools(r.ToolConfig.Tools)
		}
	}
	if f.invoke && !f.anthropic {
		switch {
		case strings.Contains(model, "embed"):
			c.Operation = OpEmbeddings
		case r.Messages.raw.present():
		case r.Prompt.present() || r.InputText.present():
			c.Operation = OpTextCompletion
		}
	}
	c.RequestModel = model
	c.Stream = f.stream
	return ok
}

// isAnthropicModel tells an Anthropic model id, bare or behind a
// cross-region inference profile ("us.anthropic.claude-...").
func isAnthropicModel(id string) bool {
	return strings.HasPrefix(id, "anthropic.") || strings.Contains(id, ".anthropic.")
}

// responseHead reads what Bedrock says in the response head.
func (f *bedrockCall) responseHead(st *callState, h map[string][]string) {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if v := get("X-Amzn-Requestid"); v != "" {
		st.c.RequestID = v
	}
	if v := get("X-Amzn-Errortype"); v != "" {
		f.errType, _, _ = strings.Cut(v, ":")
	}
	if n, err := strconv.ParseInt(get("X-Amzn-Bedrock-Input-Token-Count"), 10, 64); err == nil && n >= 0 {
		f.metrics.InputTokenCount = optInt{v: n, ok: true}
	}
	if n, err := strconv.ParseInt(get("X-Amzn-Bedrock-Output-Token-Count"), 10, 64); err == nil && n >= 0 {
		f.metrics.OutputTokenCount = optInt{v: n, ok: true}
	}
	if ms, err := strconv.ParseFloat(get("X-Amzn-Bedrock-Invocation-Latency"), 64); err == nil {
		f.metrics.InvocationLatency = optFloat{v: ms, ok: true}
		f.headers = true
	}
}

// messageReader is a family whose stream comes in event-stream messages,
// read whole: their type tells an exception from an event.
type messageReader interface {
	message(st *callState, ev decode.StreamEvent, timed bool) bool
}

// message folds one event-stream message into the call.
func (f *bedrockCall) message(st *callState, ev decode.StreamEvent, timed bool) bool {
	switch ev.MessageType {
	case "exception":
		st.fail(shapeName(ev.Name), f.errorMessage(st, ev.Data))
		st.terminal = true
		return true
	case "error":
		st.fail(ev.Name, "")
		st.terminal = true
		return true
	}
	return f.event(st, ev.Name, ev.Data, ev.Time, timed)
}

// errorMessage reads an exception's {"message"}.
func (f *bedrockCall) errorMessage(st *callState, data []byte) string {
	e := &f.ev
	*e = bedrockEvent{}
	if st.json.decode(data, e) {
		return e.Message.str()
	}
	return ""
}

// shapeName upper-cases an exception type's first letter:
// throttlingException is the ThrottlingException of X-Amzn-ErrorType.
func shapeName(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func (f *bedrockCall) event(st *callState, name string, data []byte, t time.Time, timed bool) bool {
	e := &f.ev
	*e = bedrockEvent{}
	if !st.json.decode(data, e) {
		return false
	}
	if name == "chunk" || f.invoke {
		return f.chunkEvent(st, e, t, timed)
	}
	f.converseEvent(st, name, e, t, timed)
	return true
}

// converseEvent folds one ConverseStream event into the call.
func (f *bedrockCall) converseEvent(st *callState, name string, e *bedrockEvent, t time.Time, timed bool) {
	ch := st.out.choice(0)
	key := int(e.ContentBlockIndex.v)
	content := false
	switch name {
	case "contentBlockStart":
		if tu := &e.Start.ToolUse; tu.ToolUseID.present() || tu.Name.present() {
			content = true
			if p := st.out.keyed(ch, key, partToolCall); p != nil {
				tu.ToolUseID.setIfChanged(&p.id)
				tu.Name.setIfChanged(&p.name)
			}
		}
	case "contentBlockDelta":
		d := &e.Delta
		switch {
		case d.Text.hasText():
			content = true
			st.out.appendKeyedText(st.out.keyed(ch, key, partText), d.Text)
		case d.ToolUse.Input.hasText():
			content = true
			st.out.appendArgs(st.out.keyed(ch, key, partToolCall), d.ToolUse.Input)
		case d.ReasoningContent.Text.hasText():
			content = true
			st.out.appendKeyedText(st.out.keyed(ch, key, partReasoning), d.ReasoningContent.Text)
		}
	case "messageStop":
		if r := e.StopReason.str(); r != "" {
			ch.finish = r
		}
	case "metadata":
		f.takeUsage(&e.Usage)
		f.latency(st, e.Metrics.LatencyMs)
		st.terminal = true
	}
	if content {
		st.contentChunk(t, timed)
	}
}

// chunkEvent reads an InvokeModelWithResponseStream chunk: the native
// stream event in "bytes", base64, and Bedrock's own counts in the last.
func (f *bedrockCall) chunkEvent(st *callState, e *bedrockEvent, t time.Time, timed bool) bool {
	if !e.Bytes.hasText() {
		return true // Bedrock pads some messages; nothing to read
	}
	raw := e.Bytes[1 : len(e.Bytes)-1]
	n := base64.StdEncoding.DecodedLen(len(raw))
	if cap(f.chunk) < n {
		f.chunk = make([]byte, n)
	}
	f.chunk = f.chunk[:n]
	n, err := base64.StdEncoding.Decode(f.chunk, raw)
	if err != nil {
		return false
	}
	b := f.chunk[:n]
	if bytes.Contains(b, invocationMetricsKey) {
		var m bedrockChunkMetrics
		if readJSON(b, &m) {
			f.metrics, f.headers = m.Metrics, false
		}
	}
	if f.anthropic {
		return f.anth.event(st, "", b, t, timed)
	}
	// Amazon Nova's native stream is ConverseStream's, each event wrapped
	// in an object named for its type.
	w := &f.wrapped
	*w = bedrockWrapped{}
	if st.json.decode(b, w) {
		for _, ev := range []struct {
			name string
			raw  span
		}{{"messageStart", w.MessageStart}, {"contentBlockStart", w.ContentBlockStart}, {"contentBlockDelta", w.ContentBlockDelta},
			{"contentBlockStop", w.ContentBlockStop}, {"messageStop", w.MessageStop}, {"metadata", w.Metadata}} {
			if len(ev.raw) > 0 && ev.raw[0] == '{' {
				// The spans point into f.chunk, not the reader: it may
				// read them in turn.
				*e = bedrockEvent{}
				if !st.json.decode(ev.raw, e) {
					return false
				}
				f.converseEvent(st, ev.name, e, t, timed)
				return true
			}
		}
	}
	// A native format this package does not read: every chunk exists to
	// carry generated output, so each one counts as a content chunk.
	st.contentChunk(t, timed)
	return true
}

func (f *bedrockCall) takeUsage(u *bedrockUsage) {
	if u.InputTokens.ok || u.OutputTokens.ok {
		f.usage = *u
	}
}

func (f *bedrockCall) latency(st *callState, ms optFloat) {
	if ms.ok && st.c.ServerTiming.Source == "" {
		st.c.ServerTiming = ServerTiming{Source: "aws.bedrock.metrics", Total: msDuration(ms.v)}
	}
}

func (f *bedrockCall) body(st *callState, body []byte, t time.Time) bool {
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] != '{' && b[0] != '[' {
		// An event stream delivered whole (its content type not the
		// event stream's): cut it here, without per-message times.
		st.c.Stream = true
		if dropped := decode.EventStreamMessages(b, func(ev decode.StreamEvent) {
			f.message(st, ev, false)
		}); dropped > 0 {
			st.c.Truncated = true
		}
		return true
	}
	if f.anthropic && st.c.Status < 400 {
		return f.anth.body(st, b, t)
	}
	r := &bedrockResponse{}
	if !st.json.decode(b, r) {
		return false
	}
	if st.c.Status >= 400 || f.errType != "" {
		st.fail(f.errType, r.Message.str())
		return true
	}
	// Converse's response, or one of the same shape (Amazon Nova's native
	// one); a native response of another shape fills nothing here, and
	// its counts come from the response headers.
	f.takeUsage(&r.Usage)
	f.latency(st, r.Metrics.LatencyMs)
	ch := st.out.choice(0)
	if s := r.StopReason.str(); s != "" {
		ch.finish = s
	}
	for i := range r.Output.Message.Content {
		bl := &r.Output.Message.Content[i]
		switch {
		case bl.Text.hasText():
			st.out.appendText(ch, partText, bl.Text)
		case bl.ReasoningContent.ReasoningText.Text.hasText():
			st.out.appendText(ch, partReasoning, bl.ReasoningContent.ReasoningText.Text)
		case bl.ToolUse.Name.present():
			st.out.newTool(ch, bl.ToolUse.ToolUseID.str(), bl.ToolUse.Name.str(), bl.ToolUse.Input, false)
		}
	}
	st.terminal = true
	return true
}

func (f *bedrockCall) finish(st *callState) {
	c := st.c
	if f.anthropic {
		f.anth.finish(st)
	}
	if u := &f.usage; u.InputTokens.ok || u.OutputTokens.ok {
		if u.InputTokens.ok {
			in := u.InputTokens.v
			cached := u.CacheReadInputTokens.v + u.CacheWriteInputTokens.v
			if !u.TotalTokens.ok || u.TotalTokens.v != in+u.OutputTokens.v || cached == 0 {
				in += cached
			}
			c.Usage.InputTokens = &in
		}
		c.Usage.OutputTokens = u.OutputTokens.ptr()
		c.Usage.CacheReadInputTokens = u.CacheReadInputTokens.ptr()
		c.Usage.CacheCreationInputTokens = u.CacheWriteInputTokens.ptr()
	}
	m := &f.metrics
	if c.Usage.InputTokens == nil {
		c.Usage.InputTokens = m.InputTokenCount.ptr()
	}
	if c.Usage.OutputTokens == nil {
		c.Usage.OutputTokens = m.OutputTokenCount.ptr()
	}
	if m.InvocationLatency.ok && c.ServerTiming.Source == "" {
		src := "aws.bedrock.invocation_metrics"
		if f.headers {
			src = "x-amzn-bedrock-invocation-latency"
		}
		c.ServerTiming = ServerTiming{Source: src, Total: msDuration(m.InvocationLatency.v)}
		if m.FirstByteLatency.ok {
			c.ServerTiming.TimeToFirstToken = msDuration(m.FirstByteLatency.v)
		}
	}
	if f.errType != "" && !st.failed {
		st.fail(f.errType, "")
	}
}

// converseSystem converts Converse's system blocks ([{"text": ...}]).
func converseSystem(raw span) []Part {
	msgs := converseBlocks(raw)
	if len(msgs) == 0 {
		return nil
	}
	return msgs
}

// converseBlocks converts a list of Converse content blocks to parts.
func converseBlocks(raw span) []Part {
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var blocks bedrockBlocks
	if !readJSON(raw, &blocks) {
		return nil
	}
	var parts []Part
	for _, b := range blocks {
		switch {
		case b.Text.hasText():
			parts = append(parts, Part{Type: partText, Content: b.Text.str()})
		case b.ReasoningContent.ReasoningText.Text.hasText():
			parts = append(parts, Part{Type: partReasoning, Content: b.ReasoningContent.ReasoningText.Text.str()})
		case b.ToolUse.Name.present():
			parts = append(parts, Part{Type: partToolCall, ID: b.ToolUse.ToolUseID.str(), Name: b.ToolUse.Name.str(), Arguments: b.ToolUse.Input.clone()})
		case b.ToolResult.ToolUseID.present():
			parts = append(parts, Part{Type: partToolResponse, ID: b.ToolResult.ToolUseID.str(), Response: b.ToolResult.Content.clone()})
		}
	}
	return parts
}

// converseInput converts Converse messages ([{"role", "content": [blocks]}]).
func converseInput(raw span) []Message {
	var msgs bedrockMessages
	if len(raw) == 0 || !readJSON(raw, &msgs) {
		return nil
	}
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		var parts []Part
		for _, b := range m.Content {
			switch {
			case b.Text.hasText():
				parts = append(parts, Part{Type: partText, Content: b.Text.str()})
			case b.ReasoningContent.ReasoningText.Text.hasText():
				parts = append(parts, Part{Type: partReasoning, Content: b.ReasoningContent.ReasoningText.Text.str()})
			case b.ToolUse.Name.present():
				parts = append(parts, Part{Type: partToolCall, ID: b.ToolUse.ToolUseID.str(), Name: b.ToolUse.Name.str(), Arguments: b.ToolUse.Input.clone()})
			case b.ToolResult.ToolUseID.present():
				parts = append(parts, Part{Type: partToolResponse, ID: b.ToolResult.ToolUseID.str(), Response: b.ToolResult.Content.clone()})
			}
		}
		if parts == nil {
			parts = []Part{}
		}
		out = append(out, Message{Role: m.Role, Parts: parts})
	}
	return out
}

// converseTools converts toolConfig.tools ([{"toolSpec": {"name",
// "description", "inputSchema": {"json": schema}}}]).
func converseTools(raw span) []byte {
	var items bedrockToolItems
	if len(raw) == 0 || !readJSON(raw, &items) {
		return nil
	}
	var defs []toolDef
	for _, it := range items {
		if s := &it.ToolSpec; s.Name != "" {
			defs = append(defs, toolDef{Type: "function", Name: s.Name, Description: s.Description, Parameters: s.InputSchema.JSON.clone()})
		}
	}
	if len(defs) == 0 {
		return nil
	}
	b, err := json.Marshal(defs)
	if err != nil {
		return nil
	}
	return b
}

type bedrockToolItem struct {
	ToolSpec bedrockToolSpec `json:"toolSpec"`
}

type bedrockToolSpec struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	InputSchema bedrockSchema `json:"inputSchema"`
}

type bedrockSchema struct {
	JSON span `json:"json"`
}

type (
	bedrockBlocks    []bedrockBlock
	bedrockMessages  []bedrockMessage
	bedrockToolItems []bedrockToolItem
)

func (l *bedrockBlocks) readFrom(r *jsonReader) {
	readSlice(r, (*[]bedrockBlock)(l), (*bedrockBlock).readFrom)
}

func (l *bedrockMessages) readFrom(r *jsonReader) {
	readSlice(r, (*[]bedrockMessage)(l), (*bedrockMessage).readFrom)
}

func (l *bedrockToolItems) readFrom(r *jsonReader) {
	readSlice(r, (*[]bedrockToolItem)(l), (*bedrockToolItem).readFrom)
}
