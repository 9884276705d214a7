package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// redactedText replaces every match of a redaction pattern.
const redactedText = "[REDACTED]"

// truncationMark ends a string that was cut to fit the byte cap.
const truncationMark = "…[truncated]"

// builtinRedactions are the patterns no configuration can switch off, because
// what they match must not leave the host whatever the user asked to capture.
// They lean towards redacting too much: a false positive costs a word of a
// prompt, a false negative leaks a credential.
var builtinRedactions = []string{
	// OpenAI (sk-, sk-proj-) and Anthropic (sk-ant-) API keys.
	`\bsk-[A-Za-z0-9_-]{20,}`,
	// Bearer tokens as written in headers or pasted into prompts.
	`(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*`,
	// AWS access key ids, and secret keys where they are named.
	`\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b`,
	`(?i)\baws_?secret_?access_?key["'\s:=]+[A-Za-z0-9/+]{40,}`,
	// JSON Web Tokens: base64url header and payload, both JSON objects.
	`\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`,
	// Google API keys and GitHub tokens.
	`\bAIza[0-9A-Za-z_-]{35,}`,
	`\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})`,
	// api_key=… and x-api-key: … assignments of any provider.
	`(?i)\b(?:x-api-key|api[_-]?key)["']?\s*[:=]\s*["']?[A-Za-z0-9_.-]{12,}`,
	// Cookie headers (name=value pairs), e.g. in a curl command line.
	`(?i)\b(?:set-)?cookie\s*:\s*[^\s;=]+=[^\s;]*(?:;\s*[^\s;=]+=?[^\s;]*)*`,
	// PEM private keys, also when the end line was cut off.
	`-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|[\s\S]*)`,
	// E-mail addresses.
	`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`,
}

// redactor replaces credentials and personal data in free text. All patterns
// are joined into one expression so each string is scanned once.
type redactor struct {
	re *regexp.Regexp
}

func newRedactor(extra []string) (*redactor, error) {
	alts := make([]string, 0, len(builtinRedactions)+len(extra))
	for _, p := range builtinRedactions {
		alts = append(alts, "(?:"+p+")")
	}
	for _, p := range extra {
		if _, err := regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("redaction pattern %q: %w", p, err)
		}
		alts = append(alts, "(?:"+p+")")
	}
	re, err := regexp.Compile(strings.Join(alts, "|"))
	if err != nil {
		return nil, fmt.Errorf("redaction patterns: %w", err)
	}
	return &redactor{re: re}, nil
}

func (r *redactor) redact(s string) string {
	if s == "" || !r.re.MatchString(s) {
		return s
	}
	return r.re.ReplaceAllLiteralString(s, redactedText)
}

// contentPolicy turns a call's messages into content attributes: JSON in the
// conventions' schema, redacted, each under the byte cap.
type contentPolicy struct {
	capture  ContentCapture
	dest     ContentDestination
	maxBytes int
	redactor *redactor
}

func (p *contentPolicy) enabled() bool { return p.capture != CaptureNone }

// attributes returns the content attributes of c that capture asks for,
// followed by keyContentTruncated when any of them was cut.
func (p *contentPolicy) attributes(c *genai.Call) []attribute.KeyValue {
	if !p.enabled() {
		return nil
	}
	var out []attribute.KeyValue
	cut := c.ContentTruncated
	add := func(key attribute.Key, raw []byte, keepLast bool) {
		s, c := p.encode(raw, keepLast)
		out = append(out, key.String(s))
		cut = cut || c
	}
	if p.capture.Input() {
		if len(c.SystemInstructions) > 0 {
			add(semconv.GenAISystemInstructionsKey, marshalParts(c.SystemInstructions), true)
		}
		if len(c.InputMessages) > 0 {
			add(semconv.GenAIInputMessagesKey, marshalMessages(c.InputMessages), true)
		}
		if len(c.ToolDefinitions) > 0 {
			add(semconv.GenAIToolDefinitionsKey, c.ToolDefinitions, true)
		}
	}
	if p.capture.Output() && len(c.OutputMessages) > 0 {
		add(semconv.GenAIOutputMessagesKey, marshalMessages(c.OutputMessages), false)
	}
	if cut {
		out = append(out, keyContentTruncated.Bool(true))
	}
	return out
}

