package genai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// Mirrors of the types Ollama's server and runner exchange, field for field
// with their json tags, so the recording below is what encoding/json makes
// of them and not a guess:
//
//   - runnerCompletionRequest is llm.CompletionRequest (ollama/ollama
//     llm/server.go): Prompt, Format, Images, Options, Grammar, Shift,
//     Truncate, Logprobs and TopLogprobs carry no json tags.
//   - runnerImageData is llm.ImageData: "data", "id".
//   - runnerOptions is the part of api.Options (api/types.go, with its
//     embedded api.Runner) that a chat sets: "num_ctx", "num_batch",
//     "num_gpu", "num_thread", "num_keep", "seed", "num_predict", "top_k",
//     "top_p", "temperature", "repeat_penalty", "stop".
//   - runnerCompletionResponse is llm.CompletionResponse: "content",
//     "done_reason" (llm.DoneReason, an int: 0 stop, 1 length), "done",
//     "prompt_eval_count", "prompt_eval_duration", "eval_count",
//     "eval_duration" (time.Duration, nanoseconds).
//
// llmServer.Completion posts the request to http://127.0.0.1:<port>/completion
// with Content-Type application/json, encoded by a json.Encoder with HTML
// escaping off; the runner (Server.completion in runner/ollamarunner/
// runner.go) answers 200 with Content-Type application/json and
// Transfer-Encoding chunked, one json.Encoder line per response, flushed.
type runnerCompletionRequest struct {
	Prompt      string
	Format      json.RawMessage
	Images      []runnerImageData
	Options     *runnerOptions
	Grammar     string
	Shift       bool
	Truncate    bool
	Logprobs    bool
	TopLogprobs int
}

type runnerImageData struct {
	Data []byte `json:"data"`
	ID   int    `json:"id"`
}

type runnerOptions struct {
	NumCtx        int      `json:"num_ctx,omitempty"`
	NumBatch      int      `json:"num_batch,omitempty"`
	NumGPU        int      `json:"num_gpu,omitempty"`
	NumThread     int      `json:"num_thread,omitempty"`
	NumKeep       int      `json:"num_keep,omitempty"`
	Seed          int      `json:"seed,omitempty"`
	NumPredict    int      `json:"num_predict,omitempty"`
	TopK          int      `json:"top_k,omitempty"`
	TopP          float32  `json:"top_p,omitempty"`
	Temperature   float32  `json:"temperature,omitempty"`
	RepeatPenalty float32  `json:"repeat_penalty,omitempty"`
	Stop          []string `json:"stop,omitempty"`
}

type runnerCompletionResponse struct {
	Content            string        `json:"content"`
	DoneReason         int           `json:"done_reason"`
	Done               bool          `json:"done"`
	PromptEvalCount    int           `json:"prompt_eval_count"`
	PromptEvalDuration time.Duration `json:"prompt_eval_duration"`
	EvalCount          int           `json:"eval_count"`
	EvalDuration       time.Duration `json:"eval_duration"`
}

// runnerRecordingPath holds one runner exchange in the fixture format. It
// lives apart from testdata/*.txt, whose every file must make one call.
var runnerRecordingPath = filepath.Join("testdata", "internal", "ollama_runner_completion.txt")

