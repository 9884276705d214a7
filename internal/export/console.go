package export

import (
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// console writes one line per call, for a person watching a terminal:
//
//	19:04:05.123 curl[4242] ollama chat llama3.2 in=12 out=40 ttfc=52ms dur=1.21s ok
//
// The time is the request's start, in local time. A call seen inside the
// model server has "(server)" after the process. Token counts and time to
// first chunk appear only when observed; the last field is ok or
// error=<error.type>, followed by "truncated" when capture lost bytes.
type console struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (c *console) print(p *Process, call *genai.Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = appendConsoleLine(c.buf[:0], p, call)
	c.w.Write(c.buf) //nolint:errcheck // a broken terminal must not stop the export
}

// ConsoleLine returns the console line of a call without its newline, for
// other views of the same calls (the live feed) to show it the same way.
func ConsoleLine(p *Process, c *genai.Call) string {
	b := appendConsoleLine(make([]byte, 0, 128), p, c)
	return string(b[:len(b)-1])
}

func appendConsoleLine(b []byte, p *Process, c *genai.Call) []byte {
	b = c.Start.Local().AppendFormat(b, "15:04:05.000")
	b = append(b, ' ')
	if p == nil {
		p = unknownProcess
	}
	name := p.ExecutableName
	if name == "" {
		name = serviceName(p)
	}
	b = append(b, name...)
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(p.PID), 10)
	b = append(b, ']')
	if !c.Endpoint.ClientSide {
		b = append(b, " (server)"...)
	}
	if c.MCP != nil {
		return appendMCPLine(b, c)
	}
	b = appendField(b, "", orDash(c.Provider))
	b = appendField(b, "", operationName(c))
	model := c.RequestModel
	if model == "" {
		model = c.ResponseModel
	}
	b = appendField(b, "", orDash(model))
	if n := c.Usage.InputTokens; n != nil {
		b = strconv.AppendInt(append(b, " in="...), *n, 10)
	}
	if n := c.Usage.OutputTokens; n != nil {
		b = strconv.AppendInt(append(b, " out="...), *n, 10)
	}
	if ttfc, ok := c.TimeToFirstChunk(); ok {
		b = appendDuration(append(b, " ttfc="...), ttfc)
	}
	b = appendDuration(append(b, " dur="...), c.Duration())
	if c.ErrorType != "" {
		b = appendField(b, "error=", c.ErrorType)
	} else {
		b = append(b, " ok"...)
	}
	if c.Truncated {
		b = append(b, " truncated"...)
	}
	return append(b, '\n')
}

func appendField(b []byte, prefix, v string) []byte {
	b = append(b, ' ')
	b = append(b, prefix...)
	return append(b, v...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendDuration writes d as a person reads it: 0.4ms, 52ms, 1.21s.
func appendDuration(b []byte, d time.Duration) []byte {
	switch {
	case d < 10*time.Millisecond:
		b = strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 1, 64)
		return append(b, "ms"...)
	case d < time.Second:
		b = strconv.AppendInt(b, d.Round(time.Millisecond).Milliseconds(), 10)
		return append(b, "ms"...)
	}
	b = strconv.AppendFloat(b, d.Seconds(), 'f', 2, 64)
	return append(b, 's')
}
