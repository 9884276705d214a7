package decode

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// Parsing of message heads (RFC 9112 §2–§5). Heads are parsed only once
// they are complete, from one contiguous buffer: one string conversion
// backs every name and value of the resulting http.Header.

var errNoColon = errors.New("header line without a colon")

// maxMethod bounds a request method while looking for a request line in
// unknown bytes; real methods are short.
const maxMethod = 20

func isMethodByte(c byte) bool { return c >= 'A' && c <= 'Z' || c == '-' || c == '_' }

// startPrefixOK tells whether p could begin a request line (req) or a status
// line (resp). It looks at a few bytes only, so it rejects garbage cheaply
// before any buffering.
func startPrefixOK(p []byte, req, resp bool) bool {
	return req && requestPrefixOK(p) || resp && statusPrefixOK(p)
}

func requestPrefixOK(p []byte) bool {
	for i, c := range p {
		if c == ' ' {
			return i > 0 && (i+1 >= len(p) || p[i+1] > ' ' && p[i+1] != 0x7f)
		}
		if !isMethodByte(c) || i >= maxMethod {
			return false
		}
	}
	return true
}

const httpPrefix = "HTTP/1."

func statusPrefixOK(p []byte) bool {
	n := min(len(p), len(httpPrefix))
	if string(p[:n]) != httpPrefix[:n] {
		return false
	}
	return len(p) <= n || p[n] >= '0' && p[n] <= '9'
}

// trimEOL drops the line terminator (LF or CRLF). It looks at the last
// bytes directly: bytes.TrimSuffix compares through a general memequal,
// which shows in profiles at one call per header line.
func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// parseVersion accepts "HTTP/1.x".
func parseVersion(v []byte) bool {
	return len(v) == len(httpPrefix)+1 && string(v[:len(httpPrefix)]) == httpPrefix && v[len(httpPrefix)] >= '0' && v[len(httpPrefix)] <= '9'
}

// requestLine splits "METHOD SP target SP HTTP/1.x".
func requestLine(line []byte) (method, target, proto []byte, ok bool) {
	line = trimEOL(line)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || sp1 > maxMethod {
		return nil, nil, nil, false
	}
	for _, c := range line[:sp1] {
		if !isMethodByte(c) {
			return nil, nil, nil, false
		}
	}
	rest := line[sp1+1:]
	sp2 := bytes.LastIndexByte(rest, ' ')
	if sp2 <= 0 {
		return nil, nil, nil, false
	}
	target, proto = rest[:sp2], rest[sp2+1:]
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return nil, nil, nil, false
		}
	}
	if !parseVersion(proto) {
		return nil, nil, nil, false
	}
	return line[:sp1], target, proto, true
}

// statusLine splits "HTTP/1.x SP 3DIGIT [SP reason]".
func statusLine(line []byte) (proto []byte, status int, ok bool) {
	line = trimEOL(line)
	if len(line) < len(httpPrefix)+5 || !parseVersion(line[:len(httpPrefix)+1]) || line[len(httpPrefix)+1] != ' ' {
		return nil, 0, false
	}
	code := line[len(httpPrefix)+2:]
	if len(code) > 3 && code[3] != ' ' {
		return nil, 0, false
	}
	for _, c := range code[:3] {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return nil, 0, false
	}
	for _, c := range code[min(len(code), 3):] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, 0, false
		}
	}
	return line[:len(httpPrefix)+1], status, true
}

// parsedHead is a head cut into its parts; all strings share one backing.
type parsedHead struct {
	method, target, proto string
	status                int
	header                http.Header
}

// parseHead parses a complete head (start line through the empty line).
func parseHead(head []byte, request bool) (parsedHead, error) {
	var ph parsedHead
	nl := bytes.IndexByte(head, '\n')
	if nl < 0 {
		return ph, ErrMalformed
	}
	s := string(head)
	first := head[:nl+1]
	if request {
		m, tg, pr, ok := requestLine(first)
		if !ok {
			return ph, fmt.Errorf("request line: %w", ErrMalformed)
		}
		ph.method = internMethod(m, s)
		off := len(m) + 1
		ph.target = s[off : off+len(tg)]
		ph.proto = internProto(pr, s[off+len(tg)+1:off+len(tg)+1+len(pr)])
	} else {
		pr, st, ok := statusLine(first)
		if !ok {
			return ph, fmt.Errorf("status line: %w", ErrMalformed)
		}
		ph.proto = internProto(pr, s[:len(pr)])
		ph.status = st
	}
	h, err := parseFields(head[nl+1:], s[nl+1:])
	if err != nil {
		return ph, fmt.Errorf("header: %w: %w", ErrMalformed, err)
	}
	ph.header = h
	return ph, nil
}