// encode redacts and caps one JSON document. It cuts before redacting too, so
// that a 50 MB prompt costs a scan of the cap, not of the prompt; a cut drops
// the word it lands in, so no partial credential survives to evade the
// patterns.
func (p *contentPolicy) encode(raw []byte, keepLast bool) (string, bool) {
	d := newContentDoc(raw)
	d.fit(p.maxBytes, keepLast)
	d.redact(p.redactor)
	out := d.fit(p.maxBytes, keepLast)
	return string(out), d.cut
}

// marshalMessages encodes messages in the conventions' schema. Tool-call
// arguments captured mid-stream may not be valid JSON; they are carried as
// JSON strings then, rather than losing the whole attribute.
func marshalMessages(msgs []genai.Message) []byte {
	if b, err := json.Marshal(msgs); err == nil {
		return b
	}
	fixed := make([]genai.Message, len(msgs))
	for i, m := range msgs {
		m.Parts = validParts(m.Parts)
		fixed[i] = m
	}
	b, _ := json.Marshal(fixed)
	return b
}

func marshalParts(parts []genai.Part) []byte {
	if b, err := json.Marshal(parts); err == nil {
		return b
	}
	b, _ := json.Marshal(validParts(parts))
	return b
}

func validParts(parts []genai.Part) []genai.Part {
	out := make([]genai.Part, len(parts))
	for i, pt := range parts {
		pt.Arguments = validJSON(pt.Arguments)
		pt.Response = validJSON(pt.Response)
		out[i] = pt
	}
	return out
}

func validJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || json.Valid(raw) {
		return raw
	}
	b, _ := json.Marshal(string(raw))
	return b
}

// contentDoc is a decoded JSON document whose strings can be redacted and
// shortened in place.
type contentDoc struct {
	root   any
	leaves []*textLeaf
	cut    bool
}

// textLeaf is one string of the document: its current text, whether it was
// cut (and so is written with truncationMark), and how to store it back.
type textLeaf struct {
	text  string
	cut   bool
	store func(string)
}

func (l *textLeaf) size() int {
	if l.cut {
		return len(l.text) + len(truncationMark)
	}
	return len(l.text)
}

func (l *textLeaf) flush() {
	if l.cut {
		l.store(l.text + truncationMark)
	} else {
		l.store(l.text)
	}
}

func newContentDoc(raw []byte) *contentDoc {
	d := &contentDoc{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&d.root); err != nil {
		// Not JSON (a tool definition blob cut in capture): keep it as text.
		d.root = string(raw)
	}
	d.collect()
	return d
}

// collect lists the document's strings. Object keys are redacted in place
// here rather than made leaves, as cutting a key would change the schema.
func (d *contentDoc) collect() {
	d.leaves = d.leaves[:0]
	var walk func(v any, store func(string)) any
	walk = func(v any, store func(string)) any {
		switch x := v.(type) {
		case string:
			d.leaves = append(d.leaves, &textLeaf{text: x, store: store})
		case []any:
			for i := range x {
				x[i] = walk(x[i], func(s string) { x[i] = s })
			}
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e, func(s string) { x[k] = s })
			}
		}
		return v
	}
	d.root = walk(d.root, func(s string) { d.root = s })
}

func (d *contentDoc) redact(r *redactor) {
	for _, l := range d.leaves {
		l.text = r.redact(l.text)
		l.flush()
	}
	// Renamed keys would leave the leaves' store functions writing to the
	// old ones, so the leaves are collected again.
	d.root = redactKeys(d.root, r)
	d.collect()
	d.markCut()
}

