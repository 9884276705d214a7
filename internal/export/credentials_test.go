package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	pb "google.golang.org/protobuf/proto"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// The request's own credential values, in shapes no built-in pattern knows.
const (
	echoedAPIKey = "azure-3f9c1e07d2b84a6e"
	echoedCookie = "c00kieValue.Q7wZ"
	echoedQuery  = "qk-77f1e2d3c4b5"
)

// echoCall is a 401 whose server quotes every credential of the request
// back: in the error message, and (as a hostile or buggy server might) in
// the model, the response id, a tool call and the output content.
func echoCall() *genai.Call {
	c := errorCall()
	c.Status = 401
	c.ErrorType = "invalid_api_key"
	c.ErrorMessage = "Incorrect API key provided: " + echoedAPIKey + " (session " + echoedCookie + ", key " + echoedQuery + ")"
	c.ResponseModel = "model-for-" + echoedCookie
	c.ResponseID = "resp-" + echoedAPIKey
	c.RateLimit = map[string]string{"retry-after": echoedQuery}
	c.ToolCalls = []genai.ToolCall{{ID: "call_1", Name: "lookup", Arguments: `{"k":"` + echoedAPIKey + `"}`}}
	c.InputMessages = []genai.Message{{Role: "user", Parts: []genai.Part{{Type: "text", Content: "my cookie is " + echoedCookie}}}}
	c.OutputMessages = []genai.Message{{Role: "assistant", Parts: []genai.Part{
		{Type: "text", Content: "Your key " + echoedAPIKey + " is wrong"},
		{Type: "tool_call", ID: "call_1", Name: "lookup", Arguments: json.RawMessage(`{"key":"` + echoedQuery + `"}`)},
	}}}
	c.Credentials = genai.RequestCredentials(http.Header{
		"Api-Key": {echoedAPIKey},
		"Cookie":  {"session=" + echoedCookie + "; theme=dark"},
	}, "key="+echoedQuery)
	return c
}

// syncBuffer is a console writer the test can read while the exporter writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNoCredentialEchoed sends the 401 echo through every signal and looks
// for the credential values in the wire bytes of each span and log record,
// in every metric attribute and in the console line.
func TestNoCredentialEchoed(t *testing.T) {
	for _, proto := range protocols {
		t.Run(string(proto), func(t *testing.T) {
			var console syncBuffer
			e, rcv := newTestExporter(t, proto, func(c *Config) {
				c.CaptureContent = CaptureAll
				c.ContentDestination = DestinationBoth
				c.Console = true
				c.ConsoleWriter = &console
			})
			end(e, curl, echoCall())
			shutdown(t, e)

			var found []string
			check := func(what string, b []byte) {
				for _, v := range []string{echoedAPIKey, echoedCookie, echoedQuery} {
					if bytes.Contains(b, []byte(v)) {
						found = append(found, fmt.Sprintf("%s holds %s", what, v))
					}
				}
			}
			spans := rcv.WaitSpans(t, 1, waitLong)
			if spans[0].StatusMsg != "Incorrect API key provided: [REDACTED] (session [REDACTED], key [REDACTED])" {
				t.Errorf("status message %q", spans[0].StatusMsg)
			}
			for _, s := range spans {
				b, err := pb.Marshal(s.Proto)
				if err != nil {
					t.Fatal(err)
				}
				check("span", b)
			}
			logs := rcv.WaitLogs(t, 1, waitLong)
			for _, l := range logs {
				b, err := pb.Marshal(l.Proto)
				if err != nil {
					t.Fatal(err)
				}
				check("log record", b)
			}
			rcv.WaitDataPoints(t, "gen_ai.client.operation.duration", 1, waitLong)
			for _, name := range rcv.MetricNames() {
				for _, p := range rcv.DataPoints(name) {
					b, _ := json.Marshal(p.Attributes)
					check("metric "+name, b)
				}
			}
			line := console.String()
			if !strings.Contains(line, "error=invalid_api_key") {
				t.Errorf("console line %q is not the call's", line)
			}
			check("console", []byte(line))
			for _, f := range found {
				t.Error(f)
			}
		})
	}
}
