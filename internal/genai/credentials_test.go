package genai

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

func TestCredentialsScrub(t *testing.T) {
	const r = "[REDACTED]"
	for _, tc := range []struct {
		name   string
		header http.Header
		query  string
		in     string
		want   string
	}{
		{
			name:   "api-key header echoed in a 401",
			header: http.Header{"Api-Key": {"azure-0123456789abcdef"}},
			in:     "Incorrect API key provided: azure-0123456789abcdef.",
			want:   "Incorrect API key provided: " + r + ".",
		},
		{
			name:   "bearer token, whole value and token alone",
			header: http.Header{"Authorization": {"Bearer tok_live_9f8e7d6c5b4a"}},
			in:     "got 'Bearer tok_live_9f8e7d6c5b4a' then tok_live_9f8e7d6c5b4a",
			want:   "got '" + r + "' then " + r,
		},
		{
			name:   "basic credentials decoded",
			header: http.Header{"Authorization": {"Basic YWxpY2U6aHVudGVyMjIyMg=="}}, // alice:hunter2222
			in:     "user alice:hunter2222 password hunter2222",
			want:   "user " + r + " password " + r,
		},
		{
			name:   "each cookie value",
			header: http.Header{"Cookie": {"session=s3cr3t-session-value-42; theme=dark; csrf=\"abcdef123456\""}},
			in:     "session s3cr3t-session-value-42 csrf abcdef123456 theme dark",
			want:   "session " + r + " csrf " + r + " theme dark",
		},
		{
			name:   "short value only as a whole token",
			header: http.Header{"X-Api-Key": {"k9x2p7"}},
			in:     "key k9x2p7 but not xk9x2p7y nor k9x2p7_z",
			want:   "key " + r + " but not xk9x2p7y nor k9x2p7_z",
		},
		{
			name:   "too short to scrub",
			header: http.Header{"Cookie": {"lang=en; n=1"}},
			in:     "en 1 lang",
			want:   "en 1 lang",
		},
		{
			name:  "query key, raw and unescaped",
			query: "alt=sse&key=AIzaTEST%2Bvalue0123456789",
			in:    "key AIzaTEST+value0123456789 and AIzaTEST%2Bvalue0123456789",
			want:  "key " + r + " and " + r,
		},
		{
			name:   "goog key header, JSON-escaped form",
			header: http.Header{"X-Goog-Api-Key": {`ab"cd<ef>0123456789`}},
			in:     `{"msg":"ab\"cd\u003cef\u003e0123456789","raw":"ab\"cd<ef>0123456789"}`,
			want:   `{"msg":"` + r + `","raw":"` + r + `"}`,
		},
		{
			name: "SigV4 signature, credential, access key id and session token",
			header: http.Header{
				"Authorization":        {"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEYID1234/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"},
				"X-Amz-Security-Token": {"IQoJb3JpZ2luX2VjSESSIONTOKENEXAMPLE//wEaCXVz"},
				"X-Amz-Date":           {"20250101T000000Z"},
			},
			in:   "The request signature 0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9 of ASIAEXAMPLEKEYID1234 (token IQoJb3JpZ2luX2VjSESSIONTOKENEXAMPLE//wEaCXVz) does not match at 20250101T000000Z",
			want: "The request signature " + r + " of " + r + " (token " + r + ") does not match at 20250101T000000Z",
		},
		{
			name:  "SigV4 presigned URL",
			query: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEYID5678%2F20250101%2Fus-east-1%2Fbedrock%2Faws4_request&X-Amz-Signature=feedfacecafebeef0011223344556677&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE",
			in:    "sig feedfacecafebeef0011223344556677 token FwoGZXIvYXdzEXAMPLE cred AKIAEXAMPLEKEYID5678/20250101/us-east-1/bedrock/aws4_request algo AWS4-HMAC-SHA256",
			want:  "sig " + r + " token " + r + " cred " + r + " algo AWS4-HMAC-SHA256",
		},
		{
			name:   "proxy authorization",
			header: http.Header{"Proxy-Authorization": {"Bearer proxy-token-abcdef"}},
			in:     "denied proxy-token-abcdef",
			want:   "denied " + r,
		},
		{
			name:   "no credential, nothing changes",
			header: http.Header{"Content-Type": {"application/json"}},
			in:     "application/json",
			want:   "application/json",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := RequestCredentials(tc.header, tc.query)
			if got := c.Scrub(tc.in, r); got != tc.want {
				t.Errorf("Scrub(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestScrubCredentialsEveryString sets every string the Call can hold to
// text quoting the secret and checks that none survives, so a string field
// added to Call later is covered or this test fails.
func TestScrubCredentialsEveryString(t *testing.T) {
	const key = "test-api-key-0123456789abcdef"
	c := &Call{Credentials: RequestCredentials(http.Header{"Api-Key": {key}}, "")}
	fillStrings(t, reflect.ValueOf(c).Elem(), "echo "+key+" end")
	if !c.ScrubCredentials("[REDACTED]") {
		t.Fatal("ScrubCredentials changed nothing")
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), key) {
		t.Errorf("the key survived scrubbing: %s", b)
	}
	if c.Credentials.Empty() {
		t.Error("scrubbing emptied the credentials themselves")
	}
}

// fillStrings puts s into every exported string, byte slice, string slice
// and string map reachable from v, with one element in each slice.
func fillStrings(t *testing.T, v reflect.Value, s string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b, _ := json.Marshal(s)
			v.SetBytes(b)
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillStrings(t, v.Index(0), s)
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.String {
			t.Fatalf("map %s: teach fillStrings and ScrubCredentials about it", v.Type())
		}
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf(s))
	case reflect.Struct:
		if v.Type() == credentialsType || v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillStrings(t, v.Field(i), s)
			}
		}
	}
}

