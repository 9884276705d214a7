package genai

import (
	"bytes"
	"encoding/json"
)

// Bounds on what one response may make the assembler hold, whatever indices
// a (possibly garbled) stream names.
const (
	maxChoices      = 64  // choices / candidates tracked per call
	maxPartsPerMsg  = 256 // parts per output message
	maxToolCallsOut = 256 // tool calls reported per call
)

// Part types of the conventions' message schema.
const (
	partText         = "text"
	partReasoning    = "reasoning"
	partToolCall     = "tool_call"
	partToolResponse = "tool_call_response"
)

// output assembles the response's messages from deltas. It always tracks
// finish reasons and tool-call ids and names; text and arguments only when
// output capture is on, so a stream costs O(1) memory otherwise.
type output struct {
	capture bool
	choices []outChoice
	// budget is how many more bytes of text and arguments may be kept;
	// past it the rest of the stream is only counted, so a response that
	// streams for an hour cannot grow the assembler without bound.
	budget  int
	cut     bool
	scratch []byte // unquoted delta, reused
}

// keep reports how much of n more bytes fits the budget and charges it.
func (o *output) keep(n int) int {
	if n > o.budget {
		n = o.budget
		o.cut = true
	}
	o.budget -= n
	return n
}

// add appends up to the budget. When it cuts, it also drops the word the
// cut fell in, from wherever that word began (possibly an earlier delta): a
// half-kept secret would no longer match the exporter's redaction patterns.
func (o *output) add(dst, more []byte) []byte {
	n := o.keep(len(more))
	dst = append(dst, more[:n]...)
	if n < len(more) {
		i := bytes.LastIndexAny(dst, " \t\n\r,.;:!?\"'()[]{}<>")
		dst = dst[:i+1]
	}
	return dst
}

// outChoice is one choice (OpenAI), candidate (Gemini) or the single message
// of the other APIs.
type outChoice struct {
	used   bool
	role   string
	finish string
	parts  []outPart
}

// outPart is one part being assembled. keyed parts are addressed by the
// index the stream gives them (tool-call index, content block, output item).
type outPart struct {
	typ   string
	key   int
	keyed bool
	text  []byte // content, or arguments of a tool call
	id    string
	name  string
	// server marks a tool the provider runs itself (ToolExtension).
	server bool
}

// choice returns choice i, or nil when i is out of bounds.
func (o *output) choice(i int) *outChoice {
	if i < 0 || i >= maxChoices {
		return nil
	}
	for len(o.choices) <= i {
		o.choices = append(o.choices, outChoice{})
	}
	ch := &o.choices[i]
	ch.used = true
	return ch
}

// appendText adds a text or reasoning delta, joining it to the previous part
// when that is of the same type.
func (o *output) appendText(ch *outChoice, typ string, s span) {
	if ch == nil || !o.capture || !s.hasText() {
		return
	}
	o.scratch = s.appendStr(o.scratch[:0])
	o.appendBytes(ch, typ, o.scratch)
}

// appendString is appendText for text already unquoted.
func (o *output) appendString(ch *outChoice, typ, s string) {
	if ch == nil || !o.capture || s == "" || o.cut {
		return
	}
	o.appendBytes(ch, typ, []byte(s))
}

func (o *output) appendBytes(ch *outChoice, typ string, s []byte) {
	if n := len(ch.parts); n > 0 && ch.parts[n-1].typ == typ && !ch.parts[n-1].keyed {
		ch.parts[n-1].text = o.add(ch.parts[n-1].text, s)
		return
	}
	if len(ch.parts) >= maxPartsPerMsg {
		return
	}
	ch.parts = append(ch.parts, outPart{typ: typ, text: o.add(nil, s)})
}

// keyed returns the part the stream calls key, creating it with typ.
// Tool-call parts are created even without capture, for their id and name.
func (o *output) keyed(ch *outChoice, key int, typ string) *outPart {
	if ch == nil {
		return nil
	}
	for i := range ch.parts {
		if ch.parts[i].keyed && ch.parts[i].key == key {
			return &ch.parts[i]
		}
	}
	if typ != partToolCall && !o.capture {
		return nil
	}
	if len(ch.parts) >= maxPartsPerMsg {
		return nil
	}
	ch.parts = append(ch.parts, outPart{typ: typ, key: key, keyed: true})
	return &ch.parts[len(ch.parts)-1]
}

// newTool adds a tool call that arrives whole (not as deltas); server is
// set for a tool the provider runs itself.
func (o *output) newTool(ch *outChoice, id, name string, args span, server bool) {
	if ch == nil || len(ch.parts) >= maxPartsPerMsg {
		return
	}
	p := outPart{typ: partToolCall, id: id, name: name, server: server}
	if o.capture && args.nonEmpty() && o.keep(len(args)) == len(args) {
		if args[0] == '"' {
			p.text = args.appendStr(nil)
		} else {
			var buf bytes.Buffer
			if json.Compact(&buf, args) == nil {
				p.text = buf.Bytes()
			} else {
				p.text = append([]byte(nil), args...)
			}
		}
	}
	ch.parts = append(ch.parts, p)
}

// appendArgs adds an arguments fragment to a tool-call part.
func (o *output) appendArgs(p *outPart, s span) {
	if p == nil || !o.capture || o.cut {
		return
	}
	o.scratch = s.appendStr(o.scratch[:0])
	p.text = o.add(p.text, o.scratch)
}

// appendKeyedText adds a delta to a keyed text or reasoning part.
func (o *output) appendKeyedText(p *outPart, s span) {
	if p == nil || !o.capture || o.cut {
		return
	}
	o.scratch = s.appendStr(o.scratch[:0])
	p.text = o.add(p.text, o.scratch)
}

// finish writes finish reasons, tool calls and (with capture) the output
// messages into the call.
func (o *output) finish(st *callState) {
	c := st.c
	c.ContentTruncated = c.ContentTruncated || o.cut
	for i := range o.choices {
		ch := &o.choices[i]
		if !ch.used {
			continue
		}
		if ch.finish != "" {
			c.FinishReasons = append(c.FinishReasons, ch.finish)
		}
		var parts []Part
		for j := range ch.parts {
			p := &ch.parts[j]
			switch p.typ {
			case partToolCall:
				if len(c.ToolCalls) < maxToolCallsOut {
					tc := ToolCall{ID: p.id, Name: p.name, Type: ToolFunction}
					if p.server {
						tc.Type = ToolExtension
					}
					if o.capture {
						tc.Arguments = string(p.text)
					}
					c.ToolCalls = append(c.ToolCalls, tc)
				}
				if o.capture {
					parts = append(parts, Part{Type: partToolCall, ID: p.id, Name: p.name, Arguments: rawArgs(p.text)})
				}
			default:
				if o.capture && len(p.text) > 0 {
					parts = append(parts, Part{Type: p.typ, Content: string(p.text)})
				}
			}
		}
		// A failed call's empty message says nothing the error does not.
		if o.capture && (len(parts) > 0 || (ch.finish != "" && !st.failed)) {
			role := ch.role
			if role == "" {
				role = "assistant"
			}
			if parts == nil {
				parts = []Part{}
			}
			c.OutputMessages = append(c.OutputMessages, Message{Role: role, Parts: parts, FinishReason: ch.finish})
		}
	}
	o.choices = nil
}
