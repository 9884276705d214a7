package decode

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// The event-stream fixtures (testdata/bedrock_*.http) hold binary
// messages, so they are written by the program below with esMessage and
// checked by TestEventStreamFixturesCurrent (-update rewrites them). Like
// every fixture they are fed whole, byte by byte and cut everywhere by
// TestFixtures, against goldens.

type esScript struct {
	name, comment string
	out           strings.Builder
	body          []byte // the event-stream bytes of the response, for the fuzz seeds
}

func (s *esScript) feed(dir Direction) *esScript {
	if dir == Egress {
		s.out.WriteString(">>> egress\n")
	} else {
		s.out.WriteString("<<< ingress\n")
	}
	return s
}

// text adds bytes spelled out as fixtures do, CRLF as {CRLF}.
func (s *esScript) text(t string) *esScript {
	s.out.WriteString(strings.ReplaceAll(t, "\r\n", "{CRLF}") + "\n")
	return s
}

// bin adds raw bytes under a note, as one chunk of chunked coding when
// chunked is set.
func (s *esScript) bin(note string, b []byte, chunked bool) *esScript {
	fmt.Fprintf(&s.out, "~# %s\n", note)
	s.body = append(s.body, b...)
	dir := "~base64 "
	if chunked {
		dir = "~chunk-base64 "
	}
	fmt.Fprintf(&s.out, "%s%s\n", dir, base64.StdEncoding.EncodeToString(b))
	return s
}

func (s *esScript) render() string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(s.comment), "\n") {
		b.WriteString("# " + strings.TrimSpace(line) + "\n")
	}
	b.WriteString("# Written by TestEventStreamFixturesCurrent (eventstream_fixture_test.go): run it with -update.\n")
	b.WriteString(s.out.String())
	return b.String()
}

const converseStreamPath = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"

