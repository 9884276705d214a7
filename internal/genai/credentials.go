package genai

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// credentialHeaders are the request headers whose whole value is a secret.
// Authorization and Proxy-Authorization are read apart, as their value
// starts with a scheme; Cookie apart, as it holds several values.
var credentialHeaders = []string{
	"Api-Key",                   // Azure OpenAI
	"X-Api-Key",                 // Anthropic and many gateways
	"X-Goog-Api-Key",            // Gemini
	"Ocp-Apim-Subscription-Key", // Azure API Management in front of a model
	"X-Auth-Token",
	"X-Amz-Security-Token", // AWS temporary credentials' session token (SigV4)
}

// credentialQueryKeys are the query parameters whose value is a secret
// (lower case; Gemini takes ?key=, a SigV4 presigned URL its signature,
// credential scope and session token).
var credentialQueryKeys = []string{"key", "api_key", "api-key", "apikey", "access_token",
	"x-amz-signature", "x-amz-credential", "x-amz-security-token"}

// Values shorter than minSecretBytes are never scrubbed: matched blindly,
// "1", "true" or "en" from a cookie would be cut out of every text, and a
// value that short is no secret worth the name. Values shorter than
// anywhereSecretBytes are scrubbed only where they stand as a whole token
// (no letter, digit, '-' or '_' either side), so a short cookie value such
// as "abc123" is not cut out of the middle of a longer word. Longer values
// are random enough that any occurrence is the value itself.
const (
	minSecretBytes      = 6
	anywhereSecretBytes = 12
)

// Credentials are the secret values one request carried: the Authorization
// token, API-key headers, each cookie value and key= query values. They
// travel with the Call so that whatever the server echoes (a 401 body
// quoting the key, say) can be scrubbed before export, and are never
// exported themselves.
type Credentials struct {
	secrets []secret
}

type secret struct {
	value string
	whole bool // only where it stands as a whole token
}

// RequestCredentials collects the credential values of a request's header
// and raw query (the part after '?'). The assembler fills Call.Credentials
// with it.
func RequestCredentials(h http.Header, query string) Credentials {
	var c Credentials
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		for _, v := range h.Values(name) {
			c.addAuthorization(v)
		}
	}
	for _, name := range credentialHeaders {
		for _, v := range h.Values(name) {
			c.add(v)
		}
	}
	for _, line := range h.Values("Cookie") {
		for _, pair := range strings.Split(line, ";") {
			if _, v, ok := strings.Cut(pair, "="); ok {
				c.add(strings.Trim(strings.TrimSpace(v), `"`))
			}
		}
	}
	if query != "" {
		for _, pair := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(pair, "=")
			if k, err := url.QueryUnescape(k); err != nil || !slices.Contains(credentialQueryKeys, strings.ToLower(k)) {
				continue
			}
			c.add(v)
			if u, err := url.QueryUnescape(v); err == nil {
				c.add(u)
			}
		}
	}
	// Longest first, so that "Bearer tok" goes whole before "tok" alone.
	slices.SortFunc(c.secrets, func(a, b secret) int { return len(b.value) - len(a.value) })
	return c
}

// addAuthorization adds an Authorization value, its token after the scheme
// and, for Basic, the decoded user:password and the password; for AWS
// Signature Version 4 ("AWS4-HMAC-SHA256 Credential=AKID/scope,
// SignedHeaders=..., Signature=hex"), the access key id, the credential
// and the signature each alone.
func (c *Credentials) addAuthorization(v string) {
	c.add(v)
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return
	}
	token = strings.TrimSpace(token)
	c.add(token)
	if hasPrefixUpper(scheme, "AWS4-") {
		for _, param := range strings.Split(token, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(param), "=")
			switch strings.ToLower(k) {
			case "credential":
				c.add(val)
				if akid, _, ok := strings.Cut(val, "/"); ok {
					c.add(akid)
				}
			case "signature":
				c.add(val)
			}
		}
		return
	}
	if !strings.EqualFold(scheme, "basic") {
		return
	}
	if raw, err := base64.StdEncoding.DecodeString(token); err == nil {
		c.add(string(raw))
		if _, pass, ok := strings.Cut(string(raw), ":"); ok {
			c.add(pass)
		}
	}
}

// add records v, and its JSON-escaped forms where they differ, since raw
// JSON (tool definitions, arguments) holds the value escaped.
func (c *Credentials) add(v string) {
	v = strings.TrimSpace(v)
	if len(v) < minSecretBytes {
		return
	}
	if !needsJSONEscape(v) {
		// Both escaped forms are v itself: skip encoding it twice.
		c.addForm(v)
		return
	}
	forms := []string{v}
	if b, err := json.Marshal(v); err == nil {
		forms = append(forms, string(b[1:len(b)-1]))
	}
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) == nil {
		s := strings.TrimSpace(buf.String())
		forms = append(forms, s[1:len(s)-1])
	}
	for _, f := range forms {
		c.addForm(f)
	}
}

// addForm records one form of a secret, once.
func (c *Credentials) addForm(f string) {
	s := secret{value: f, whole: len(f) < anywhereSecretBytes}
	if c.secrets == nil {
		// A token header gives two forms (the value and its token), a
		// Basic or SigV4 one a few more: room for those in one allocation.
		c.secrets = make([]secret, 0, 4)
	}
	if !slices.Contains(c.secrets, s) {
		c.secrets = append(c.secrets, s)
	}
}