// TestAssemblerCarriesCredentials feeds a 401 that echoes the request's
// api-key through the assembler and checks the call can scrub it.
func TestAssemblerCarriesCredentials(t *testing.T) {
	const key = "sess-0123456789-abcdefgh"
	var got *Call
	a := NewAssembler(nil, Endpoint{}, handlerFunc(func(c *Call) { got = c }))
	now := time.Now()
	x := &decode.Exchange{
		Seq:        1,
		ClientSide: true,
		Request: decode.Request{
			Method: "POST", Target: "/v1/chat/completions", Proto: "HTTP/1.1",
			Header: http.Header{"Api-Key": {key}, "Cookie": {"session=cookie-value-0123456789"}, "Content-Type": {"application/json"}},
			Body:   []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`),
			Start:  now, End: now,
		},
	}
	a.Request(x)
	x.HasResponse = true
	x.Response = decode.Response{
		Proto: "HTTP/1.1", Status: 401, Header: http.Header{"Content-Type": {"application/json"}},
		Body:  []byte(`{"error":{"message":"Incorrect API key provided: ` + key + ` (cookie-value-0123456789)","type":"invalid_request_error","code":"invalid_api_key"}}`),
		Start: now, HeaderEnd: now, End: now,
	}
	a.Done(x)
	if got == nil {
		t.Fatal("no call ended")
	}
	if !strings.Contains(got.ErrorMessage, key) {
		t.Fatalf("error message %q does not quote the key; the test proves nothing", got.ErrorMessage)
	}
	got.ScrubCredentials("[REDACTED]")
	if want := "Incorrect API key provided: [REDACTED] ([REDACTED])"; got.ErrorMessage != want {
		t.Errorf("scrubbed message %q, want %q", got.ErrorMessage, want)
	}
}

type handlerFunc func(*Call)

func (handlerFunc) CallStarted(*Call)   {}
func (f handlerFunc) CallEnded(c *Call) { f(c) }

// FuzzCredentials feeds any header value and text through the credential
// parsers and Scrub: nothing panics, and a value long enough to be scrubbed
// anywhere never survives in the text, whatever surrounds it.
func FuzzCredentials(f *testing.F) {
	f.Add("Bearer sk-test-0123456789abcdef", "Incorrect API key provided: ")
	f.Add("Basic YWxpY2U6aHVudGVyMjIyMg==", "user alice:hunter2222")
	f.Add("session=s3cr3t-session-value-42; theme=dark", "echo ")
	f.Add(`ab"cd<ef>0123456789`, `{"k":"`)
	f.Add("k9x2p7", "xk9x2p7y")
	f.Fuzz(func(t *testing.T, value, text string) {
		c := RequestCredentials(http.Header{
			"Authorization": {value}, "Api-Key": {value}, "Cookie": {value},
		}, "key="+value)
		v := strings.TrimSpace(value)
		out := c.Scrub(text+v+text, "[REDACTED]")
		if len(v) >= anywhereSecretBytes && !strings.ContainsAny(v, "[]") && strings.Contains(out, v) {
			t.Errorf("value %q survived in %q", v, out)
		}
	})
}

// BenchmarkScrubCredentials is what a call to a hosted API pays at export
// for carrying credentials: the walk of every string of the call, with no
// echo to replace (the usual case) and with one.
func BenchmarkScrubCredentials(b *testing.B) {
	creds := RequestCredentials(http.Header{
		"Authorization": {"Bearer sk-proj-0123456789abcdefghijklmnop"},
		"Cookie":        {"session=s3cr3t-session-value-42; theme=dark"},
	}, "")
	base := func() *Call {
		return &Call{
			Operation: OpChat, Provider: ProviderOpenAI, API: "openai.chat_completions",
			RequestModel: "gpt-4o-mini", ResponseModel: "gpt-4o-mini-2024-07-18", ResponseID: "chatcmpl-123",
			FinishReasons: []string{"stop"}, RequestID: "req_abc", RateLimit: map[string]string{"x-ratelimit-remaining-tokens": "9000"},
			ToolCalls:   []ToolCall{{ID: "call_1", Name: "lookup"}},
			Credentials: creds,
		}
	}
	for _, bc := range []struct {
		name string
		msg  string
	}{
		{"no echo", "rate limit exceeded, retry in 20s"},
		{"401 echo", "Incorrect API key provided: sk-proj-0123456789abcdefghijklmnop"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := base()
			b.ReportAllocs()
			for b.Loop() {
				c.ErrorMessage = bc.msg
				c.ScrubCredentials("[REDACTED]")
			}
		})
	}
}
