package observer

import (
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/discover"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

type recorder struct {
	mu      sync.Mutex
	started int
	ended   []*genai.Call
	procs   []*export.Process
}

func (r *recorder) CallStarted(p *export.Process, c *genai.Call) {
	r.mu.Lock()
	r.started++
	r.mu.Unlock()
}

func (r *recorder) CallEnded(p *export.Process, c *genai.Call) {
	r.mu.Lock()
	r.ended = append(r.ended, c)
	r.procs = append(r.procs, p)
	r.mu.Unlock()
}

const (
	chatRequest = "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:11434\r\nContent-Type: application/json\r\nContent-Length: 63\r\n\r\n" +
		`{"model":"llama3.2","messages":[{"role":"user","content":"x"}]}`
	chatResponseHead = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)

func ndjsonChunk(line string) []byte {
	b := []byte(line + "\n")
	return append(append([]byte(hex(len(b))+"\r\n"), b...), "\r\n"...)
}

func hex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var out []byte
	for ; n > 0; n /= 16 {
		out = append([]byte{digits[n%16]}, out...)
	}
	return string(out)
}

// conversation is the client side of one streamed Ollama chat, as records.
func conversation(key capture.ConnKey, t0 time.Time) []capture.Event {
	ev := func(dir capture.Direction, off int, at time.Duration, data []byte) capture.Event {
		return capture.Event{Kind: capture.Data, Conn: key, Comm: "client", Dir: dir, Role: capture.RoleClient,
			Offset: uint64(off), Time: t0.Add(at), Data: data}
	}
	lines := [][]byte{
		[]byte(chatResponseHead),
		ndjsonChunk(`{"model":"llama3.2","message":{"role":"assistant","content":"Hi"},"done":false}`),
		ndjsonChunk(`{"model":"llama3.2","message":{"role":"assistant","content":"!"},"done":false}`),
		ndjsonChunk(`{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":5,"eval_count":2}`),
		[]byte("0\r\n\r\n"),
	}
	evs := []capture.Event{{
		Kind: capture.Open, Conn: key, Comm: "client", Role: capture.RoleClient, Time: t0,
		Local:  netip.MustParseAddrPort("127.0.0.1:40000"),
		Remote: netip.MustParseAddrPort("127.0.0.1:11434"),
	}, ev(capture.Egress, 0, 0, []byte(chatRequest))}
	off := 0
	for i, l := range lines {
		evs = append(evs, ev(capture.Ingress, off, time.Duration(100+10*i)*time.Millisecond, l))
		off += len(l)
	}
	return append(evs, capture.Event{Kind: capture.Close, Conn: key, Time: t0.Add(time.Second)})
}

func newAgent(t *testing.T) (*Agent, *recorder) {
	t.Helper()
	procs, err := discover.NewTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	return New(Config{}, procs, nil, rec), rec
}

