package genai

import (
	"encoding/json"
	"strings"
)

// Input content, converted to the conventions' message schema. Only called
// with input capture on; images, audio and files are left out (their bytes
// are not telemetry), text, reasoning and tool traffic are kept.

// contentPart is the union of the content blocks of the chat APIs.
type contentPart struct {
	Type      string  `json:"type"`
	Text      span    `json:"text"`
	Refusal   span    `json:"refusal"`
	Thinking  span    `json:"thinking"`
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Input     span    `json:"input"`
	ToolUseID string  `json:"tool_use_id"`
	Content   span    `json:"content"`
	IsError   optBool `json:"is_error"`
}

// textParts converts a content value (a string or a list of blocks) into
// parts: text blocks to text, Anthropic's tool_use/tool_result and thinking
// blocks to their part types.
func textParts(raw span) []Part {
	if raw.hasText() {
		return []Part{{Type: partText, Content: raw.str()}}
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var blocks contentParts
	if !readJSON(raw, &blocks) {
		return nil
	}
	var parts []Part
	for _, b := range blocks {
		switch b.Type {
		case "text", "input_text", "output_text", "":
			if s := b.Text.str(); s != "" {
				parts = append(parts, Part{Type: partText, Content: s})
			}
		case "refusal":
			if s := b.Refusal.str(); s != "" {
				parts = append(parts, Part{Type: partText, Content: s})
			}
		case "thinking":
			if s := b.Thinking.str(); s != "" {
				parts = append(parts, Part{Type: partReasoning, Content: s})
			}
		case "tool_use", "server_tool_use":
			parts = append(parts, Part{Type: partToolCall, ID: b.ID, Name: b.Name, Arguments: b.Input.clone()})
		case "tool_result":
			parts = append(parts, Part{Type: partToolResponse, ID: b.ToolUseID, Response: textValue(b.Content)})
		}
	}
	return parts
}

// textValue turns a tool result (a string, a list of text blocks or any
// JSON value) into the JSON value of a tool_call_response part.
func textValue(raw span) json.RawMessage {
	switch {
	case raw.isNull():
		return nil
	case raw[0] == '"':
		return raw.clone()
	case raw[0] == '[':
		var sb strings.Builder
		for _, p := range textParts(raw) {
			if p.Type == partText {
				sb.WriteString(p.Content)
			}
		}
		if sb.Len() > 0 {
			return rawText(sb.String())
		}
	}
	return raw.clone()
}

// openAIMessage is a chat-completions input message. Its tool calls have
// Ollama's shape, which is OpenAI's.
type openAIMessage struct {
	Role             string           `json:"role"`
	Content          span             `json:"content"`
	ToolCalls        []ollamaToolCall `json:"tool_calls"`
	ToolCallID       string           `json:"tool_call_id"`
	ReasoningContent span             `json:"reasoning_content"`
}

type openAIMessages []openAIMessage

func (l *openAIMessages) readFrom(r *jsonReader) {
	readSlice(r, (*[]openAIMessage)(l), (*openAIMessage).readFrom)
}

// openAIInput converts chat-completions messages.
func openAIInput(raw span) []Message {
	var msgs openAIMessages
	if !readJSON(raw, &msgs) {
		return nil
	}
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		msg := Message{Role: m.Role, Parts: []Part{}}
		if m.Role == "tool" || m.Role == "function" {
			msg.Parts = append(msg.Parts, Part{Type: partToolResponse, ID: m.ToolCallID, Response: textValue(m.Content)})
			out = append(out, msg)
			continue
		}
		if s := m.ReasoningContent.str(); s != "" {
			msg.Parts = append(msg.Parts, Part{Type: partReasoning, Content: s})
		}
		msg.Parts = append(msg.Parts, textParts(m.Content)...)
		for _, tc := range m.ToolCalls {
			msg.Parts = append(msg.Parts, Part{Type: partToolCall, ID: tc.ID, Name: tc.Function.Name, Arguments: argsValue(tc.Function.Arguments)})
		}
		out = append(out, msg)
	}
	return out
}

