package feed

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func i64(v int64) *int64     { return &v }
func f64(v float64) *float64 { return &v }

var curl = &export.Process{PID: 4242, ExecutableName: "curl", ServiceName: "curl"}

func streamedChat() *genai.Call {
	return &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOllama, RequestModel: "llama3.2", Stream: true, Status: 200,
		Endpoint: genai.Endpoint{ClientSide: true},
		Usage:    genai.Usage{InputTokens: i64(12), OutputTokens: i64(40)},
		Start:    t0, End: at(1210), ContentChunks: []time.Time{at(52), at(80), at(130), at(1200)},
	}
}

func TestCallOf(t *testing.T) {
	clock := t0.Local().Format("15:04:05.000")
	tests := []struct {
		name string
		p    *export.Process
		call func() *genai.Call
		want Call
	}{{
		name: "streamed chat",
		p:    curl,
		call: streamedChat,
		want: Call{Process: "curl", PID: 4242, Provider: "ollama", Operation: "chat", Model: "llama3.2", Start: t0, End: at(1210),
			Stream: true, Status: 200, InputTokens: i64(12), OutputTokens: i64(40),
			TimeToFirstChunk: f64(0.052), TimePerChunk: f64((1.200 - 0.052) / 3), Chunks: 4,
			Line: clock + " curl[4242] ollama chat llama3.2 in=12 out=40 ttfc=52ms dur=1.21s ok"},
	}, {
		name: "served, response model only, no usage, failed and truncated",
		p:    &export.Process{PID: 812, ServiceName: "ollama"},
		call: func() *genai.Call {
			return &genai.Call{Provider: genai.ProviderOllama, ResponseModel: "llama3.2:1b", Start: t0, End: at(40),
				ErrorType: "_OTHER", Truncated: true, ContentChunks: []time.Time{at(20)}}
		},
		want: Call{Process: "ollama", PID: 812, Server: true, Provider: "ollama", Operation: "_OTHER", Model: "llama3.2:1b",
			Start: t0, End: at(40), ErrorType: "_OTHER", Truncated: true, TimeToFirstChunk: f64(0.020), Chunks: 1,
			Line: clock + " ollama[812] (server) ollama _OTHER llama3.2:1b ttfc=20ms dur=40ms error=_OTHER truncated"},
	}, {
		name: "no process, and a credential the server echoed",
		call: func() *genai.Call {
			h := http.Header{}
			h.Set("Authorization", "Bearer sk-live-0123456789abcdef")
			return &genai.Call{Operation: genai.OpChat, Provider: genai.ProviderOpenAI, RequestModel: "sk-live-0123456789abcdef",
				Endpoint: genai.Endpoint{ClientSide: true}, Start: t0, End: at(5), ErrorType: "invalid sk-live-0123456789abcdef",
				Credentials: genai.RequestCredentials(h, "")}
		},
		want: Call{Process: "unknown_service", Provider: "openai", Operation: "chat", Model: "[REDACTED]", Start: t0, End: at(5),
			ErrorType: "invalid [REDACTED]",
			Line:      clock + " unknown_service[0] openai chat [REDACTED] dur=5.0ms error=invalid [REDACTED]"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CallOf(tt.p, tt.call())
			if got.TimePerChunk != nil && tt.want.TimePerChunk != nil && abs(*got.TimePerChunk-*tt.want.TimePerChunk) < 1e-9 {
				got.TimePerChunk = tt.want.TimePerChunk
			}
			if !reflect.DeepEqual(*got, tt.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tt.want)
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// A consumer that never reads costs the publisher nothing but a full
// queue: frames beyond it are dropped and counted, and the consumer hears
// how many it missed, at the place of the gap, once it reads again.
func TestSlowConsumer(t *testing.T) {
	f := New(Config{Queue: 8})
	slow := f.Subscribe()
	defer slow.Close()
	fast := f.Subscribe()
	defer fast.Close()
	ctx := context.Background()

	// fast reads each frame before the next is published.
	for i := range 30 {
		f.CallEnded(curl, streamedChat())
		fr, err := fast.Next(ctx)
		if err != nil || fr.Type != TypeCall {
			t.Fatalf("the reading consumer's frame %d: %+v, %v", i, fr, err)
		}
	}
	if fast.Dropped() != 0 {
		t.Errorf("the reading consumer dropped %d frames", fast.Dropped())
	}
	if slow.Dropped() != 22 {
		t.Errorf("the slow consumer dropped %d frames, want 22", slow.Dropped())
	}
	if st := f.Stats(); st.FramesDropped != 22 || st.Consumers != 2 {
		t.Errorf("stats %+v, want 22 dropped, 2 consumers", st)
	}
	// The slow one reads its 8, then the next frame comes after a notice.
	for i := range 8 {
		fr, _ := slow.Next(ctx)
		if fr.Type != TypeCall {
			t.Fatalf("frame %d is %s", i, fr.Type)
		}
	}
	f.CallStarted(curl, streamedChat())
	fr, _ := slow.Next(ctx)
	if fr.Type != TypeDropped || *fr.Dropped != (Dropped{Count: 22, Total: 22}) {
		t.Errorf("after catching up: %+v, want a notice of 22 dropped", fr)
	}
	if fr, _ := slow.Next(ctx); fr.Type != TypeStart || fr.Start.Model != "llama3.2" || !fr.Start.Stream {
		t.Errorf("after the notice: %+v, want the start", fr)
	}
}

func TestNoConsumerNoCost(t *testing.T) {
	f := New(Config{})
	c := streamedChat()
	if n := testing.AllocsPerRun(100, func() { f.CallEnded(curl, c); f.CallStarted(curl, c) }); n != 0 {
		t.Errorf("%v allocations per call without consumers", n)
	}
	s := f.Subscribe()
	s.Close()
	if n := testing.AllocsPerRun(100, func() { f.CallEnded(curl, c) }); n != 0 {
		t.Errorf("%v allocations per call after the last consumer left", n)
	}
}

// readFrames reads NDJSON frames from c.
func readFrames(t *testing.T, c net.Conn) func() Frame {
	r := bufio.NewReader(c)
	return func() Frame {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read a frame: %v", err)
		}
		var fr Frame
		if err := json.Unmarshal(line, &fr); err != nil {
			t.Fatalf("frame %q: %v", line, err)
		}
		return fr
	}
}

func TestSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "feed.sock")
	records := uint64(0)
	f := New(Config{HealthInterval: 20 * time.Millisecond, Health: func() Health {
		records += 100
		return Health{Records: records, Time: t0.Add(time.Duration(records/100) * time.Second), Calls: 3,
			Losses: []Loss{{Counter: "dropped.records", Reason: "ring_full", Count: 2}}}
	}})
	srv, err := Listen(f, path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want a socket with 0600", path, fi.Mode())
	}
	if _, err := Listen(New(Config{}), path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second feed on a socket in use: %v", err)
	}

	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next := readFrames(t, c)
	if fr := next(); fr.Type != TypeHello || fr.Hello.Version != Version || fr.Hello.PID != os.Getpid() || fr.Hello.Queue != DefaultQueue {
		t.Errorf("first frame %+v, want hello", fr)
	}
	waitConsumers(t, f, 1)
	f.CallEnded(curl, streamedChat())
	var call *Call
	var health []*Health
	for call == nil || len(health) < 2 {
		switch fr := next(); fr.Type {
		case TypeCall:
			call = fr.Call
		case TypeHealth:
			health = append(health, fr.Health)
		}
	}
	if call.Model != "llama3.2" || *call.OutputTokens != 40 || !strings.Contains(call.Line, "curl[4242]") {
		t.Errorf("call frame %+v", call)
	}
	h := health[1]
	if h.RecordsPerSecond != 100 || h.Calls != 3 || h.Consumers != 1 || len(h.Losses) != 1 {
		t.Errorf("health %+v, want 100 records/s from one second to the next", h)
	}

	if err := srv.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if st := f.Stats(); st.Consumers != 0 {
		t.Errorf("%d consumers after close", st.Consumers)
	}

	// A socket file without an observer behind it is replaced.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	srv2, err := Listen(f, path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	srv2.Close()
	// Anything else at the path is left alone.
	if err := os.WriteFile(path, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(f, path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a regular file at the path: %v", err)
	}
}

func TestLoopback(t *testing.T) {
	f := New(Config{})
	srv, err := Listen(f, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve()
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next := readFrames(t, c)
	if fr := next(); fr.Type != TypeHello {
		t.Errorf("first frame %+v", fr)
	}
	waitConsumers(t, f, 1)
	f.CallStarted(curl, streamedChat())
	if fr := next(); fr.Type != TypeStart || fr.Start.PID != 4242 || !fr.Start.Start.Equal(t0) {
		t.Errorf("start frame %+v", fr.Start)
	}
}

func TestMaxConsumers(t *testing.T) {
	f := New(Config{MaxConsumers: 1})
	srv, err := Listen(f, filepath.Join(t.TempDir(), "feed.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve()
	first, err := net.Dial("unix", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	readFrames(t, first)()
	second, err := net.Dial("unix", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := second.Read(make([]byte, 1)); err == nil {
		t.Errorf("the consumer beyond the limit read %d bytes", n)
	}
}

func waitConsumers(t *testing.T, f *Feed, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); f.Stats().Consumers != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d consumers, want %d", f.Stats().Consumers, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkCallEnded is what the feed adds to the exporter's goroutine
// per call: nothing without consumers, one frame and a queue send each
// with them.
func BenchmarkCallEnded(b *testing.B) {
	for _, consumers := range []int{0, 1, 4} {
		b.Run(fmt.Sprintf("consumers=%d", consumers), func(b *testing.B) {
			f := New(Config{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for range consumers {
				s := f.Subscribe()
				defer s.Close()
				go func() {
					for {
						if _, err := s.Next(ctx); err != nil {
							return
						}
					}
				}()
			}
			c := streamedChat()
			b.ReportAllocs()
			for b.Loop() {
				f.CallEnded(curl, c)
			}
		})
	}
}
