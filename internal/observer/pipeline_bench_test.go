package observer

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/discover"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// BenchmarkPipeline is the agent's userspace cost per LLM call: the
// records of one whole streamed exchange (open, request, response in the
// pieces a client reads them, close) through Agent.Handle, that is decode,
// genai and the hand-off to an exporter that does nothing. Throughput is in
// payload bytes; ns/record is the cost per ring record, to set against the
// rate at which the kernel writes them.
func BenchmarkPipeline(b *testing.B) {
	exchanges := []struct {
		name    string
		records func(pid uint32, comm string) []capture.Event
	}{
		{"openai-sse", openAIStreamRecords},
		{"ollama-ndjson", ollamaStreamRecords},
	}
	procs, err := discover.NewTable("/proc")
	if err != nil {
		b.Fatal(err)
	}
	pid := uint32(os.Getpid())
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, x := range exchanges {
		for _, content := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/content=%v", x.name, content), func(b *testing.B) {
				recs := x.records(pid, strings.TrimSpace(string(comm)))
				var payload int64
				for _, r := range recs {
					payload += int64(len(r.Data))
				}
				exp := &countingExporter{}
				opts := genai.Options{CaptureInput: content, CaptureOutput: content}
				a := New(Config{GenAI: opts}, procs, nil, exp)
				b.SetBytes(payload)
				b.ReportAllocs()
				var id uint64
				for b.Loop() {
					// Each call on a connection of its own, numbered as the
					// kernel numbers them, so no record looks stale.
					id++
					for i := range recs {
						recs[i].Conn.ID = id
						a.Handle(&recs[i])
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
				if exp.ended != b.N || exp.last == nil || exp.last.Usage.OutputTokens == nil || *exp.last.Usage.OutputTokens != streamTokens {
					b.Fatalf("%d calls ended in %d runs, last %+v", exp.ended, b.N, exp.last)
				}
				if exp.proc == nil || exp.proc.PID != int(pid) || exp.proc.ExecutableName == "" {
					b.Fatalf("calls exported for process %+v, want this one", exp.proc)
				}
				if st := a.Stats(); st.GapBytes.Load() != 0 || st.OpensMissed.Load() != 0 || st.CallsTruncated.Load() != 0 || st.StaleEvents.Load() != 0 {
					b.Fatalf("the exchange was not clean: gaps %d, opens missed %d, truncated calls %d, stale records %d",
						st.GapBytes.Load(), st.OpensMissed.Load(), st.CallsTruncated.Load(), st.StaleEvents.Load())
				}
			})
		}
	}
}

// countingExporter keeps what a sanity check needs and nothing else.
type countingExporter struct {
	ended int
	last  *genai.Call
	proc  *export.Process
}

func (*countingExporter) CallStarted(*export.Process, *genai.Call) {}

func (e *countingExporter) CallEnded(p *export.Process, c *genai.Call) {
	e.ended++
	e.last, e.proc = c, p
}

// streamTokens is the length of each synthetic answer: a few paragraphs.
const streamTokens = 256

// exchangeRecords builds the records the kernel writes for one client
// connection: its open, the request as head and body written apart (as
// httpx and the Ollama and OpenAI Python clients do), the response head in
// one read and then each chunk in a read of its own, 20 ms apart as a model
// generates, and the close.
func exchangeRecords(pid uint32, comm string, server netip.AddrPort, reqHead, reqBody string, respHead string, chunks []string) []capture.Event {
	key := capture.ConnKey{PID: pid, FD: 9}
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(kind capture.Kind, dir capture.Direction, off uint64, data string) capture.Event {
		return capture.Event{Kind: kind, Conn: key, TID: pid, Comm: comm, Time: t, Dir: dir,
			Role: capture.RoleClient, Offset: off, Data: []byte(data)}
	}
	open := ev(capture.Open, capture.Egress, 0, "")
	open.Local, open.Remote = netip.MustParseAddrPort("10.0.0.5:51234"), server
	recs := []capture.Event{open}
	var out, in uint64
	for _, seg := range []string{reqHead, reqBody} {
		recs = append(recs, ev(capture.Data, capture.Egress, out, seg))
		out += uint64(len(seg))
	}
	t = t.Add(300 * time.Millisecond)
	recs = append(recs, ev(capture.Data, capture.Ingress, in, respHead))
	in += uint64(len(respHead))
	for _, c := range chunks {
		frame := fmt.Sprintf("%x\r\n%s\r\n", len(c), c)
		recs = append(recs, ev(capture.Data, capture.Ingress, in, frame))
		in += uint64(len(frame))
		t = t.Add(20 * time.Millisecond)
	}
	recs = append(recs, ev(capture.Data, capture.Ingress, in, "0\r\n\r\n"))
	recs = append(recs, ev(capture.Close, capture.Egress, 0, ""))
	return recs
}

