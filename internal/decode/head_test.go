package decode

import (
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