// argsValue turns tool-call arguments given as a JSON string holding JSON
// (OpenAI) or as an object (the others) into a JSON value.
func argsValue(raw span) json.RawMessage {
	if raw.hasText() {
		return rawArgs([]byte(raw.str()))
	}
	return raw.clone()
}

// promptInput converts a completion prompt (a string or a list of strings)
// into one user message per prompt.
func promptInput(raw span) []Message {
	if raw.hasText() {
		return []Message{{Role: "user", Parts: []Part{{Type: partText, Content: raw.str()}}}}
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var items spanList
	if !readJSON(raw, &items) {
		return nil
	}
	var out []Message
	for _, it := range items {
		if s := it.str(); s != "" {
			out = append(out, Message{Role: "user", Parts: []Part{{Type: partText, Content: s}}})
		}
	}
	return out
}

// systemParts converts a system prompt given as a string or text blocks.
func systemParts(raw span) []Part {
	return textParts(raw)
}

// toolDef is one entry of gen_ai.tool.definitions.
type toolDef struct {
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// toolItem is the union of the tool list entries of every API.
type toolItem struct {
	Type        string    `json:"type"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Parameters  span      `json:"parameters"`
	InputSchema span      `json:"input_schema"`
	Function    *funcDecl `json:"function"`
	// Gemini
	FunctionDeclarations []funcDecl `json:"functionDeclarations"`
	GoogleSearch         *skipValue `json:"googleSearch"`
	CodeExecution        *skipValue `json:"codeExecution"`
	URLContext           *skipValue `json:"urlContext"`
}

type toolItems []toolItem

func (l *toolItems) readFrom(r *jsonReader) { readSlice(r, (*[]toolItem)(l), (*toolItem).readFrom) }

type contentParts []contentPart

func (l *contentParts) readFrom(r *jsonReader) {
	readSlice(r, (*[]contentPart)(l), (*contentPart).readFrom)
}

type funcDecl struct {
	Name                 string `json:"name"`
	Description          string `json:"description"`
	Parameters           span   `json:"parameters"`
	ParametersJSONSchema span   `json:"parametersJsonSchema"`
}

// toolDefinitions flattens the tool lists of every API into one shape:
// OpenAI chat and Ollama nest the function ({"type":"function","function":
// {...}}), Responses is flat, Anthropic names the schema input_schema, and
// Gemini groups functionDeclarations. Built-in tools keep their type.
func toolDefinitions(raw span) json.RawMessage {
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var items toolItems
	if !readJSON(raw, &items) {
		return nil
	}
	var defs []toolDef
	for _, it := range items {
		switch {
		case it.Function != nil:
			defs = append(defs, toolDef{Type: "function", Name: it.Function.Name, Description: it.Function.Description, Parameters: it.Function.Parameters.clone()})
		case len(it.FunctionDeclarations) > 0:
			for _, fd := range it.FunctionDeclarations {
				params := fd.Parameters.clone()
				if params == nil {
					params = fd.ParametersJSONSchema.clone()
				}
				defs = append(defs, toolDef{Type: "function", Name: fd.Name, Description: fd.Description, Parameters: params})
			}
		case it.GoogleSearch != nil:
			defs = append(defs, toolDef{Type: "google_search"})
		case it.CodeExecution != nil:
			defs = append(defs, toolDef{Type: "code_execution"})
		case it.URLContext != nil:
			defs = append(defs, toolDef{Type: "url_context"})
		case it.InputSchema.present():
			defs = append(defs, toolDef{Type: "function", Name: it.Name, Description: it.Description, Parameters: it.InputSchema.clone()})
		case it.Type != "" || it.Name != "":
			t := it.Type
			if t == "" {
				t = "function"
			}
			defs = append(defs, toolDef{Type: t, Name: it.Name, Description: it.Description, Parameters: it.Parameters.clone()})
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