// tokenText is the content of the i-th token of an answer.
func tokenText(i int) string {
	words := []string{" The", " sky", " looks", " blue", " because", " air", " scatters", " shorter", " wavelengths", " more."}
	return words[i%len(words)]
}

func openAIStreamRecords(pid uint32, comm string) []capture.Event {
	body := `{"model":"meta-llama/Llama-3.1-8B-Instruct","stream":true,"stream_options":{"include_usage":true},"temperature":0.7,"max_tokens":512,` +
		`"messages":[{"role":"system","content":"You are a helpful assistant. Answer in plain prose."},` +
		`{"role":"user","content":"` + strings.Repeat("Explain why the sky is blue, with the physics. ", 16) + `"}]}`
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: 10.0.0.9:8000\r\nAccept: application/json\r\nContent-Type: application/json\r\n" +
		"User-Agent: OpenAI/Python 1.59.0\r\nAuthorization: Bearer sk-bench\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
	resp := "HTTP/1.1 200 OK\r\ndate: Wed, 01 Jan 2025 00:00:00 GMT\r\nserver: uvicorn\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
	chunk := func(delta, finish string) string {
		return `data: {"id":"chatcmpl-b3f1","object":"chat.completion.chunk","created":1735689600,"model":"meta-llama/Llama-3.1-8B-Instruct",` +
			`"choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}]}` + "\n\n"
	}
	chunks := []string{chunk(`{"role":"assistant","content":""}`, "null")}
	for i := range streamTokens {
		chunks = append(chunks, chunk(fmt.Sprintf(`{"content":%q}`, tokenText(i)), "null"))
	}
	chunks = append(chunks, chunk(`{}`, `"stop"`),
		`data: {"id":"chatcmpl-b3f1","object":"chat.completion.chunk","created":1735689600,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],`+
			fmt.Sprintf(`"usage":{"prompt_tokens":412,"total_tokens":%d,"completion_tokens":%d}}`, 412+streamTokens, streamTokens)+"\n\n",
		"data: [DONE]\n\n")
	return exchangeRecords(pid, comm, netip.MustParseAddrPort("10.0.0.9:8000"), head, body, resp, chunks)
}

func ollamaStreamRecords(pid uint32, comm string) []capture.Event {
	body := `{"model":"llama3.2","messages":[{"role":"system","content":"You are terse."},` +
		`{"role":"user","content":"` + strings.Repeat("Why is the sky blue? ", 24) + `"}],"options":{"temperature":0.2,"num_predict":512}}`
	head := "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nAccept: application/json\r\nContent-Type: application/json\r\n" +
		"User-Agent: ollama-python/0.4.7 (x86_64 linux) Python/3.12.8\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
	resp := "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nDate: Wed, 01 Jan 2025 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
	var chunks []string
	at := time.Date(2025, 1, 1, 0, 0, 0, 300e6, time.UTC)
	for i := range streamTokens {
		chunks = append(chunks, fmt.Sprintf(`{"model":"llama3.2","created_at":%q,"message":{"role":"assistant","content":%q},"done":false}`+"\n",
			at.Format(time.RFC3339Nano), tokenText(i)))
		at = at.Add(20 * time.Millisecond)
	}
	var final bytes.Buffer
	fmt.Fprintf(&final, `{"model":"llama3.2","created_at":%q,"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",`, at.Format(time.RFC3339Nano))
	fmt.Fprintf(&final, `"total_duration":5432101234,"load_duration":21684375,"prompt_eval_count":153,"prompt_eval_duration":266000000,"eval_count":%d,"eval_duration":5120000000}`+"\n", streamTokens)
	chunks = append(chunks, final.String())
	return exchangeRecords(pid, comm, netip.MustParseAddrPort("127.0.0.1:11434"), head, body, resp, chunks)
}
