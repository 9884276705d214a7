package genai

import "bytes"

// Tool results are read from every chat request, content capture or not:
// the exporter pairs them with the tool calls of earlier responses. Only the
// results after the request's last assistant message count, since the
// history before it was answered by earlier requests. Without input capture
// only ids and names are kept.

// toolTurn collects the tool results of a request's last turn.
type toolTurn struct {
	capture bool
	list    []ToolResult
}

// assistant marks an assistant message: whatever came before was answered.
func (t *toolTurn) assistant() { t.list = t.list[:0] }

// add records one result; content is its JSON value as the request has it.
func (t *toolTurn) add(id, name string, failed bool, content span) {
	if len(t.list) >= maxToolCallsOut {
		return
	}
	r := ToolResult{ID: id, Name: name, Error: failed}
	if t.capture {
		r.Content = string(resultValue(content))
	}
	t.list = append(t.list, r)
}

// resultValue is a tool result as a JSON value: text blocks joined into a
// string, and a string that holds a JSON object or array (what tools often
// return) decoded into it, as the conventions ask of
// gen_ai.tool.call.result.
func resultValue(content span) []byte {
	v := textValue(content)
	if len(v) < 2 || v[0] != '"' {
		return v
	}
	s := bytes.TrimSpace([]byte(unquote(v)))
	if len(s) > 0 && (s[0] == '{' || s[0] == '[') && validJSON(s) {
		return s
	}
	return v
}

func (t *toolTurn) results() []ToolResult {
	if len(t.list) == 0 {
		return nil
	}
	return t.list
}

// Markers without which a request's messages hold no tool result: the
// messages are only walked when theirs is present, so a plain chat costs
// one scan for a short string.
var (
	markToolRole         = []byte(`"tool"`)
	markToolResult       = []byte(`tool_result`)
	markFunctionResponse = []byte(`functionResponse`)
	markToolOutput       = []byte(`_output`)
)

// chatTurnMessage is a chat-completions or Ollama message as far as tool
// results need it.
type chatTurnMessage struct {
	Role       string `json:"role"`
	Content    span   `json:"content"`
	ToolCallID string `json:"tool_call_id"`
	ToolName   string `json:"tool_name"`
}

// chatToolResults reads the role "tool" messages after the last assistant
// message of chat-completions or Ollama messages: OpenAI names the call by
// tool_call_id, Ollama by tool_name (and newer versions tool_call_id too).
func chatToolResults(raw span, capture bool) []ToolResult {
	if !bytes.Contains(raw, markToolRole) {
		return nil
	}
	t := toolTurn{capture: capture}
	eachElement(raw, func(v []byte) {
		var m chatTurnMessage
		if !readJSON(v, &m) {
			return
		}
		switch m.Role {
		case "assistant":
			t.assistant()
		case "tool":
			t.add(m.ToolCallID, m.ToolName, false, m.Content)
		}
	})
	return t.results()
}

// anthropicToolResults reads the tool_result blocks after the last
// assistant message of Messages API messages.
func anthropicToolResults(raw span, capture bool) []ToolResult {
	if !bytes.Contains(raw, markToolResult) {
		return nil
	}
	t := toolTurn{capture: capture}
	eachElement(raw, func(v []byte) {
		var m roleContent
		if !readJSON(v, &m) {
			return
		}
		if m.Role == "assistant" {
			t.assistant()
			return
		}
		if len(m.Content) == 0 || m.Content[0] != '[' {
			return
		}
		var blocks contentParts
		if !readJSON(m.Content, &blocks) {
			return
		}
		for _, b := range blocks {
			if b.Type == "tool_result" {
				t.add(b.ToolUseID, "", b.IsError.v, b.Content)
			}
		}
	})
	return t.results()
}

// geminiToolResults reads the functionResponse parts after the last "model"
// content of Gemini contents. Gemini names the function, and its id only
// where the model gave the call one.
func geminiToolResults(raw span, capture bool) []ToolResult {
	if !bytes.Contains(raw, markFunctionResponse) {
		return nil
	}
	t := toolTurn{capture: capture}
	eachElement(raw, func(v []byte) {
		var ct geminiInputContent
		if !readJSON(v, &ct) {
			return
		}
		if ct.Role == "model" {
			t.assistant()
			return
		}
		for _, p := range ct.Parts {
			if fr := p.FunctionResponse; fr != nil {
				t.add(fr.ID, fr.Name, false, fr.Response)
			}
		}
	})
	return t.results()
}

// responsesToolResults reads the function_call_output and
// custom_tool_call_output items after the last assistant message of a
// Responses input. Function calls do not end a turn: a client may list each
// call with its output, one after the other.
func responsesToolResults(raw span, capture bool) []ToolResult {
	if len(raw) == 0 || raw[0] != '[' || !bytes.Contains(raw, markToolOutput) {
		return nil
	}
	t := toolTurn{capture: capture}
	eachElement(raw, func(v []byte) {
		var it responsesInputItem
		if !readJSON(v, &it) {
			return
		}
		switch it.Type {
		case "message", "":
			if it.Role == "assistant" {
				t.assistant()
			}
		case "function_call_output", "custom_tool_call_output":
			t.add(it.CallID, "", false, it.Output)
		}
	})
	return t.results()
}