// markCut re-applies the cut flags after collect rebuilt the leaves from the
// stored (marked) strings.
func (d *contentDoc) markCut() {
	for _, l := range d.leaves {
		if t, ok := strings.CutSuffix(l.text, truncationMark); ok {
			l.text, l.cut = t, true
		}
	}
}

func redactKeys(v any, r *redactor) any {
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = redactKeys(x[i], r)
		}
	case map[string]any:
		for k, e := range x {
			e = redactKeys(e, r)
			if rk := r.redact(k); rk != k {
				delete(x, k)
				k = rk
			}
			x[k] = e
		}
	}
	return v
}

func (d *contentDoc) encode() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the JSON is read by people; \u003c helps no one
	if err := enc.Encode(d.root); err != nil {
		return []byte("null")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// minUsefulText is the shortest cut text worth keeping: below it, dropping
// whole old messages keeps more meaning than trimming every one to a stub.
const minUsefulText = 64

// fit shortens the document until it encodes to at most maxBytes: first by
// cutting the longest strings to a common length, dropping whole messages
// (the oldest input, the latest output) when that length would be useless,
// and as a last resort by emptying the document.
func (d *contentDoc) fit(maxBytes int, keepLast bool) []byte {
	for range 16 {
		out := d.encode()
		if len(out) <= maxBytes {
			return out
		}
		need := len(out) - maxBytes
		n := cutLevel(d.leaves, need)
		if n < minUsefulText && d.dropElements(need, keepLast) {
			continue
		}
		if !d.trim(n) {
			break
		}
	}
	if out := d.encode(); len(out) <= maxBytes {
		return out
	}
	d.cut = true
	switch d.root.(type) {
	case []any:
		d.root = []any{}
	case map[string]any:
		d.root = map[string]any{}
	default:
		d.root = truncationMark
	}
	d.collect()
	return d.encode()
}

// cutLevel is the largest text length n such that cutting every longer
// string to n (plus the mark) frees at least need bytes; 0 when even that
// is not enough.
func cutLevel(leaves []*textLeaf, need int) int {
	freed := func(n int) int {
		sum := 0
		for _, l := range leaves {
			if s := l.size(); s > n+len(truncationMark) {
				sum += s - n - len(truncationMark)
			}
		}
		return sum
	}
	hi := 0
	for _, l := range leaves {
		hi = max(hi, len(l.text))
	}
	if freed(0) < need {
		return 0
	}
	lo := 0 // freed(lo) >= need always holds
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if freed(mid) >= need {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// trim cuts every string longer than n plus the mark, and reports whether
// anything changed.
func (d *contentDoc) trim(n int) bool {
	changed := false
	for _, l := range d.leaves {
		if l.size() <= n+len(truncationMark) {
			continue
		}
		l.text, l.cut = cutText(l.text, n), true
		l.flush()
		changed = true
	}
	d.cut = d.cut || changed
	return changed
}

// cutText shortens s to at most n bytes on a rune boundary and drops the
// word the cut landed in: half a credential would no longer match its
// pattern.
func cutText(s string, n int) string {
	if n >= len(s) {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	s = s[:n]
	return strings.TrimRightFunc(s, isTokenRune)
}

func isTokenRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("-_.+/=~%@:", r)
}

// dropElements removes whole entries of a top-level array worth about need
// bytes, oldest first (or newest first when keepLast is false), always
// leaving one. It reports whether it removed any.
func (d *contentDoc) dropElements(need int, keepLast bool) bool {
	arr, ok := d.root.([]any)
	if !ok || len(arr) < 2 {
		return false
	}
	drop, freed := 0, 0
	for drop < len(arr)-1 && freed < need {
		i := drop
		if !keepLast {
			i = len(arr) - 1 - drop
		}
		b, _ := json.Marshal(arr[i])
		freed += len(b) + 1
		drop++
	}
	if keepLast {
		arr = arr[drop:]
	} else {
		arr = arr[:len(arr)-drop]
	}
	d.root = arr
	d.cut = true
	d.collect()
	d.markCut()
	return true
}
