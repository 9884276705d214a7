package genai

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFoldHelpers checks the allocation-free case folds against the
// strings.ToLower and strings.ToUpper forms they replace.
func TestFoldHelpers(t *testing.T) {
	names := []string{"", "x", "Server", "SERVER", "server", "servers", "Retry-After", "retry-after-ms",
		"X-Ratelimit-Limit-Tokens", "x-ratelimit-", "x-ratelimit", "anthropic-ratelimit-requests-limit",
		"X-Litellm-Version", "x-litellm", "X-Ratelimit-Reset-Tokens", "Anthropic-Ratelimit-Tokens-Reset", "Retry-After-Ms", "\u212aey", "x-ratelimit-\u212a", "\u0130d", "Aws4-hmac-sha256",
		"aws4", "AWS4-HMAC-SHA256", "\u017fome", "aw\u017f4-x", "é", "Séver"}
	lowers := []string{"server", "retry-after", "retry-after-ms", "x-ratelimit-", "x-litellm-", "key", "id", "é"}
	uppers := []string{"AWS4-", "AWS", "S"}
	for _, s := range names {
		// readResponseHeaders lowers a name that is not ASCII before
		// folding; for ASCII names the folds stand for strings.ToLower.
		name := s
		if !isASCII(s) {
			name = strings.ToLower(s)
		}
		for _, p := range lowers {
			if got, want := hasPrefixFoldASCII(name, p), strings.HasPrefix(strings.ToLower(s), p); got != want {
				t.Errorf("hasPrefixFoldASCII(%q, %q) = %v, want %v", name, p, got, want)
			}
			if got, want := equalFoldASCII(name, p), strings.ToLower(s) == p; got != want {
				t.Errorf("equalFoldASCII(%q, %q) = %v, want %v", name, p, got, want)
			}
		}
		if got, want := rateLimitName(name), strings.ToLower(s); got != want {
			t.Errorf("rateLimitName(%q) = %q, want %q", name, got, want)
		}
		for _, p := range uppers {
			if got, want := hasPrefixUpper(s, p), strings.HasPrefix(strings.ToUpper(s), p); got != want {
				t.Errorf("hasPrefixUpper(%q, %q) = %v, want %v", s, p, got, want)
			}
		}
	}
}

// TestNeedsJSONEscape checks that a value said to need no escaping is
// written as is by encoding/json, with and without HTML escaping.
func TestNeedsJSONEscape(t *testing.T) {
	for _, v := range []string{"sk-proj-0123456789", "a b~c", `a"b`, `a\b`, "a<b", "a>b", "a&b", "a\tb", "a\x7fb",
		"a\u2028b", "é", "a\xffb", "Bearer tok/+=="} {
		b, _ := json.Marshal(v)
		var sb strings.Builder
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		same := string(b) == `"`+v+`"` && sb.String() == `"`+v+`"`+"\n"
		if !needsJSONEscape(v) && !same {
			t.Errorf("needsJSONEscape(%q) = false, but encoding/json writes %s and %s", v, b, sb.String())
		}
	}
}

// TestKnownValues checks that maxKnownValue bounds the table, that a known
// value read from JSON costs no allocation, and that any other is copied.
func TestKnownValues(t *testing.T) {
	for v := range knownValues {
		if len(v) > maxKnownValue {
			t.Errorf("known value %q is longer than maxKnownValue %d", v, maxKnownValue)
		}
	}
	for _, tc := range []struct {
		json, want string
		allocs     float64
	}{
		{`"stop"`, "stop", 0},
		{`"content_filter"`, "content_filter", 0},
		{`"assistant"`, "assistant", 0},
		{`"gpt-4o-mini"`, "gpt-4o-mini", 1},
		{`"sto\u0070"`, "stop", 1},
	} {
		s := span(tc.json)
		var got string
		n := testing.AllocsPerRun(100, func() { got = s.str() })
		if got != tc.want || n != tc.allocs {
			t.Errorf("span(%s).str() = %q in %v allocations, want %q in %v", tc.json, got, n, tc.want, tc.allocs)
		}
		if got := unquote([]byte(tc.json)); got != tc.want {
			t.Errorf("unquote(%s) = %q, want %q", tc.json, got, tc.want)
		}
	}
}
