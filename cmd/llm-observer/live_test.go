package main

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/feed"
	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/observer"
)

type kernelCounters capture.Counters

func (k kernelCounters) Counters() (capture.Counters, error) { return capture.Counters(k), nil }

// TestHealthOf: the feed's health carries the same numbers as the
// self-metrics, and only the loss counters that are not zero; the feed's
// own drops are not the observer's losses.
func TestHealthOf(t *testing.T) {
	agent := observer.New(observer.Config{}, nil, nil, nil)
	agent.Stats().Events.Add(1200)
	agent.Stats().CallsEnded.Add(40)
	agent.Stats().GapBytes.Add(512)
	f := feed.New(feed.Config{Queue: 1})
	sub := f.Subscribe()
	defer sub.Close()
	call := &genai.Call{Operation: genai.OpChat, Start: time.Now(), End: time.Now()}
	f.CallEnded(nil, call)
	f.CallEnded(nil, call) // the queue holds one: this one is dropped
	agent.AddSamples(func() []observer.SelfSample { return feedSamples(f) })

	h := healthOf(agent, kernelCounters{RingFull: 3, RingFullBytes: 3000})
	want := []feed.Loss{
		{Counter: "dropped.bytes", Reason: "offset_gap", Count: 512},
		{Counter: "dropped.records", Reason: "ring_full", Count: 3},
		{Counter: "dropped.bytes", Reason: "ring_full", Count: 3000},
	}
	if h.Records != 1200 || h.Calls != 40 || h.ExportQueueCapacity != 4096 || !reflect.DeepEqual(h.Losses, want) {
		t.Errorf("health %+v\nwant 1200 records, 40 calls, capacity 4096, losses %+v", h, want)
	}
	if st := f.Stats(); st.FramesDropped != 1 {
		t.Errorf("feed dropped %d frames, want 1", st.FramesDropped)
	}
}

// TestLiveExporter: the feed sees each call after the exporter, so what
// the server echoed of the request's credentials is gone from the feed's
// frame as from the console.
func TestLiveExporter(t *testing.T) {
	var console strings.Builder
	exp, err := export.New(context.Background(), export.Config{ConsoleWriter: &console})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	f := feed.New(feed.Config{})
	sub := f.Subscribe()
	defer sub.Close()
	live := liveExporter{exp, f}

	h := http.Header{}
	h.Set("Authorization", "Bearer sk-proj-abcdefghijklmnop")
	c := &genai.Call{Operation: genai.OpChat, Provider: genai.ProviderOpenAI, RequestModel: "gpt-4o",
		Endpoint: genai.Endpoint{ClientSide: true}, Start: time.Now(), End: time.Now(),
		ErrorType: "invalid_api_key", ErrorMessage: "Incorrect API key provided: sk-proj-abcdefghijklmnop",
		Credentials: genai.RequestCredentials(h, "")}
	p := &export.Process{PID: 7, ExecutableName: "python3"}
	live.CallStarted(p, c)
	live.CallEnded(p, c)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start, err := sub.Next(ctx)
	if err != nil || start.Type != feed.TypeStart || start.Start.Model != "gpt-4o" {
		t.Fatalf("first frame %+v, %v: want the start", start, err)
	}
	end, err := sub.Next(ctx)
	if err != nil || end.Type != feed.TypeCall {
		t.Fatalf("second frame %+v, %v: want the call", end, err)
	}
	if got := strings.TrimSuffix(console.String(), "\n"); end.Call.Line != got || !strings.Contains(got, "python3[7] openai chat gpt-4o") {
		t.Errorf("feed line %q, console line %q: want the same", end.Call.Line, got)
	}
	if strings.Contains(c.ErrorMessage, "sk-proj-") {
		t.Errorf("the exporter left the key in the call: %q", c.ErrorMessage)
	}
}
