// Package genai recognises LLM API calls inside decoded HTTP exchanges and
// reconstructs one Call per operation: provider, models, parameters, token
// usage, finish reasons, streaming timing, server-reported timings and
// errors. An Assembler, one per connection, is the decode.Sink that reads
// decode's exchanges and stream events, parsing each event as it arrives,
// and hands Calls to a Handler; it knows nothing of the kernel or of
// OpenTelemetry.
package genai

import (
	"encoding/json"
	"time"
)

// Operation names, as gen_ai.operation.name.
const (
	OpChat            = "chat"
	OpTextCompletion  = "text_completion"
	OpEmbeddings      = "embeddings"
	OpGenerateContent = "generate_content"
)

// Provider names, as gen_ai.provider.name. The first group are the
// conventions' well-known values; the second are ours, where the conventions
// have none.
const (
	ProviderOpenAI     = "openai"
	ProviderAnthropic  = "anthropic"
	ProviderGemini     = "gcp.gemini"
	ProviderAzure      = "azure.ai.openai"
	ProviderVertexAI   = "gcp.vertex_ai"
	ProviderGroq       = "groq"
	ProviderMistral    = "mistral_ai"
	ProviderDeepSeek   = "deepseek"
	ProviderXAI        = "x_ai"
	ProviderPerplexity = "perplexity"
	ProviderCohere     = "cohere"
	ProviderBedrock    = "aws.bedrock"

	// ProviderOllama is an Ollama server, native API or its OpenAI- and
	// Anthropic-compatible ones.
	ProviderOllama = "ollama"
	// ProviderVLLM is a vLLM server (OpenAI-compatible API).
	ProviderVLLM = "vllm"
	// ProviderLlamaCpp is llama.cpp's llama-server, OpenAI-compatible API
	// or its native /completion.
	ProviderLlamaCpp = "llama_cpp"
	// ProviderLiteLLM is a LiteLLM proxy, whatever model it routes to.
	ProviderLiteLLM = "litellm"
	// ProviderOpenAICompatible is used for an OpenAI-shaped API whose server
	// could not be identified.
	ProviderOpenAICompatible = "openai_compatible"
)

// Endpoint says where the call was seen and who served it.
type Endpoint struct {
	// ClientSide is true when the observed process made the call (CLIENT
	// span); false when it served it (SERVER span).
	ClientSide    bool
	ServerAddress string // peer address for the client, local for the server
	ServerPort    int
	ClientAddress string
	ClientPort    int
}

// Usage holds token counts; nil means the count was not observed.
type Usage struct {
	InputTokens              *int64 // includes cached tokens
	OutputTokens             *int64
	CacheReadInputTokens     *int64
	CacheCreationInputTokens *int64
	ReasoningOutputTokens    *int64
}

// ServerTiming holds timings the server reported about itself.
type ServerTiming struct {
	// Source names the fields used, e.g. "ollama", "llama_cpp.timings", "vllm.metrics".
	Source string
	// TimeToFirstToken is the server's own prompt phase (zero when unknown).
	TimeToFirstToken time.Duration
	// TimePerOutputToken is the server's mean inter-token time (zero when unknown).
	TimePerOutputToken time.Duration
	// Total is the server's own duration of the request (zero when unknown).
	Total time.Duration
}

// ToolCall is a tool invocation requested by the model.
type ToolCall struct {
	ID   string
	Name string
	// Type is gen_ai.tool.type: ToolFunction for a tool the application
	// runs and answers in a later request, ToolExtension for one the
	// provider runs itself (Anthropic's server tools), which no request
	// answers.
	Type string
	// Arguments is the JSON text the model produced; filled only with
	// Options.CaptureOutput, since arguments often quote user data.
	Arguments string
}

// Tool types, as gen_ai.tool.type.
const (
	ToolFunction  = "function"
	ToolExtension = "extension"
)

// ToolResult is the result of a tool call that a request hands back to the
// model. Only the results after the request's last assistant message are
// taken: earlier ones answered earlier requests.
type ToolResult struct {
	// ID is the tool call's id; empty where the API has none (Gemini and
	// Ollama may match by name and order instead).
	ID   string
	Name string
	// Error is set when the request says the tool failed (Anthropic's
	// is_error).
	Error bool
	// Content is the result as JSON text; filled only with
	// Options.CaptureInput.
	Content string
}

