package genai

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// esEncode writes one AWS event-stream message with string headers, as a
// Bedrock server does.
func esEncode(headers [][2]string, payload []byte) []byte {
	var h []byte
	for _, kv := range headers {
		h = append(h, byte(len(kv[0])))
		h = append(h, kv[0]...)
		h = append(h, 7) // string
		h = binary.BigEndian.AppendUint16(h, uint16(len(kv[1])))
		h = append(h, kv[1]...)
	}
	m := binary.BigEndian.AppendUint32(nil, uint32(16+len(h)+len(payload)))
	m = binary.BigEndian.AppendUint32(m, uint32(len(h)))
	m = binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
	m = append(m, h...)
	m = append(m, payload...)
	return binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
}

// esFixtureMessage encodes a fixture's event section: fields are the words
// after its time, an event type or "exception" and the exception's type.
func esFixtureMessage(t testing.TB, fields []string, payload string) []byte {
	t.Helper()
	switch {
	case len(fields) == 1:
		return esEncode([][2]string{{":event-type", fields[0]}, {":content-type", "application/json"}, {":message-type", "event"}}, []byte(payload))
	case len(fields) == 2 && fields[0] == "exception":
		return esEncode([][2]string{{":exception-type", fields[1]}, {":content-type", "application/json"}, {":message-type", "exception"}}, []byte(payload))
	}
	t.Fatalf("event-stream section needs a type: %v", fields)
	return nil
}

// feedMessages cuts event-stream bytes into messages as they complete,
// each stamped with the time of its last byte. It reads string headers and
// trusts the CRCs, and drops the rest of a stream it cannot frame;
// decode's own parser is tested against the format in full.
func (s *streamSplitter) feedMessages(b []byte, off int, timeOf func(int) time.Time, emit func(decode.StreamEvent)) {
	start := off - len(s.line) // offset of s.line[0] in the stream
	s.line = append(s.line, b...)
	for len(s.line) >= 12 {
		total := int(binary.BigEndian.Uint32(s.line))
		hlen := int(binary.BigEndian.Uint32(s.line[4:]))
		if total < 16 || hlen < 0 || hlen > total-16 {
			s.line = s.line[:0]
			return
		}
		if len(s.line) < total {
			return
		}
		ev := decode.StreamEvent{Time: timeOf(start + total - 1), Data: append([]byte(nil), s.line[12+hlen:total-4]...)}
		names := map[string]string{}
		for h := s.line[12 : 12+hlen]; len(h) > 0; {
			n := int(h[0])
			if len(h) < 4+n || h[1+n] != 7 {
				break
			}
			vl := int(binary.BigEndian.Uint16(h[2+n:]))
			if len(h) < 4+n+vl {
				break
			}
			names[string(h[1:1+n])] = string(h[4+n : 4+n+vl])
			h = h[4+n+vl:]
		}
		ev.MessageType = names[":message-type"]
		ev.Name = names[":event-type"]
		if ev.MessageType == "exception" {
			ev.Name = names[":exception-type"]
		}
		emit(ev)
		s.line = s.line[total:]
		start += total
	}
}