func converseRequest(s *esScript) *esScript {
	body := `{"messages":[{"role":"user","content":[{"text":"Say hi"}]}],"inferenceConfig":{"maxTokens":64}}`
	return s.feed(Egress).text("POST " + converseStreamPath + " HTTP/1.1\r\nHost: bedrock-runtime.us-east-1.amazonaws.com\r\n" +
		"Content-Type: application/json\r\nX-Amz-Date: 20250101T000000Z\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

func esScripts() []*esScript {
	var out []*esScript
	start := esEvent("messageStart", `{"p":"abcdefghij","role":"assistant"}`)
	delta := func(text string) []byte {
		return esEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"`+text+`"},"p":"abcd"}`)
	}
	stop := esEvent("messageStop", `{"p":"abcdefgh","stopReason":"end_turn"}`)
	meta := esEvent("metadata", `{"metrics":{"latencyMs":412},"p":"ab","usage":{"inputTokens":9,"outputTokens":3,"totalTokens":12}}`)

	s := &esScript{name: "bedrock_converse_stream", comment: `Bedrock ConverseStream over HTTP/1.1: an event-stream body in chunked
		coding, each message in its own chunk and read, one message split
		across two reads, and the last two messages in one chunk.`}
	converseRequest(s)
	s.feed(Ingress).text("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\nX-Amzn-Requestid: 5b0f6c1e-0000-4000-8000-000000000001\r\n\r\n").
		bin("messageStart", start, true)
	s.feed(Ingress).bin("contentBlockDelta Hello", delta("Hello"), true)
	d2 := delta(" there")
	s.feed(Ingress).text(strconv.FormatInt(int64(len(d2)), 16)+"\r\n").bin("contentBlockDelta \" there\", its first 30 bytes", d2[:30], false)
	s.feed(Ingress).bin("the rest of that message", d2[30:], false).text("\r\n")
	s.feed(Ingress).bin("messageStop and metadata in one chunk", append(append([]byte(nil), stop...), meta...), true).text("0\r\n\r\n")
	out = append(out, s)

	s = &esScript{name: "bedrock_eventstream_bad_crc", comment: `A ConverseStream body (Content-Length) whose second delta was changed in
		flight: its message CRC does not match, so it is dropped and counted,
		the body marked truncated, and the messages after it still read.`}
	converseRequest(s)
	bad := delta(" there")
	bad[len(bad)-12] ^= 0x04
	body := [][]byte{start, delta("Hello"), bad, stop, meta}
	n := 0
	for _, m := range body {
		n += len(m)
	}
	s.feed(Ingress).text(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nContent-Length: %d\r\n\r\n", n))
	for i, m := range body {
		note := []string{"messageStart", "contentBlockDelta Hello", "contentBlockDelta \" there\" with one payload bit flipped", "messageStop", "metadata"}[i]
		s.feed(Ingress).bin(note, m, false)
	}
	out = append(out, s)

	s = &esScript{name: "bedrock_eventstream_bad_prelude", comment: `A ConverseStream body whose third message has a corrupt prelude: no
		length after it can be trusted, so the rest of the body is dropped and
		counted; the response still ends where its Content-Length says.`}
	converseRequest(s)
	badPre := delta(" there")
	badPre[2] ^= 0x01
	body = [][]byte{start, delta("Hello"), badPre, stop, meta}
	n = 0
	for _, m := range body {
		n += len(m)
	}
	s.feed(Ingress).text(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nContent-Length: %d\r\n\r\n", n))
	for i, m := range body {
		note := []string{"messageStart", "contentBlockDelta Hello", "contentBlockDelta \" there\" with its total length changed", "messageStop", "metadata"}[i]
		s.feed(Ingress).bin(note, m, false)
	}
	out = append(out, s)

	s = &esScript{name: "bedrock_eventstream_exception", comment: `A ConverseStream that fails mid-stream: after a delta the server sends
		an exception message (:message-type exception, :exception-type
		throttlingException) and ends the body.`}
	converseRequest(s)
	exc := esException("throttlingException", `{"message":"Too many requests, please wait before trying again."}`)
	s.feed(Ingress).text("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n").
		bin("messageStart", start, true).bin("contentBlockDelta Hello", delta("Hello"), true)
	s.feed(Ingress).bin("throttlingException", exc, true).text("0\r\n\r\n")
	out = append(out, s)
	return out
}

// TestEventStreamFixturesCurrent checks the committed event-stream fixtures
// are what esScripts writes; with -update it writes them.
func TestEventStreamFixturesCurrent(t *testing.T) {
	fixtures := map[string]string{}
	for _, s := range esScripts() {
		fixtures[s.name] = s.render()
	}
	checkWrittenFixtures(t, fixtures)
}

// TestEventStreamSeedsCurrent keeps FuzzEventStream's seeds to the bodies
// of the event-stream fixtures, in pieces and whole; -update rewrites them.
func TestEventStreamSeedsCurrent(t *testing.T) {
	for _, s := range esScripts() {
		writeSeed(t, "FuzzEventStream", s.name, s.body, []byte{7, 1, 30, 2, 11, 5, 0, 19})
		writeSeed(t, "FuzzEventStream", s.name+"_whole", s.body, nil)
	}
}

// h2EventStreamScripts are the HTTP/2 conversations of Bedrock streams,
// written with the HTTP/2 fixtures (TestHTTP2FixturesCurrent).
func h2EventStreamScripts() []*h2script {
	s := newH2Script("h2_bedrock_converse_stream", `Bedrock ConverseStream over HTTP/2: an event-stream body in DATA
		frames, a message split across two frames and two messages in one, the
		second delta with a payload bit flipped (dropped, counted, the body
		marked truncated) and the end of the stream an empty DATA frame.`).open()
	s.feed(Egress).headers(Egress, 1, false,
		":method", "POST", ":scheme", "https", ":authority", "bedrock-runtime.us-west-2.amazonaws.com", ":path", converseStreamPath,
		"content-type", "application/json", "x-amz-date", "20250101T000000Z").
		data(1, true, `{"messages":[{"role":"user","content":[{"text":"Say hi"}]}]}`)
	delta := func(text string) []byte {
		return esEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"`+text+`"}}`)
	}
	start := esEvent("messageStart", `{"role":"assistant"}`)
	d1, d2, d3 := delta("Hel"), delta("lo"), delta("!")
	d2[len(d2)-6] ^= 0x02
	stop := esEvent("messageStop", `{"stopReason":"end_turn"}`)
	meta := esEvent("metadata", `{"usage":{"inputTokens":4,"outputTokens":3,"totalTokens":7}}`)
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "application/vnd.amazon.eventstream", "x-amzn-requestid", "b3c4d5e6-0000-4000-8000-000000000002").
		dataBytes(1, false, start, nil)
	s.feed(Ingress).dataBytes(1, false, d1[:20], nil)
	s.feed(Ingress).dataBytes(1, false, d1[20:], nil)
	s.feed(Ingress).dataBytes(1, false, d2, nil).dataBytes(1, false, d3, nil)
	s.feed(Ingress).dataBytes(1, false, cat(stop, meta), nil).data(1, true, "")
	return []*h2script{s}
}
