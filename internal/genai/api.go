package genai

import (
	"bytes"
	"net/http"
	"strings"
)

// apiSpec is one wire format this package understands.
type apiSpec struct {
	name      string // Call.API
	operation string
	newFamily func() family
}

// The APIs, as named in Call.API.
var (
	apiOllamaChat = &apiSpec{"ollama.chat", OpChat, func() family { return &ollamaCall{kind: ollamaChat} }}
	apiOllamaGen  = &apiSpec{"ollama.generate", OpTextCompletion, func() family { return &ollamaCall{kind: ollamaGenerate} }}
	apiOllamaEmb  = &apiSpec{"ollama.embed", OpEmbeddings, func() family { return &ollamaCall{kind: ollamaEmbed} }}

	apiOpenAIChat   = &apiSpec{"openai.chat_completions", OpChat, func() family { return &chatCall{kind: chatCompletions} }}
	apiOpenAICompl  = &apiSpec{"openai.completions", OpTextCompletion, func() family { return &chatCall{kind: textCompletions} }}
	apiOpenAIEmbed  = &apiSpec{"openai.embeddings", OpEmbeddings, func() family { return &chatCall{kind: embeddings} }}
	apiLlamaCompl   = &apiSpec{"llama_cpp.completion", OpTextCompletion, func() family { return &chatCall{kind: textCompletions} }}
	apiResponses    = &apiSpec{"openai.responses", OpChat, func() family { return &responsesCall{} }}
	apiAnthropicMsg = &apiSpec{"anthropic.messages", OpChat, func() family { return &anthropicCall{} }}
	apiGeminiGen    = &apiSpec{"gemini.generate_content", OpGenerateContent, func() family { return &geminiCall{} }}
	apiGeminiEmbed  = &apiSpec{"gemini.embed_content", OpEmbeddings, func() family { return &geminiCall{embed: true} }}
)

// pathSuffixes maps the end of a request path to its API. Suffixes, not
// whole paths, because proxies and SDK base URLs add prefixes
// ("/openai/deployments/x/chat/completions", "/ollama/api/chat",
// "/api/v1/chat/completions"). First match wins, so longer suffixes come
// before the shorter ones they end with.
var pathSuffixes = []struct {
	suffix string
	spec   *apiSpec
}{
	{"/api/chat", apiOllamaChat},
	{"/api/generate", apiOllamaGen},
	{"/api/embed", apiOllamaEmb},
	{"/api/embeddings", apiOllamaEmb},
	{"/chat/completions", apiOpenAIChat},
	{"/completions", apiOpenAICompl},
	{"/completion", apiLlamaCompl},
	{"/embeddings", apiOpenAIEmbed},
	{"/responses", apiResponses},
	{"/v1/messages", apiAnthropicMsg},
}

// sideDoors are last path segments of requests that carry a chat body but
// generate nothing (token counting, templating, batch submission).
var sideDoors = []string{"count_tokens", "tokenize", "detokenize", "apply-template", "batches", "input_tokens"}

// recognise says which API a request is, or nil when it is not an LLM call.
func recognise(method, path string, h http.Header, body []byte) *apiSpec {
	if method != http.MethodPost {
		return nil
	}
	p := strings.TrimRight(path, "/")
	if spec := bedrockSpec(p); spec != nil {
		return spec
	}
	// Gemini names the model and the method in the last segment:
	// /v1beta/models/gemini-2.0-flash:streamGenerateContent.
	if i := strings.LastIndexByte(p, ':'); i >= 0 && strings.LastIndexByte(p, '/') < i {
		switch p[i+1:] {
		case "generateContent", "streamGenerateContent":
			return apiGeminiGen
		case "embedContent", "batchEmbedContents":
			return apiGeminiEmbed
		}
		return nil
	}
	for _, e := range pathSuffixes {
		if strings.HasSuffix(p, e.suffix) {
			return e.spec
		}
	}
	// An unknown path: fall back on the body's shape, which for a chat is
	// distinctive enough ({"model": ..., "messages": [...]}), unless the path
	// names one of the APIs' side doors that take the same body.
	if !hasAnyPrefix(p[strings.LastIndexByte(p, '/')+1:], sideDoors) && looksLikeChat(body) {
		if h.Get("Anthropic-Version") != "" {
			return apiAnthropicMsg
		}
		return apiOpenAIChat
	}
	return nil
}

// looksLikeChat reports whether a body is a JSON object with a string model
// and a messages array.
func looksLikeChat(body []byte) bool {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	var probe chatProbe
	if !readJSON(b, &probe) {
		return false
	}
	return probe.Model.hasText() && len(probe.Messages) > 0 && probe.Messages[0] == '['
}

// modelFromPath extracts the model of a Gemini or Vertex AI path
// (".../models/{model}:method" or ".../tunedModels/{model}:method") and the
// deployment of an Azure OpenAI path (".../deployments/{name}/...").
func modelFromPath(path string) string {
	for _, marker := range []string{"/models/", "/tunedModels/", "/deployments/"} {
		i := strings.LastIndex(path, marker)
		if i < 0 {
			continue
		}
		m := path[i+len(marker):]
		if j := strings.IndexAny(m, ":/"); j >= 0 {
			m = m[:j]
		}
		if marker == "/tunedModels/" {
			m = "tunedModels/" + m
		}
		return m
	}
	return ""
}