func encodeLine(t *testing.T, v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// runnerRecording builds the runner exchange of one short chat from the
// mirrored types.
func runnerRecording(t *testing.T) string {
	req := encodeLine(t, runnerCompletionRequest{
		Prompt: "<|start_header_id|>user<|end_header_id|>\n\nColor of the sky?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		Options: &runnerOptions{
			NumCtx: 4096, NumBatch: 512, NumGPU: -1, NumThread: 8, NumKeep: 4, Seed: -1,
			NumPredict: -1, TopK: 40, TopP: 0.9, Temperature: 0.8, RepeatPenalty: 1.1,
			Stop: []string{"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
		},
		Shift:    true,
		Truncate: true,
	})
	var b strings.Builder
	b.WriteString("# Ollama's server calling its model runner: POST /completion with\n")
	b.WriteString("# llm.CompletionRequest, answered with llm.CompletionResponse lines, as\n")
	b.WriteString("# encoding/json writes them (see worker_test.go for the types and their\n")
	b.WriteString("# source). Rewritten by go test -run TestOllamaRunnerRecordingCurrent -update.\n")
	b.WriteString("=== request @0 server\n")
	fmt.Fprintf(&b, "POST /completion HTTP/1.1\nHost: 127.0.0.1:37261\nUser-Agent: Go-http-client/1.1\nContent-Length: %d\nContent-Type: application/json\nAccept-Encoding: gzip\n\n", len(req))
	b.WriteString(strings.TrimSuffix(req, "\n") + "\n")
	b.WriteString("=== response @2\nHTTP/1.1 200 OK\nContent-Type: application/json\nTransfer-Encoding: chunked\n\n")
	for i, piece := range []string{"The", " sky", " is", " blue", "."} {
		fmt.Fprintf(&b, "=== event @%d\n%s", 120+25*i, encodeLine(t, runnerCompletionResponse{Content: piece}))
	}
	fmt.Fprintf(&b, "=== event @246\n%s", encodeLine(t, runnerCompletionResponse{
		Done: true, PromptEvalCount: 17, PromptEvalDuration: 118 * time.Millisecond,
		EvalCount: 5, EvalDuration: 126 * time.Millisecond,
	}))
	b.WriteString("=== end @246.5\n")
	return b.String()
}

// The committed recording is what the mirrored types encode to.
func TestOllamaRunnerRecordingCurrent(t *testing.T) {
	want := runnerRecording(t)
	if *update {
		if err := os.MkdirAll(filepath.Dir(runnerRecordingPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(runnerRecordingPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(runnerRecordingPath)
	if err != nil || string(got) != want {
		t.Fatalf("%s is missing or stale (%v): run go test -run TestOllamaRunnerRecordingCurrent -update ./internal/genai", runnerRecordingPath, err)
	}
}

// feedFixture hands a fixture's exchange to a fresh assembler, events as
// recorded, and returns what it reported.
func feedFixture(t *testing.T, fx *fixture, clientSide bool) (*recorder, Stats) {
	t.Helper()
	rec := &recorder{t: t}
	a := NewAssembler(captureAll, testEndpoint, rec)
	x := &decode.Exchange{Seq: 1, Request: fx.req, ClientSide: clientSide}
	a.Request(x)
	if fx.hasResp {
		x.HasResponse = true
		x.Response = fx.resp
		for _, ev := range fx.events {
			x.Response.Events++
			a.Event(x, decode.StreamEvent{Time: ev.t, Data: bytes.TrimRight(ev.raw, "\n")})
		}
		x.Response.Body = fx.body
		x.Response.End = fx.end
	}
	a.Done(x)
	return rec, a.Stats()
}

// The runner hop, seen from the Ollama server (client side) and from the
// runner (server side), is never a call; it is counted as a worker hop.
func TestOllamaRunnerHopIsNotACall(t *testing.T) {
	fx := loadFixture(t, runnerRecordingPath)
	if fx.resp.Stream != decode.NDJSON && fx.resp.Stream != decode.NotStreamed {
		t.Fatalf("stream kind %v", fx.resp.Stream)
	}
	for _, clientSide := range []bool{true, false} {
		rec, st := feedFixture(t, fx, clientSide)
		if len(rec.ended) != 0 || len(rec.started) != 0 {
			t.Errorf("client side %v: %d calls started, %d ended; the hop is not a call", clientSide, len(rec.started), len(rec.ended))
		}
		if st.WorkerHops != 1 || st.Ignored != 1 || st.Calls != 0 {
			t.Errorf("client side %v: stats %+v", clientSide, st)
		}
	}
}

// Requests that only look like the hop stay calls: llama.cpp's own
// /completion with lower-case keys, and a capitalised body elsewhere.
func TestWorkerHopShape(t *testing.T) {
	runner := `{"Prompt":"hi","Format":null,"Images":null,"Options":{"num_predict":3},"Grammar":""}`
	for _, tc := range []struct {
		method, path, body string
		hop                bool
	}{
		{"POST", "/completion", runner, true},
		{"POST", "/completion", " \n" + runner, true},
		{"POST", "/completion", `{"prompt":"hi","n_predict":3,"stream":true}`, false},
		{"POST", "/completion", `{"prompt":"{\"Prompt\":","Options":1}`, false},
		{"POST", "/v1/completion", runner, false},
		{"GET", "/completion", runner, false},
		{"POST", "/completion", `{"Prompt":"no options"}`, false},
	} {
		if got := isWorkerHop(tc.method, tc.path, []byte(tc.body)); got != tc.hop {
			t.Errorf("%s %s %s: hop %v, want %v", tc.method, tc.path, tc.body, got, tc.hop)
		}
	}
	// The llama.cpp fixture is still a llama.cpp call.
	fx := loadFixture(t, filepath.Join("testdata", "llamacpp_completion_stream.txt"))
	if rec, st := feedFixture(t, fx, true); len(rec.ended) != 1 || rec.ended[0].Provider != ProviderLlamaCpp || st.WorkerHops != 0 {
		t.Errorf("llama.cpp /completion: %d calls, stats %+v", len(rec.ended), st)
	}
}
