package genai

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// Provider detection. Every OpenAI-compatible server speaks the same API, so
// the path says only which wire format to parse; who serves it is decided
// from the clues below, each with a rank, and a higher-ranked clue wins
// whenever it turns up (some only appear in the response):
//
//	rank      clue                                                   provider
//	override  Options.Providers["host:port"], ["host"], [":port"]    as configured
//	host      api.openai.com                                         openai
//	host      api.anthropic.com                                      anthropic
//	host      generativelanguage.googleapis.com                      gcp.gemini
//	host      *aiplatform.googleapis.com                             gcp.vertex_ai
//	host      *.openai.azure.com, *.cognitiveservices.azure.com      azure.ai.openai
//	host      api.groq.com, api.mistral.ai, api.deepseek.com,        groq, mistral_ai, deepseek,
//	          api.x.ai, api.perplexity.ai, api.cohere.com/.ai        x_ai, perplexity, cohere
//	host      ollama.com                                             ollama
//	host      bedrock-runtime[-fips].{region}.amazonaws.com[.cn]      aws.bedrock
//	evidence  Ollama native path (/api/chat, /api/generate, /api/embed[dings])  ollama
//	evidence  port 11434, or system_fingerprint "fp_ollama"          ollama
//	evidence  response header x-litellm-*                            litellm
//	evidence  "timings" in the response, native POST /completion,    llama_cpp
//	          or a Server header naming llama.cpp
//	evidence  vLLM-only response fields: "metrics", "prompt_logprobs",
//	          a choice's "stop_reason", "kv_transfer_params"         vllm
//	shape     anthropic-version request header or /v1/messages       anthropic
//	shape     Bedrock runtime path (/model/{id}/converse, ...)       aws.bedrock
//	shape     Gemini path (models/{m}:generateContent)               gcp.gemini
//	shape     Azure path (/openai/deployments/{name}/...)            azure.ai.openai
//	shape     any other OpenAI-shaped API                            openai_compatible
var providerHosts = []struct {
	host     string // exact host, or a suffix when it starts with "." or "-"
	provider string
}{
	{"api.openai.com", ProviderOpenAI},
	{"api.anthropic.com", ProviderAnthropic},
	{"generativelanguage.googleapis.com", ProviderGemini},
	{"aiplatform.googleapis.com", ProviderVertexAI},
	{"-aiplatform.googleapis.com", ProviderVertexAI},
	{".openai.azure.com", ProviderAzure},
	{".cognitiveservices.azure.com", ProviderAzure},
	{"api.groq.com", ProviderGroq},
	{"api.mistral.ai", ProviderMistral},
	{"api.deepseek.com", ProviderDeepSeek},
	{"api.x.ai", ProviderXAI},
	{"api.perplexity.ai", ProviderPerplexity},
	{"api.cohere.com", ProviderCohere},
	{"api.cohere.ai", ProviderCohere},
	{"ollama.com", ProviderOllama},
}

// ollamaPort is Ollama's default port.
const ollamaPort = 11434

// providerForHost looks a host up in providerHosts.
func providerForHost(host string) string {
	for _, e := range providerHosts {
		if e.host[0] == '.' || e.host[0] == '-' {
			if strings.HasSuffix(host, e.host) {
				return e.provider
			}
		} else if host == e.host {
			return e.provider
		}
	}
	return ""
}

// hostPort returns the server host (lower case, no port) and port named by
// the request's Host header, falling back to the connection's peer.
func hostPort(h http.Header, ep Endpoint) (string, int) {
	hv := h.Get("Host")
	if hv == "" {
		hv = h.Get(":authority")
	}
	if hv == "" {
		return ep.ServerAddress, ep.ServerPort
	}
	host, port := hv, ep.ServerPort
	// A Host without a colon has no port; net.SplitHostPort would say so
	// with an error allocated for every call.
	if strings.IndexByte(hv, ':') < 0 {
		host = strings.TrimSuffix(strings.TrimPrefix(hv, "["), "]")
	} else if hh, pp, err := net.SplitHostPort(hv); err == nil {
		host = hh
		if n, err := strconv.Atoi(pp); err == nil && n > 0 && n < 65536 {
			port = n
		}
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(hv, "["), "]")
	}
	return strings.ToLower(host), port
}

// detectFromRequest sets the provider from what the request tells.
func (st *callState) detectFromRequest(host string, port int, path string, h http.Header) {
	if ov := st.opts.Providers; len(ov) > 0 {
		ps := strconv.Itoa(port)
		for _, k := range []string{host + ":" + ps, host, ":" + ps} {
			if p, ok := ov[k]; ok && p != "" {
				st.setProvider(p, rankOverride)
				break
			}
		}
	}
	st.setProvider(providerForHost(host), rankHost)
	if isBedrockHost(host) {
		st.setProvider(ProviderBedrock, rankHost)
	}
	switch st.spec {
	case apiOllamaChat, apiOllamaGen, apiOllamaEmb:
		st.setProvider(ProviderOllama, rankEvidence)
	case apiLlamaCompl:
		st.setProvider(ProviderLlamaCpp, rankEvidence)
	}
	if port == ollamaPort {
		st.setProvider(ProviderOllama, rankEvidence)
	}
	switch {
	case st.spec == apiBedrockConverse || st.spec == apiBedrockConverseStream || st.spec == apiBedrockInvoke || st.spec == apiBedrockInvokeStream:
		st.setProvider(ProviderBedrock, rankShape)
	case st.spec == apiAnthropicMsg || h.Get("Anthropic-Version") != "":
		st.setProvider(ProviderAnthropic, rankShape)
	case st.spec == apiGeminiGen || st.spec == apiGeminiEmbed:
		st.setProvider(ProviderGemini, rankShape)
	case strings.Contains(path, "/openai/deployments/"):
		st.setProvider(ProviderAzure, rankShape)
	default:
		st.setProvider(ProviderOpenAICompatible, rankShape)
	}
}