func TestBedrockPaths(t *testing.T) {
	tests := []struct {
		path, api, model string
	}{
		{"/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", "aws.bedrock.converse", "anthropic.claude-3-5-haiku-20241022-v1:0"},
		{"/model/amazon.nova-lite-v1:0/converse-stream", "aws.bedrock.converse_stream", "amazon.nova-lite-v1:0"},
		{"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/invoke", "aws.bedrock.invoke_model", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"},
		{"/model/arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-8b-instruct-v1:0/invoke-with-response-stream", "aws.bedrock.invoke_model_with_response_stream", "meta.llama3-8b-instruct-v1:0"},
		{"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aprovisioned-model%2Fabc123xyz/converse", "aws.bedrock.converse", "provisioned-model/abc123xyz"},
		{"/proxy/bedrock/model/mistral.mistral-large-2402-v1%3A0/converse", "aws.bedrock.converse", "mistral.mistral-large-2402-v1:0"},
		{"/model/anthropic.claude-v2/count-tokens", "", ""},
		{"/model//converse", "", ""},
		{"/models/gpt-4o/converse", "", ""},
	}
	for _, tc := range tests {
		spec := recognise(http.MethodPost, tc.path, http.Header{}, []byte(`{"messages":[]}`))
		got := ""
		if spec != nil {
			got = spec.name
		}
		if got != tc.api {
			t.Errorf("%s: API %q, want %q", tc.path, got, tc.api)
			continue
		}
		if spec != nil && bedrockModel(tc.path) != tc.model {
			t.Errorf("%s: model %q, want %q", tc.path, bedrockModel(tc.path), tc.model)
		}
	}
}

// bedrockSink collects the calls of a decode.Conn fed real bytes.
type bedrockSink struct{ calls []*Call }

func (s *bedrockSink) CallStarted(*Call) {}
func (s *bedrockSink) CallEnded(c *Call) { s.calls = append(s.calls, c) }
func (s *bedrockSink) only(t *testing.T) *Call {
	t.Helper()
	if len(s.calls) != 1 {
		t.Fatalf("%d calls, want 1", len(s.calls))
	}
	return s.calls[0]
}

// TestBedrockStreamThroughDecoder runs ConverseStream bytes through the real
// decoder into the assembler, at every split of the body: a message whose
// CRC fails is dropped and counted, the call is marked truncated and keeps
// the outcome the wire showed, never an error of its own; a corrupt
// prelude loses the rest, usage included.
func TestBedrockStreamThroughDecoder(t *testing.T) {
	ev := func(typ, payload string) []byte {
		return esEncode([][2]string{{":event-type", typ}, {":content-type", "application/json"}, {":message-type", "event"}}, []byte(payload))
	}
	start := ev("messageStart", `{"p":"abc","role":"assistant"}`)
	d1 := ev("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"ab"}`)
	d2 := ev("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"lo"},"p":"ab"}`)
	stop := ev("messageStop", `{"stopReason":"end_turn"}`)
	meta := ev("metadata", `{"metrics":{"latencyMs":90},"usage":{"inputTokens":5,"outputTokens":2,"totalTokens":7}}`)
	badCRC := append([]byte(nil), d2...)
	badCRC[len(badCRC)-8] ^= 1
	badPrelude := append([]byte(nil), d2...)
	badPrelude[3] ^= 1

	tests := []struct {
		name      string
		msgs      [][]byte
		truncated bool
		chunks    int
		in, out   int64 // -1: absent
		finish    string
		lost      decode.EventStreamStats
	}{
		{"clean", [][]byte{start, d1, d2, stop, meta}, false, 2, 5, 2, "end_turn", decode.EventStreamStats{}},
		{"bad message CRC", [][]byte{start, d1, badCRC, stop, meta}, true, 1, 5, 2, "end_turn", decode.EventStreamStats{CRCErrors: 1}},
		{"bad prelude", [][]byte{start, d1, badPrelude, stop, meta}, true, 1, -1, -1, "", decode.EventStreamStats{PreludeErrors: 1}},
	}
	for _, tc := range tests {
		const reqBody = `{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}`
		var body []byte
		for _, m := range tc.msgs {
			body = append(body, m...)
		}
		req := "POST /model/amazon.nova-micro-v1%3A0/converse-stream HTTP/1.1\r\nHost: bedrock-runtime.eu-west-1.amazonaws.com\r\n" +
			"Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/eu-west-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024\r\n" +
			"Content-Length: " + strconv.Itoa(len(reqBody)) + "\r\n\r\n" + reqBody
		head := "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		for cut := 0; cut <= len(body); cut += 7 {
			sink := &bedrockSink{}
			a := NewAssembler(nil, testEndpoint, sink)
			c := decode.NewConn(decode.Limits{}, a)
			t0 := fixtureBase
			c.Feed(decode.Egress, t0, []byte(req))
			c.Feed(decode.Ingress, t0.Add(time.Millisecond), []byte(head))
			c.Feed(decode.Ingress, t0.Add(2*time.Millisecond), body[:cut])
			c.Feed(decode.Ingress, t0.Add(3*time.Millisecond), body[cut:])
			c.Close(t0.Add(4 * time.Millisecond))
			call := sink.only(t)
			if call.Truncated != tc.truncated || call.ErrorType != "" || call.Provider != ProviderBedrock || call.RequestModel != "amazon.nova-micro-v1:0" {
				t.Fatalf("%s, cut %d: truncated %v error %q provider %q model %q", tc.name, cut, call.Truncated, call.ErrorType, call.Provider, call.RequestModel)
			}
			if len(call.ContentChunks) != tc.chunks || !sameCount(call.Usage.InputTokens, tc.in) || !sameCount(call.Usage.OutputTokens, tc.out) {
				t.Fatalf("%s, cut %d: %d chunks, usage %v/%v", tc.name, cut, len(call.ContentChunks), call.Usage.InputTokens, call.Usage.OutputTokens)
			}
			if got := strings.Join(call.FinishReasons, ","); got != tc.finish {
				t.Fatalf("%s, cut %d: finish %q, want %q", tc.name, cut, got, tc.finish)
			}
			if st := c.Stats(); st.EventStream != tc.lost {
				t.Fatalf("%s, cut %d: counted %+v, want %+v", tc.name, cut, st.EventStream, tc.lost)
			}
		}
	}
}

func sameCount(p *int64, want int64) bool {
	if want < 0 {
		return p == nil
	}
	return p != nil && *p == want
}

var fuzzBedrock = fuzzTarget{"/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", "bedrock-runtime.us-east-1.amazonaws.com",
	`{"messages":[{"role":"user","content":[{"text":"x"}]}],"inferenceConfig":{"maxTokens":9}}`, decode.EventStream}

var fuzzBedrockInvoke = fuzzTarget{"/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream", "bedrock-runtime.us-east-1.amazonaws.com",
	`{"anthropic_version":"bedrock-2023-05-31","max_tokens":9,"messages":[{"role":"user","content":"x"}]}`, decode.EventStream}

// FuzzBedrockStream pushes event-stream bytes through ConverseStream and
// InvokeModelWithResponseStream calls, as a stream and as a whole body.
func FuzzBedrockStream(f *testing.F) {
	addSeeds(f, "bedrock")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ft := range []fuzzTarget{fuzzBedrock, fuzzBedrockInvoke} {
			fuzzStream(t, ft, data, nil, false, false)
			fuzzStream(t, ft, data, nil, false, true)
			fuzzStream(t, ft, data, nil, true, false)
		}
	})
}