func TestAgentConversations(t *testing.T) {
	key := capture.ConnKey{PID: uint32(os.Getpid()), FD: 7, ID: 1}
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		mutate    func([]capture.Event) []capture.Event
		truncated bool
		outTokens int64 // -1: absent
		gapBytes  uint64
		overlap   uint64
		missed    uint64
		noChunks  bool // the response never became readable
	}{
		{name: "whole", mutate: func(e []capture.Event) []capture.Event { return e }, outTokens: 2},
		{
			name: "open record lost",
			mutate: func(e []capture.Event) []capture.Event {
				return e[1:]
			},
			outTokens: 2, missed: 1,
		},
		{
			name: "record delivered twice",
			mutate: func(e []capture.Event) []capture.Event {
				out := append([]capture.Event{}, e[:4]...)
				out = append(out, e[3])
				return append(out, e[4:]...)
			},
			outTokens: 2, overlap: uint64(len(e3(key, t0).Data)),
		},
		{
			name: "open record after the first data",
			mutate: func(e []capture.Event) []capture.Event {
				out := []capture.Event{e[1], e[0]}
				return append(out, e[2:]...)
			},
			outTokens: 2, missed: 1,
		},
		{
			name: "first response record lost",
			mutate: func(e []capture.Event) []capture.Event {
				out := append([]capture.Event{}, e[:2]...)
				return append(out, e[3:]...)
			},
			truncated: true, outTokens: -1, gapBytes: uint64(len(chatResponseHead)), noChunks: true,
		},
		{
			name: "final line lost in the ring",
			mutate: func(e []capture.Event) []capture.Event {
				out := append([]capture.Event{}, e[:5]...)
				return append(out, e[6:]...)
			},
			truncated: true, outTokens: -1, gapBytes: uint64(len(conversation(key, t0)[5].Data)),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, rec := newAgent(t)
			for _, ev := range tc.mutate(conversation(key, t0)) {
				ev := ev
				a.Handle(&ev)
			}
			if len(rec.ended) != 1 {
				t.Fatalf("%d calls ended, want 1", len(rec.ended))
			}
			c := rec.ended[0]
			if c.Provider != genai.ProviderOllama || c.RequestModel != "llama3.2" || !c.Endpoint.ClientSide {
				t.Errorf("call: provider %q model %q client %v", c.Provider, c.RequestModel, c.Endpoint.ClientSide)
			}
			if c.Truncated != tc.truncated {
				t.Errorf("truncated = %v, want %v", c.Truncated, tc.truncated)
			}
			switch {
			case tc.outTokens < 0 && c.Usage.OutputTokens != nil:
				t.Errorf("output tokens %d reported from a stream whose usage was lost", *c.Usage.OutputTokens)
			case tc.outTokens >= 0 && (c.Usage.OutputTokens == nil || *c.Usage.OutputTokens != tc.outTokens):
				t.Errorf("output tokens %v, want %d", c.Usage.OutputTokens, tc.outTokens)
			}
			ttfc, ok := c.TimeToFirstChunk()
			switch {
			case tc.noChunks && ok:
				t.Errorf("time to first chunk %v from a response whose head was lost", ttfc)
			case !tc.noChunks && (!ok || ttfc != 110*time.Millisecond):
				t.Errorf("time to first chunk %v (%v), want 110ms", ttfc, ok)
			}
			st := a.Stats()
			if st.GapBytes.Load() != tc.gapBytes || st.OverlapBytes.Load() != tc.overlap || st.OpensMissed.Load() != tc.missed {
				t.Errorf("stats gap %d overlap %d missed %d, want %d %d %d",
					st.GapBytes.Load(), st.OverlapBytes.Load(), st.OpensMissed.Load(), tc.gapBytes, tc.overlap, tc.missed)
			}
			if st.Conns.Load() != 0 {
				t.Errorf("%d connections left open after close", st.Conns.Load())
			}
			if p := rec.procs[0]; p.PID != os.Getpid() || p.ExecutableName == "" || p.ServiceName == "" {
				t.Errorf("process identity %+v", p)
			}
		})
	}
}

// e3 is the third record of the conversation (the first response line).
func e3(key capture.ConnKey, t0 time.Time) capture.Event { return conversation(key, t0)[3] }

func TestAgentSweepEndsCallsOfExitedProcesses(t *testing.T) {
	a, rec := newAgent(t)
	// A pid that cannot exist: the process is gone by the time of the sweep.
	key := capture.ConnKey{PID: 1 << 30, FD: 3, ID: 9}
	t0 := time.Now()
	evs := conversation(key, t0)
	for _, ev := range evs[:3] { // open, request, response head: the call is in flight
		ev := ev
		a.Handle(&ev)
	}
	if rec.started != 1 || len(rec.ended) != 0 {
		t.Fatalf("started %d ended %d before the sweep", rec.started, len(rec.ended))
	}
	pids := a.Sweep(t0.Add(time.Minute))
	if len(pids) != 1 || pids[0] != key.PID {
		t.Errorf("sweep returned %v, want [%d]", pids, key.PID)
	}
	// What the observer did not see is its loss, not the call's error.
	if len(rec.ended) != 1 || !rec.ended[0].Truncated || rec.ended[0].ErrorType != "" {
		t.Fatalf("the in-flight call was not ended as cut short (truncated, no error type): %+v", rec.ended)
	}
	if a.Stats().Conns.Load() != 0 {
		t.Error("connection kept after its process exited")
	}
}
