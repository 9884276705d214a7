package genai

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

// span is a JSON value exactly as it appeared in the input, not copied. It
// is only valid while the input is: stream events are parsed and folded into
// the call before the decoder reuses their bytes, so noting that a delta
// carries text costs no allocation.
type span []byte

// UnmarshalJSON keeps a reference to the value, null included, so that a
// present-but-null field can be told from an absent one.
func (s *span) UnmarshalJSON(b []byte) error {
	*s = b
	return nil
}

// present reports whether the field appeared at all (null counts).
func (s span) present() bool { return len(s) > 0 }

// isNull reports whether the value is absent or null.
func (s span) isNull() bool { return len(s) == 0 || string(s) == "null" }

// hasText reports whether the value is a non-empty JSON string.
func (s span) hasText() bool { return len(s) > 2 && s[0] == '"' }

// nonEmpty reports whether the value carries anything: a non-empty string,
// object or array, a number or a boolean.
func (s span) nonEmpty() bool {
	switch {
	case s.isNull():
		return false
	case s[0] == '"':
		return len(s) > 2
	case s[0] == '{' || s[0] == '[':
		return len(bytes.TrimSpace(s[1:len(s)-1])) > 0
	}
	return true
}

// str returns the value if it is a JSON string, else "".
func (s span) str() string {
	if len(s) < 2 || s[0] != '"' {
		return ""
	}
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return knownOrString(inner)
	}
	return unquote(s)
}

// knownValues are the short enumerated values the APIs repeat in every
// response (finish reasons, roles, service tiers, stream event types), so
// that reading one shares a constant instead of allocating its copy.
var knownValues = func() map[string]string {
	m := map[string]string{}
	for _, v := range []string{
		"stop", "length", "tool_calls", "function_call", "content_filter",
		"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
		"STOP", "MAX_TOKENS", "SAFETY", "RECITATION",
		"assistant", "user", "system", "tool", "developer", "model",
		"default", "auto", "flex", "priority", "scale", "standard",
		"completed", "incomplete", "in_progress", "failed",
		"message", "text", "function", "output_text",
	} {
		m[v] = v
	}
	return m
}()

// maxKnownValue is the length of the longest of knownValues; a longer text
// is not looked up.
const maxKnownValue = len("content_filter")

// knownOrString returns b as a string, shared with knownValues when it is
// one of them.
func knownOrString(b []byte) string {
	if len(b) <= maxKnownValue {
		if v, ok := knownValues[string(b)]; ok {
			return v
		}
	}
	return string(b)
}

// appendStr appends the unquoted string value to dst; other values are skipped.
func (s span) appendStr(dst []byte) []byte {
	if len(s) < 2 || s[0] != '"' {
		return dst
	}
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return append(dst, inner...)
	}
	return appendUnquoted(dst, s)
}

// setIfChanged stores the string value into *dst, allocating only when it
// differs from what is there (stream chunks repeat id and model each time).
func (s span) setIfChanged(dst *string) {
	if len(s) < 2 || s[0] != '"' {
		return
	}
	inner := s[1 : len(s)-1]
	if len(inner) == 0 || string(inner) == *dst {
		return
	}
	if v := s.str(); v != "" {
		*dst = v
	}
}

// idString returns a string or a number as text (error codes are either).
func (s span) idString() string {
	if s.isNull() {
		return ""
	}
	if s[0] == '"' {
		return s.str()
	}
	if s[0] == '-' || (s[0] >= '0' && s[0] <= '9') {
		return string(s)
	}
	return ""
}

// clone returns a copy that outlives the input.
func (s span) clone() json.RawMessage {
	if s.isNull() {
		return nil
	}
	return append(json.RawMessage(nil), s...)
}

// listSpan is a value kept as it appeared, like span, with the number of
// elements when it is an array: a prompt's messages, counted as the reader
// passes over them instead of in a second pass.
type listSpan struct {
	raw span
	n   int
}

// UnmarshalJSON keeps the value and counts its elements.
func (l *listSpan) UnmarshalJSON(b []byte) error {
	l.raw, l.n = b, countArray(b)
	return nil
}

// optInt is an integer that remembers whether it was observed. Malformed
// values are treated as absent rather than failing the whole object.
type optInt struct {
	v  int64
	ok bool
}

// UnmarshalJSON accepts integers and integral floats (some servers send 12.0).
func (o *optInt) UnmarshalJSON(b []byte) error {
	o.set(b)
	return nil
}

// set takes a JSON value's text, as UnmarshalJSON.
func (o *optInt) set(b []byte) {
	if len(b) == 0 || b[0] == 'n' || b[0] == '"' || b[0] == '{' || b[0] == '[' || b[0] == 't' || b[0] == 'f' {
		return
	}
	if v, ok := smallInt(b); ok {
		*o = optInt{v, true}
		return
	}
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*o = optInt{v, true}
		return
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt64 || f < math.MinInt64 {
		return
	}
	*o = optInt{int64(f), true}
}

// smallInt parses an optionally negative run of at most 18 digits, the
// token counts and durations servers send, without strconv's string.
func smallInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

func (o optInt) ptr() *int64 {
	if !o.ok {
		return nil
	}
	v := o.v
	return &v
}

// optFloat is a number that remembers whether it was observed.
type optFloat struct {
	v  float64
	ok bool
}

// UnmarshalJSON accepts any JSON number; other values leave it unset.
func (o *optFloat) UnmarshalJSON(b []byte) error {
	o.set(b)
	return nil
}

