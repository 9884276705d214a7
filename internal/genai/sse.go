package genai

import "bytes"

// Streams normally arrive event by event from the decoder. A server that
// labels its stream with the wrong content type gets it delivered as one
// body instead; these helpers cut such a body into events so the call is
// still read (without per-event times).

// isEventStream reports whether a body looks like SSE rather than JSON.
func isEventStream(b []byte) bool {
	return bytes.HasPrefix(b, []byte("data:")) || bytes.HasPrefix(b, []byte("event:")) ||
		bytes.HasPrefix(b, []byte(":")) || bytes.HasPrefix(b, []byte("id:"))
}

// forEachSSE calls fn with each event of an SSE body and reports whether
// every call succeeded.
func forEachSSE(b []byte, fn func(name string, data []byte) bool) bool {
	ok := true
	var name string
	var data []byte
	hasData := false
	dispatch := func() {
		if hasData && !fn(name, data) {
			ok = false
		}
		name, data, hasData = "", data[:0], false
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			dispatch()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
	dispatch()
	return ok
}