// rateLimitPrefixes are the response headers copied into Call.RateLimit.
var rateLimitPrefixes = []string{"x-ratelimit-", "anthropic-ratelimit-"}

// readResponseHeaders takes request ids, rate limits and server clues from
// the response head. Only named, non-secret headers are read.
func (st *callState) readResponseHeaders(r *decode.Response) {
	c := st.c
	for k, v := range r.Header {
		if len(v) == 0 {
			continue
		}
		// The name is matched without lowering it first: most headers of
		// a response are none of these, and lowering each would allocate.
		// ASCII case folding is exactly strings.ToLower for ASCII names;
		// the rare other name is lowered first, as a few runes lower to
		// ASCII letters (the Kelvin sign to 'k').
		name := k
		if !isASCII(k) {
			name = strings.ToLower(k)
		}
		switch {
		case equalFoldASCII(name, "retry-after") || equalFoldASCII(name, "retry-after-ms") || hasAnyPrefixFold(name, rateLimitPrefixes):
			if c.RateLimit == nil {
				c.RateLimit = make(map[string]string)
			}
			c.RateLimit[rateLimitName(name)] = v[0]
		case hasPrefixFoldASCII(name, "x-litellm-"):
			st.setProvider(ProviderLiteLLM, rankEvidence)
		case equalFoldASCII(name, "server"):
			if s := strings.ToLower(v[0]); strings.Contains(s, "llama.cpp") || strings.Contains(s, "llama-server") {
				st.setProvider(ProviderLlamaCpp, rankEvidence)
			}
		}
	}
	if f, ok := st.fam.(*bedrockCall); ok {
		f.responseHead(st, r.Header)
	}
	for _, k := range []string{"X-Request-Id", "Request-Id", "Apim-Request-Id", "X-Goog-Request-Id"} {
		if v := r.Header.Get(k); v != "" {
			c.RequestID = v
			break
		}
	}
	if ms := r.Header.Get("Openai-Processing-Ms"); ms != "" && c.ServerTiming.Source == "" {
		if f, err := strconv.ParseFloat(ms, 64); err == nil && f >= 0 && f < 1e9 {
			c.ServerTiming = ServerTiming{Source: "openai-processing-ms", Total: msDuration(f)}
		}
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// knownRateLimitNames are the rate-limit headers the large APIs send on
// every response, in lower case, so that their names in Call.RateLimit are
// shared rather than lowered afresh for each call.
var knownRateLimitNames = []string{
	"x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
	"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
	"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
	"anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset",
	"anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset",
	"anthropic-ratelimit-input-tokens-limit", "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset",
	"anthropic-ratelimit-output-tokens-limit", "anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset",
	"retry-after", "retry-after-ms",
}

// rateLimitName returns the header name k in lower case; k is ASCII or
// already lowered.
func rateLimitName(k string) string {
	for _, n := range knownRateLimitNames {
		if equalFoldASCII(k, n) {
			return n
		}
	}
	return strings.ToLower(k)
}

// hasAnyPrefixFold reports whether s starts with one of the lower-case
// ASCII prefixes, ignoring the case of s.
func hasAnyPrefixFold(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if hasPrefixFoldASCII(s, p) {
			return true
		}
	}
	return false
}

// hasPrefixFoldASCII reports whether s starts with the lower-case ASCII
// prefix p, folding only ASCII letters of s to lower case.
func hasPrefixFoldASCII(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != p[i] {
			return false
		}
	}
	return true
}

// equalFoldASCII reports whether s is the lower-case ASCII p, folding only
// ASCII letters of s to lower case.
func equalFoldASCII(s, p string) bool {
	return len(s) == len(p) && hasPrefixFoldASCII(s, p)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Model servers that run each model in a worker process of their own call
// that worker over loopback HTTP for every user call. Such a hop is the
// server's inside, not a call of its own: reported, it would double the
// traffic and name a provider (llama.cpp) the user never called.
//
// Ollama (0.5 onwards) starts "ollama runner" per model and posts each
// generation to its POST /completion. The body is llm.CompletionRequest
// (ollama/ollama llm/server.go) written by encoding/json: its first fields,
// Prompt, Format, Images and Options, carry no json tags, so they go out
// under their Go names, Prompt first ({"Prompt":"...","Format":...,
// "Images":...,"Options":{"num_predict":...}}). The runner answers
// application/json, chunked, one llm.CompletionResponse per line
// ({"content":"...","done_reason":0,"done":false,...}; see Server.completion
// in runner/ollamarunner/runner.go). A client of llama.cpp's own
// /completion writes lower-case keys ("prompt", "n_predict"), so the
// capitalised first key tells the hop apart without asking which process
// made it. Its other endpoints (/embedding, /tokenize, /health) are not
// taken for calls anyway. vLLM's front end reaches its engine over ZeroMQ
// and llama.cpp-based servers that spawn workers (LocalAI) over gRPC, so
// neither has an HTTP/1 hop to recognise here.
var ollamaRunnerPrefix = []byte(`{"Prompt":`)

// isWorkerHop tells whether a request is a model server calling its own
// worker process rather than a user's call.
func isWorkerHop(method, path string, body []byte) bool {
	return method == http.MethodPost && path == "/completion" &&
		bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), ollamaRunnerPrefix) &&
		bytes.Contains(body, []byte(`"Options":`))
}
