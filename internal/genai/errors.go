package genai

import "encoding/json"

// wireError is the union of the error objects the APIs send:
// OpenAI {"message","type","param","code"}, Anthropic {"type","message"},
// Gemini {"code","message","status"}, Responses {"code","message"}.
type wireError struct {
	Message span `json:"message"`
	Type    span `json:"type"`
	Code    span `json:"code"`
	Status  span `json:"status"`
}

// errorCode picks the most specific low-cardinality error name: a string
// code ("rate_limit_exceeded"), else the type ("invalid_request_error").
// Numeric codes only repeat the HTTP status, which the caller falls back on.
func errorCode(code, typ span) string {
	if s := code.str(); s != "" {
		return s
	}
	return typ.str()
}

// openAIError reads an OpenAI-style "error" value, an object or a bare string.
func openAIError(raw span) (typ, msg string) {
	if raw.hasText() {
		return "", raw.str()
	}
	var e wireError
	if !decodeJSON(raw, &e) {
		return "", ""
	}
	typ = errorCode(e.Code, e.Type)
	if typ == "" {
		typ = e.Status.str()
	}
	return typ, e.Message.str()
}

// errorText returns the message of an error given as a string or an object.
func errorText(raw span) string {
	if raw.hasText() {
		return raw.str()
	}
	var e wireError
	if decodeJSON(raw, &e) {
		if m := e.Message.str(); m != "" {
			return m
		}
	}
	return string(json.RawMessage(raw))
}