// parseFields parses header or trailer field lines up to the empty line.
// b and s hold the same bytes; names and values are cut from s.
func parseFields(b []byte, s string) (http.Header, error) {
	lines := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] == '\n' {
		// The blank line ending a head is no field: a hint one too large
		// makes a map of eight fields a map of four allocations, not two.
		if t := trimEOL(b); len(t) == 0 || t[len(t)-1] == '\n' {
			lines--
		}
	}
	h := make(http.Header, lines)
	vals := make([]string, 0, lines)
	var lastKey string
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			nl = len(b) - 1
		}
		line := trimEOL(b[:nl+1])
		ls := s[:len(line)]
		b, s = b[nl+1:], s[nl+1:]
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Obsolete line folding (RFC 9112 §5.2): join with one space.
			if lastKey == "" {
				return nil, errNoColon
			}
			v := h[lastKey]
			v[len(v)-1] = v[len(v)-1] + " " + trimOWS(ls)
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, errNoColon
		}
		name := trimRightOWS(ls[:colon])
		for i := 0; i < len(name); i++ {
			if !isTokenByte(name[i]) {
				return nil, fmt.Errorf("invalid field name %q", name)
			}
		}
		key := canonicalKey(name)
		v := trimOWS(ls[colon+1:])
		if old, ok := h[key]; ok {
			h[key] = append(old, v)
		} else {
			vals = append(vals, v)
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
		lastKey = key
	}
	return h, nil
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey for a valid field name,
// without its allocation for the names below, which clients and LLM APIs
// send in lower case: a response of the OpenAI or Anthropic API carries a
// dozen of them, and each would otherwise be a string of its own for as
// long as the exchange lasts. A name already canonical is returned as is.
func canonicalKey(name string) string {
	var buf [48]byte
	if len(name) > len(buf) {
		return textproto.CanonicalMIMEHeaderKey(name)
	}
	b := buf[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if string(b) == name {
		return name
	}
	if k, ok := lowerCaseKeys[string(b)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// lowerCaseKeys are the canonical forms of field names commonly sent in
// lower case that textproto does not share already.
var lowerCaseKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "Traceparent", "Tracestate",
		"X-Request-Id", "Request-Id", "Apim-Request-Id", "X-Goog-Request-Id", "Retry-After", "Retry-After-Ms",
		"Openai-Organization", "Openai-Project", "Openai-Processing-Ms", "Openai-Version", "Openai-Beta",
		"X-Ratelimit-Limit-Requests", "X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Requests",
		"X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Requests", "X-Ratelimit-Reset-Tokens",
		"Anthropic-Version", "Anthropic-Beta", "Anthropic-Organization-Id",
		"Anthropic-Ratelimit-Requests-Limit", "Anthropic-Ratelimit-Requests-Remaining", "Anthropic-Ratelimit-Requests-Reset",
		"Anthropic-Ratelimit-Tokens-Limit", "Anthropic-Ratelimit-Tokens-Remaining", "Anthropic-Ratelimit-Tokens-Reset",
		"Anthropic-Ratelimit-Input-Tokens-Limit", "Anthropic-Ratelimit-Input-Tokens-Remaining", "Anthropic-Ratelimit-Input-Tokens-Reset",
		"Anthropic-Ratelimit-Output-Tokens-Limit", "Anthropic-Ratelimit-Output-Tokens-Remaining", "Anthropic-Ratelimit-Output-Tokens-Reset",
		"X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-Os", "X-Stainless-Arch",
		"X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async", "X-Stainless-Retry-Count",
		"X-Stainless-Read-Timeout", "X-Stainless-Timeout", "X-Stainless-Helper-Method",
		"Access-Control-Expose-Headers", "Access-Control-Allow-Origin", "Strict-Transport-Security",
		"X-Content-Type-Options", "Alt-Svc", "Cf-Ray", "Cf-Cache-Status", "Vary", "Transfer-Encoding",
		"Content-Encoding", "Keep-Alive", "X-Envoy-Upstream-Service-Time", "X-Robots-Tag",
		"Mcp-Session-Id", "Mcp-Protocol-Version", "X-Amzn-Requestid", "X-Amz-Date", "X-Amz-Content-Sha256",
		"Amz-Sdk-Invocation-Id", "Amz-Sdk-Request", "X-Litellm-Call-Id", "X-Litellm-Model-Id",
	} {
		m[k] = k
	}
	return m
}()

func isTokenByte(c byte) bool { return tokenBytes[c] }

// tokenBytes marks the bytes of an RFC 9110 token: looked up, since every
// byte of every field name is checked and '-' is in nearly all of them.
var tokenBytes = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

var commonMethods = []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

// internMethod avoids holding the head alive through the method string for
// the common methods, which genai compares often.
func internMethod(m []byte, s string) string {
	for _, c := range commonMethods {
		if string(m) == c {
			return c
		}
	}
	return s[:len(m)]
}

func internProto(p []byte, s string) string {
	switch string(p) {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/1.0":
		return "HTTP/1.0"
	}
	return s
}

// framing is how a message body is delimited (RFC 9112 §6.3).
type framing uint8

const (
	noBody framing = iota
	lengthBody
	chunkedBody
	closeBody // read until the connection closes (responses only)
	tunnel    // the connection stops being HTTP/1.x
)

// contentLength parses all Content-Length values; differing or invalid
// values make the message malformed (RFC 9110 §8.6).
func contentLength(vals []string) (int64, bool) {
	n := int64(-1)
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ",") {
			part = trimOWS(part)
			if part == "" || len(part) > 18 {
				return 0, false
			}
			var x int64
			for i := 0; i < len(part); i++ {
				c := part[i]
				if c < '0' || c > '9' {
					return 0, false
				}
				x = x*10 + int64(c-'0')
			}
			if n >= 0 && x != n {
				return 0, false
			}
			n = x
		}
	}
	return n, n >= 0
}