// Part is one piece of a message, in the conventions' message schema.
type Part struct {
	Type      string          `json:"type"` // text, tool_call, tool_call_response, reasoning, blob, uri, file
	Content   string          `json:"content,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Response  json.RawMessage `json:"response,omitempty"`
}

// Message is one message in the conventions' message schema.
type Message struct {
	Role         string `json:"role"`
	Parts        []Part `json:"parts"`
	FinishReason string `json:"finish_reason,omitempty"`
}

// Call is one LLM operation reconstructed from the wire.
type Call struct {
	Operation string
	// Provider is gen_ai.provider.name. It may be refined between
	// CallStarted and CallEnded, when the response reveals the server (an
	// "openai_compatible" call turning out to be vLLM or llama.cpp).
	Provider string
	// API names the wire format recognised: "ollama.chat",
	// "ollama.generate", "ollama.embed", "openai.chat_completions",
	// "openai.completions", "openai.embeddings", "openai.responses",
	// "anthropic.messages", "gemini.generate_content",
	// "gemini.embed_content", "llama_cpp.completion", "aws.bedrock.converse",
	// "aws.bedrock.converse_stream", "aws.bedrock.invoke_model" or
	// "aws.bedrock.invoke_model_with_response_stream". The API says how to
	// parse; Provider says who served it (vLLM serves
	// "openai.chat_completions").
	API      string
	Endpoint Endpoint
	// HTTP2Stream is the HTTP/2 stream of the call, 0 over HTTP/1.x: the
	// two ends of one connection can have several calls under way at once.
	HTTP2Stream uint32 `json:"-"`
	// ServerAddress and ServerPort are what server.address and server.port
	// should carry: the host named in the request's Host header (the logical
	// server, e.g. "api.openai.com") and its port, falling back to the
	// connection's peer address and port when the header is missing.
	ServerAddress string
	ServerPort    int
	Method        string
	// Path is the request path without its query (which may hold an API key).
	Path   string
	Status int // HTTP status; 0 when no response was seen

	RequestModel   string
	ResponseModel  string
	ResponseID     string
	ConversationID string
	Stream         bool

	MaxTokens        *int64
	Temperature      *float64
	TopP             *float64
	TopK             *float64
	FrequencyPenalty *float64
	PresencePenalty  *float64
	Seed             *int64
	StopSequences    []string
	ChoiceCount      int // requested n; 0 when not given
	OutputType       string
	ServiceTier      string // requested
	Messages         int    // messages in the request; 0 when not a chat

	FinishReasons       []string
	ResponseServiceTier string
	SystemFingerprint   string
	Usage               Usage
	ToolCalls           []ToolCall
	// ToolResults are the tool results the request carries.
	ToolResults []ToolResult
	// EndUserHash is the salted SHA-256 of the end-user id, hex; empty when absent.
	EndUserHash string

	// Start is the first byte of the request; End the last byte of the response.
	Start time.Time
	End   time.Time
	// ContentChunks holds when each stream chunk carrying generated content
	// (text, reasoning or a tool call) completed; the first is the time to
	// first chunk. Empty when the response was not streamed.
	ContentChunks []time.Time
	// ContentChunksDropped counts content chunks past Options.MaxContentChunks
	// whose times were not kept.
	ContentChunksDropped int
	// Chunks counts every stream event, content or not.
	Chunks       int
	ServerTiming ServerTiming

	// ErrorType is set when the wire said the call failed: the provider's
	// error type or code, else the HTTP status, else "_OTHER" (an error
	// without a type, as Ollama's mid-stream error line), or the error code
	// of an HTTP/2 reset that cut the response ("CANCEL").
	ErrorType    string
	ErrorMessage string
	// Truncated is set when capture lost or cut part of the exchange. It is
	// never an error by itself: what the observer missed is its loss, so a
	// truncated call keeps the outcome the wire showed.
	Truncated bool

	TraceParent string
	TraceState  string
	// Credentials are the request's own secret values, for scrubbing what
	// the server echoes of them; never exported.
	Credentials Credentials       `json:"-"`
	RequestID   string            // x-request-id and the like
	RateLimit   map[string]string // x-ratelimit-* and retry-after headers

	// ContentTruncated: captured output content reached
	// Options.MaxOutputContentBytes and the rest was not kept.
	ContentTruncated bool

	// MCP is set when the exchange was an MCP message rather than an LLM
	// call (a request on an MCP path); the LLM fields then stay empty.
	MCP *MCP `json:",omitempty"`

	// Content, filled only when content capture is switched on.
	SystemInstructions []Part
	InputMessages      []Message
	OutputMessages     []Message
	ToolDefinitions    json.RawMessage
}

// TimeToFirstChunk returns the time from the request's first byte to the
// first content chunk, and false when the call had none.
func (c *Call) TimeToFirstChunk() (time.Duration, bool) {
	if len(c.ContentChunks) == 0 || c.Start.IsZero() {
		return 0, false
	}
	return c.ContentChunks[0].Sub(c.Start), true
}

// Duration is the time from the request's first byte to the response's last.
func (c *Call) Duration() time.Duration {
	if c.End.Before(c.Start) {
		return 0
	}
	return c.End.Sub(c.Start)
}
