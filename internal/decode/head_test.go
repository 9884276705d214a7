package decode

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// TestCanonicalKey checks the shared-string canonicalisation against
// textproto's, for names canonical already, in lower case, in mixed case,
// known and unknown, and longer than its buffer.
func TestCanonicalKey(t *testing.T) {
	names := []string{
		"Content-Type", "content-type", "CONTENT-TYPE", "x-ratelimit-limit-requests",
		"X-RateLimit-Limit-Requests", "anthropic-ratelimit-tokens-reset", "x-stainless-os",
		"cf-ray", "x-unknown-vendor-header", "a", "-", "x--y", "x_y-z", "Www-Authenticate",
		strings.Repeat("x-long", 12), strings.Repeat("X-Long", 12),
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if got, want := canonicalKey(name), textproto.CanonicalMIMEHeaderKey(name); got != want {
				t.Errorf("canonicalKey(%q) = %q, want %q", name, got, want)
			}
		})
	}
	for k := range lowerCaseKeys {
		if c := textproto.CanonicalMIMEHeaderKey(k); c != k {
			t.Errorf("lowerCaseKeys holds %q, whose canonical form is %q", k, c)
		}
	}
}

// TestCanonicalKeyShared checks that a known name in lower case costs no
// allocation.
func TestCanonicalKeyShared(t *testing.T) {
	name := string([]byte("x-ratelimit-remaining-tokens"))
	if n := testing.AllocsPerRun(100, func() { _ = canonicalKey(name) }); n != 0 {
		t.Errorf("%v allocations per known lower-case name, want 0", n)
	}
}

// TestParseFieldsAllocs checks that a head of eight fields, ended by its
// blank line or not (a trailer cut short, a head salvaged), is parsed in
// three allocations: a map small enough for one group, its header and the
// values' array.
func TestParseFieldsAllocs(t *testing.T) {
	var fields strings.Builder
	for i := range 8 {
		fmt.Fprintf(&fields, "X-Field-%d: v\r\n", i)
	}
	for _, tc := range []struct{ name, b string }{
		{"crlf", fields.String() + "\r\n"},
		{"lf", strings.ReplaceAll(fields.String(), "\r\n", "\n") + "\n"},
		{"unended", fields.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.b)
			var h http.Header
			n := testing.AllocsPerRun(100, func() { h, _ = parseFields(b, tc.b) })
			if len(h) != 8 {
				t.Fatalf("%d fields parsed, want 8", len(h))
			}
			if n > 3 {
				t.Errorf("%v allocations, want at most 3", n)
			}
		})
	}
}

// TestTrimOWS checks the whitespace trims against strings.Trim and
// strings.TrimRight with the cutset " \t".
func TestTrimOWS(t *testing.T) {
	for _, s := range []string{"", " ", "\t", " \t ", "a", " a", "a ", "\ta b\t", "  x\t\ty  ", "\r a \r", "\u00a0a\u00a0"} {
		if got, want := trimOWS(s), strings.Trim(s, " \t"); got != want {
			t.Errorf("trimOWS(%q) = %q, want %q", s, got, want)
		}
		if got, want := string(trimOWS([]byte(s))), strings.Trim(s, " \t"); got != want {
			t.Errorf("trimOWS([]byte(%q)) = %q, want %q", s, got, want)
		}
		if got, want := trimRightOWS(s), strings.TrimRight(s, " \t"); got != want {
			t.Errorf("trimRightOWS(%q) = %q, want %q", s, got, want)
		}
	}
}