// BenchmarkBedrockStreamEvent is one contentBlockDelta message of a
// ConverseStream, the message a long answer repeats hundreds of times.
func BenchmarkBedrockStreamEvent(b *testing.B) {
	a, x := streamingCall(b, Options{}, "/model/amazon.nova-lite-v1%3A0/converse-stream", "bedrock-runtime.us-east-1.amazonaws.com", `{"messages":[]}`, decode.EventStream)
	data := []byte(`{"contentBlockIndex":0,"delta":{"text":" the"},"p":"abcdefghijkl"}`)
	ev := decode.StreamEvent{Time: time.Unix(1, 0), Name: "contentBlockDelta", MessageType: "event", Data: data}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		a.Event(x, ev)
	}
}

// BenchmarkBedrockInvokeChunk is one chunk of an Anthropic model's
// InvokeModelWithResponseStream: base64 decoded, then read as Anthropic's
// own stream event.
func BenchmarkBedrockInvokeChunk(b *testing.B) {
	a, x := streamingCall(b, Options{}, "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream", "bedrock-runtime.us-east-1.amazonaws.com",
		`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[]}`, decode.EventStream)
	inner := `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the"}}`
	data := []byte(`{"bytes":"` + base64.StdEncoding.EncodeToString([]byte(inner)) + `","p":"abcd"}`)
	ev := decode.StreamEvent{Time: time.Unix(1, 0), Name: "chunk", MessageType: "event", Data: data}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		a.Event(x, ev)
	}
}

// An error message (:message-type error, :error-code) ends the call with
// its code as the error type, as an exception does with its shape name.
func TestBedrockErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		ev       decode.StreamEvent
		typ, msg string
	}{
		{decode.StreamEvent{MessageType: "error", Name: "InternalFailure"}, "InternalFailure", ""},
		{decode.StreamEvent{MessageType: "exception", Name: "modelStreamErrorException", Data: []byte(`{"message":"Model stream failed","originalStatusCode":500}`)}, "ModelStreamErrorException", "Model stream failed"},
		{decode.StreamEvent{MessageType: "exception", Name: "validationException", Data: []byte(`not json`)}, "ValidationException", ""},
	} {
		rec := &recorder{t: t}
		a := NewAssembler(nil, Endpoint{ServerPort: 443}, rec)
		x := exchange("POST", "/model/amazon.nova-lite-v1%3A0/converse-stream", map[string]string{"Host": "bedrock-runtime.us-east-1.amazonaws.com"}, `{"messages":[]}`, 0, nil, "")
		a.Request(x)
		x.HasResponse = true
		x.Response = decode.Response{Status: 200, Stream: decode.EventStream, Header: http.Header{"Content-Type": {"application/vnd.amazon.eventstream"}}}
		a.Event(x, decode.StreamEvent{MessageType: "event", Name: "messageStart", Data: []byte(`{"role":"assistant"}`)})
		tc.ev.Time = time.Unix(2, 0)
		a.Event(x, tc.ev)
		x.Response.End = time.Unix(3, 0)
		a.Done(x)
		c := rec.ended[0]
		if c.ErrorType != tc.typ || c.ErrorMessage != tc.msg || c.Truncated {
			t.Errorf("%s %s: error %q %q, truncated %v", tc.ev.MessageType, tc.ev.Name, c.ErrorType, c.ErrorMessage, c.Truncated)
		}
	}
}
