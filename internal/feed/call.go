package feed

import (
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// processName is what the console shows for p.
func processName(p *export.Process) (string, int) {
	if p == nil {
		return "unknown_service", 0
	}
	name := p.ExecutableName
	if name == "" {
		name = p.ServiceName
	}
	if name == "" {
		name = "unknown_service"
	}
	return name, p.PID
}

// redacted replaces what the server echoed of the request's own
// credentials, as the exporter does.
const redacted = "[REDACTED]"

func modelOf(c *genai.Call) string {
	m := c.RequestModel
	if m == "" {
		m = c.ResponseModel
	}
	return c.Credentials.Scrub(m, redacted)
}

func operationOf(c *genai.Call) string {
	if c.Operation == "" {
		return "_OTHER"
	}
	return c.Operation
}

func startOf(p *export.Process, c *genai.Call) *Start {
	name, pid := processName(p)
	return &Start{Process: name, PID: pid, Server: !c.Endpoint.ClientSide, Provider: c.Provider,
		Operation: operationOf(c), Model: modelOf(c), Start: c.Start, Stream: c.Stream}
}

// CallOf is the call frame of c, made by p.
func CallOf(p *export.Process, c *genai.Call) *Call {
	name, pid := processName(p)
	out := &Call{
		Process: name, PID: pid, Server: !c.Endpoint.ClientSide,
		Provider: c.Provider, Operation: operationOf(c), Model: modelOf(c),
		Start: c.Start, End: c.End, Stream: c.Stream, Status: c.Status,
		InputTokens: copyInt(c.Usage.InputTokens), OutputTokens: copyInt(c.Usage.OutputTokens),
		Chunks:    len(c.ContentChunks) + c.ContentChunksDropped,
		ErrorType: c.Credentials.Scrub(c.ErrorType, redacted), Truncated: c.Truncated,
		Line: c.Credentials.Scrub(export.ConsoleLine(p, c), redacted),
	}
	if ttfc, ok := c.TimeToFirstChunk(); ok {
		s := ttfc.Seconds()
		out.TimeToFirstChunk = &s
	}
	if n := len(c.ContentChunks); n >= 2 {
		if span := c.ContentChunks[n-1].Sub(c.ContentChunks[0]); span >= 0 {
			s := span.Seconds() / float64(n-1)
			out.TimePerChunk = &s
		}
	}
	return out
}

// copyInt keeps the frame apart from the call, which the exporter may
// still hold.
func copyInt(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
