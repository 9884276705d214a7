package export

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	pb "google.golang.org/protobuf/proto"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// SigV4 values of a Bedrock request, which a server may quote back (AWS's
// signature-mismatch errors describe the request they checked).
const (
	sigv4Signature = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	sigv4KeyID     = "ASIAEXPORTTESTKEY123"
	sigv4Token     = "IQoJb3JpZ2luX2VjEXPORTTESTSESSIONTOKEN//////////wEaCXVz"
)

// TestSigV4NeverExported sends a Bedrock call whose error message and
// request id echo the request's SigV4 signature, access key id and
// session token through the span, any log record and the console line:
// none of them leaves.
func TestSigV4NeverExported(t *testing.T) {
	c := errorCall()
	c.Provider, c.API, c.RequestModel = genai.ProviderBedrock, "aws.bedrock.converse", "amazon.nova-lite-v1:0"
	c.Status, c.ErrorType = 403, "UnrecognizedClientException"
	c.ErrorMessage = "The request signature " + sigv4Signature + " for " + sigv4KeyID + " does not match; session " + sigv4Token
	c.RequestID = "req-" + sigv4KeyID
	c.Credentials = genai.RequestCredentials(http.Header{
		"Authorization":        {"AWS4-HMAC-SHA256 Credential=" + sigv4KeyID + "/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=" + sigv4Signature},
		"X-Amz-Security-Token": {sigv4Token},
	}, "")
	var console syncBuffer
	e, rcv := newTestExporter(t, protocols[0], func(cfg *Config) {
		cfg.CaptureContent = CaptureAll
		cfg.ContentDestination = DestinationBoth
		cfg.Console = true
		cfg.ConsoleWriter = &console
	})
	end(e, curl, c)
	shutdown(t, e)

	spans := rcv.WaitSpans(t, 1, waitLong)
	if msg := spans[0].StatusMsg; !strings.Contains(msg, "[REDACTED]") {
		t.Errorf("status message %q was not scrubbed", msg)
	}
	var all bytes.Buffer
	for _, s := range spans {
		b, _ := pb.Marshal(s.Proto)
		all.Write(b)
	}
	for _, l := range rcv.Logs() {
		b, _ := pb.Marshal(l.Proto)
		all.Write(b)
	}
	all.WriteString(console.String())
	for _, v := range []string{sigv4Signature, sigv4KeyID, sigv4Token} {
		if bytes.Contains(all.Bytes(), []byte(v)) {
			t.Errorf("%s left the host", v)
		}
	}
}