// needsJSONEscape reports whether encoding/json would write v other than
// as is inside its quotes, with or without HTML escaping: any byte outside
// printable ASCII (control bytes, and every byte of a multi-byte rune,
// which covers U+2028, U+2029 and invalid UTF-8), a quote, a backslash, or
// one of the HTML-escaped <, > and &.
func needsJSONEscape(v string) bool {
	for i := 0; i < len(v); i++ {
		switch b := v[i]; {
		case b < 0x20 || b > 0x7e, b == '"', b == '\\', b == '<', b == '>', b == '&':
			return true
		}
	}
	return false
}

// Empty reports whether the request carried no credential worth scrubbing.
func (c *Credentials) Empty() bool { return len(c.secrets) == 0 }

// Scrub returns s with every credential value replaced by replacement.
func (c *Credentials) Scrub(s, replacement string) string {
	for _, sec := range c.secrets {
		if len(s) < len(sec.value) || !strings.Contains(s, sec.value) {
			continue
		}
		if !sec.whole {
			s = strings.ReplaceAll(s, sec.value, replacement)
			continue
		}
		s = replaceTokens(s, sec.value, replacement)
	}
	return s
}

// replaceTokens replaces the occurrences of v that stand as a whole token.
func replaceTokens(s, v, replacement string) string {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, v)
		if i < 0 {
			break
		}
		before := len(s) - len(rest) + i
		after := before + len(v)
		b.WriteString(rest[:i])
		if (before == 0 || !tokenByte(s[before-1])) && (after == len(s) || !tokenByte(s[after])) {
			b.WriteString(replacement)
		} else {
			b.WriteString(v)
		}
		rest = rest[i+len(v):]
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(rest)
	return b.String()
}

func tokenByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_'
}

// ScrubCredentials replaces the request's own credential values in every
// string of the call — error message, models, ids, tool calls, content,
// headers kept — with replacement, and reports whether it changed any.
// It walks the Call's fields by reflection so that a string field added
// later is scrubbed without anyone remembering to; the walk is planned once
// per type, and visits only the fields that can hold text.
func (c *Call) ScrubCredentials(replacement string) bool {
	if c == nil || c.Credentials.Empty() {
		return false
	}
	creds := c.Credentials
	return callPlan()(reflect.ValueOf(c).Elem(), &creds, replacement)
}

// scrubPlan scrubs the strings inside one value of a known type.
type scrubPlan func(v reflect.Value, creds *Credentials, repl string) bool

var callPlan = sync.OnceValue(func() scrubPlan { return planFor(reflect.TypeFor[Call]()) })

// planFor returns how to scrub a value of type t, or nil when t holds no
// text (numbers, times, the Credentials themselves).
func planFor(t reflect.Type) scrubPlan {
	switch t.Kind() {
	case reflect.String:
		return func(v reflect.Value, creds *Credentials, repl string) bool {
			s := v.String()
			if out := creds.Scrub(s, repl); out != s {
				v.SetString(out)
				return true
			}
			return false
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return func(v reflect.Value, creds *Credentials, repl string) bool {
				b := v.Bytes()
				if out := creds.Scrub(string(b), repl); out != string(b) {
					v.SetBytes([]byte(out))
					return true
				}
				return false
			}
		}
		elem := planFor(t.Elem())
		if elem == nil {
			return nil
		}
		return func(v reflect.Value, creds *Credentials, repl string) bool {
			changed := false
			for i := range v.Len() {
				changed = elem(v.Index(i), creds, repl) || changed
			}
			return changed
		}
	case reflect.Map:
		if t.Elem().Kind() != reflect.String {
			return nil
		}
		return func(v reflect.Value, creds *Credentials, repl string) bool {
			changed := false
			iter := v.MapRange()
			for iter.Next() {
				s := iter.Value().String()
				if out := creds.Scrub(s, repl); out != s {
					v.SetMapIndex(iter.Key(), reflect.ValueOf(out).Convert(t.Elem()))
					changed = true
				}
			}
			return changed
		}
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.Struct {
			return nil
		}
		elem := planFor(t.Elem())
		if elem == nil {
			return nil
		}
		return func(v reflect.Value, creds *Credentials, repl string) bool {
			return !v.IsNil() && elem(v.Elem(), creds, repl)
		}
	case reflect.Struct:
		if t == credentialsType {
			return nil
		}
		type fieldPlan struct {
			index int
			plan  scrubPlan
		}
		var fields []fieldPlan
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				if p := planFor(f.Type); p != nil {
					fields = append(fields, fieldPlan{i, p})
				}
			}
		}
		if len(fields) == 0 {
			return nil
		}
		return func(v reflect.Value, creds *Credentials, repl string) bool {
			changed := false
			for _, f := range fields {
				changed = f.plan(v.Field(f.index), creds, repl) || changed
			}
			return changed
		}
	}
	return nil
}

var credentialsType = reflect.TypeFor[Credentials]()

// hasPrefixUpper reports whether strings.HasPrefix(strings.ToUpper(s), p)
// for an upper-case ASCII p, without building the upper-cased string
// unless s is not ASCII (a few other runes upper-case to ASCII letters).
func hasPrefixUpper(s, p string) bool {
	if !isASCII(s) {
		return strings.HasPrefix(strings.ToUpper(s), p)
	}
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		b := s[i]
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		if b != p[i] {
			return false
		}
	}
	return true
}