// chunkedLast tells whether chunked is the final transfer coding.
func chunkedLast(vals []string) bool {
	last := ""
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ",") {
			if p := trimOWS(part); p != "" {
				last = p
			}
		}
	}
	if i := strings.IndexByte(last, ';'); i >= 0 {
		last = trimRightOWS(last[:i])
	}
	return strings.EqualFold(last, "chunked")
}

// contentCoding picks the decoder for Content-Encoding; identity entries
// are ignored, and more than one real coding is unsupported.
func contentCoding(vals []string) coding {
	c := identity
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ",") {
			p := trimOWS(part)
			var k coding
			switch {
			case p == "" || strings.EqualFold(p, "identity"):
				continue
			case strings.EqualFold(p, "gzip") || strings.EqualFold(p, "x-gzip"):
				k = gzipCoding
			case strings.EqualFold(p, "deflate"):
				k = deflateCoding
			case strings.EqualFold(p, "br"):
				k = brotliCoding
			case strings.EqualFold(p, "zstd"):
				k = zstdCoding
			default:
				return unsupportedCoding
			}
			if c != identity {
				return unsupportedCoding
			}
			c = k
		}
	}
	return c
}

// streamKind reads the media type of Content-Type.
func streamKind(ct string) StreamKind {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = trimOWS(ct)
	switch {
	case strings.EqualFold(ct, "text/event-stream"):
		return SSE
	case strings.EqualFold(ct, "application/x-ndjson"), strings.EqualFold(ct, "application/jsonl"), strings.EqualFold(ct, "application/x-jsonlines"):
		return NDJSON
	case strings.EqualFold(ct, "application/vnd.amazon.eventstream"):
		return EventStream
	}
	return NotStreamed
}

// trimOWS drops the optional whitespace (spaces and tabs) around s. It is
// strings.Trim(s, " \t") without building the cutset's set at every call,
// which shows in profiles at a few calls per header line.
func trimOWS[T string | []byte](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return trimRightOWS(s)
}

// trimRightOWS drops the spaces and tabs at the end of s.
func trimRightOWS[T string | []byte](s T) T {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