// set takes a JSON value's text, as UnmarshalJSON.
func (o *optFloat) set(b []byte) {
	if len(b) == 0 || !(b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		return
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return
	}
	*o = optFloat{f, true}
}

func (o optFloat) ptr() *float64 {
	if !o.ok {
		return nil
	}
	v := o.v
	return &v
}

// optBool is a boolean that remembers whether it was observed.
type optBool struct {
	v  bool
	ok bool
}

// UnmarshalJSON accepts true and false; other values leave it unset.
func (o *optBool) UnmarshalJSON(b []byte) error {
	o.set(b)
	return nil
}

// set takes a JSON value's text, as UnmarshalJSON.
func (o *optBool) set(b []byte) {
	switch string(b) {
	case "true":
		*o = optBool{true, true}
	case "false":
		*o = optBool{false, true}
	}
}

// stopList is a stop parameter given as one string or a list of them.
type stopList []string

// UnmarshalJSON accepts a string or an array of strings; other items are skipped.
func (l *stopList) UnmarshalJSON(b []byte) error {
	l.set(b)
	return nil
}

// set takes a well-formed JSON value's text, as UnmarshalJSON.
func (l *stopList) set(b []byte) {
	switch {
	case len(b) > 0 && b[0] == '"':
		if s := unquote(b); s != "" {
			*l = stopList{s}
		}
	case len(b) > 0 && b[0] == '[':
		out := stopList{}
		eachElement(b, func(it []byte) {
			if it[0] == '"' {
				out = append(out, span(it).str())
			}
		})
		*l = out
	}
}

// decodeJSON unmarshals b into v and reports whether b was well-formed JSON.
// A field of an unexpected type is skipped, not fatal: servers differ in
// small ways and one odd field must not hide the rest.
func decodeJSON(b []byte, v any) bool {
	err := json.Unmarshal(b, v)
	if err == nil {
		return true
	}
	var te *json.UnmarshalTypeError
	return errors.As(err, &te)
}

// skipValue parses and discards any JSON value without allocating.
type skipValue struct{}

// UnmarshalJSON discards the value.
func (skipValue) UnmarshalJSON([]byte) error { return nil }

// salvageObject rebuilds a well-formed JSON object from the start of a
// truncated one: every complete top-level member is kept, and if the member
// that was cut is an array, its complete elements are kept too (so a cut
// prompt still yields its model, parameters and leading messages). It
// returns nil when not even the opening brace is there.
func salvageObject(b []byte) []byte {
	var r jsonReader
	r.reset(b)
	if r.peek() != '{' {
		return nil
	}
	r.i++
	r.depth++
	out := []byte{'{'}
	for members := 0; ; members++ {
		c := r.peek()
		if c == '}' || c == 0 {
			break
		}
		if members > 0 {
			if c != ',' {
				break
			}
			r.i++
		}
		if r.peek() != '"' {
			break
		}
		keyStart := r.i
		r.skipString()
		if r.err {
			break
		}
		key := b[keyStart:r.i]
		valStart := r.i
		if r.peek() == ':' {
			r.i++
			if val, ok := r.complete(); ok {
				out = appendMember(out, members, key, val)
				continue
			}
		}
		if arr := salvageArray(bytes.TrimLeft(b[valStart:], " \t\r\n:")); arr != nil {
			out = appendMember(out, members, key, arr)
		}
		break
	}
	return append(out, '}')
}

func appendMember(out []byte, i int, key, val []byte) []byte {
	if i > 0 {
		out = append(out, ',')
	}
	out = append(out, key...)
	out = append(out, ':')
	return append(out, val...)
}

// complete reads the next value and returns it unless it is malformed or
// a number that ends where the input does, so that digits may be missing
// ("100" cut to "10").
func (r *jsonReader) complete() ([]byte, bool) {
	r.ws()
	start := r.i
	r.skip()
	if r.err {
		return nil, false
	}
	v := r.b[start:r.i]
	if c := v[0]; (c == '-' || ('0' <= c && c <= '9')) && r.i == len(r.b) {
		return nil, false
	}
	return v, true
}

// salvageArray keeps the complete leading elements of a truncated array.
func salvageArray(b []byte) []byte {
	if len(b) == 0 || b[0] != '[' {
		return nil
	}
	var r jsonReader
	r.reset(b)
	r.i++
	r.depth++
	out := []byte{'['}
	for n := 0; ; n++ {
		c := r.peek()
		if c == ']' || c == 0 {
			break
		}
		if n > 0 {
			if c != ',' {
				break
			}
			r.i++
		}
		v, ok := r.complete()
		if !ok {
			break
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, v...)
	}
	return append(out, ']')
}

// rawArgs turns tool-call arguments into a JSON value for a Part: arguments
// that are JSON text (OpenAI sends a string holding JSON) are used as they
// are; anything else is kept as a JSON string.
func rawArgs(text []byte) json.RawMessage {
	t := bytes.TrimSpace(text)
	if len(t) == 0 {
		return nil
	}
	if json.Valid(t) {
		return append(json.RawMessage(nil), t...)
	}
	q, _ := json.Marshal(string(text))
	return q
}

// rawText quotes s as a JSON string value.
func rawText(s string) json.RawMessage {
	q, _ := json.Marshal(s)
	return q
}

// reuse empties s for decoding into again, keeping its backing array.
// Arrays are read into the old elements in place without zeroing them (as
// encoding/json does), so they are cleared first.
func reuse[T any](s []T) []T {
	s = s[:cap(s)]
	clear(s)
	return s[:0]
}
