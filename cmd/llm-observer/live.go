package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/feed"
	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/observer"
)

// liveExporter hands each call to the exporter and then to the live feed.
// The exporter goes first: it scrubs what the server echoed of the
// request's credentials from the call before anything reads it.
type liveExporter struct {
	exp  *export.Exporter
	feed *feed.Feed
}

func (l liveExporter) CallStarted(p *export.Process, c *genai.Call) {
	l.exp.CallStarted(p, c)
	l.feed.CallStarted(p, c)
}

func (l liveExporter) CallEnded(p *export.Process, c *genai.Call) {
	l.exp.CallEnded(p, c)
	l.feed.CallEnded(p, c)
}

// feedSamples reports the feed in the self-metrics.
func feedSamples(f *feed.Feed) []observer.SelfSample {
	st := f.Stats()
	return []observer.SelfSample{
		{Name: "llm_observer.feed.consumers", Help: "consumers of the live feed (llm-observer top) connected now", Value: float64(st.Consumers), Gauge: true},
		{Name: "llm_observer.feed.frames", Help: "frames queued for live-feed consumers", Value: float64(st.Frames)},
		{Name: "llm_observer.feed.frames_dropped", Help: "live-feed frames dropped because a consumer read too slowly; the observer never waits for one", Value: float64(st.FramesDropped)},
	}
}

// healthOf reads the numbers of the observer's health that the feed
// carries from the same samples the self-metrics publish.
func healthOf(agent *observer.Agent, probe observer.KernelCounters) feed.Health {
	var h feed.Health
	for _, s := range observer.SelfSamples(agent, probe) {
		name := strings.TrimPrefix(s.Name, "llm_observer.")
		switch {
		case name == "events":
			h.Records = uint64(s.Value)
		case name == "calls":
			h.Calls = uint64(s.Value)
		case name == "export.queue.depth":
			h.ExportQueueDepth = int(s.Value)
		case name == "export.queue.capacity":
			h.ExportQueueCapacity = int(s.Value)
		case name == "export.delay.max_seconds":
			h.ExportDelayMax = s.Value
		case name == "ring.pending_bytes":
			h.RingPendingBytes = int64(s.Value)
		case isLoss(name, s) && s.Value > 0:
			h.Losses = append(h.Losses, feed.Loss{Counter: name, Reason: s.Reason, Count: uint64(s.Value)})
		}
	}
	return h
}

// isLoss tells the loss counters among the self-samples: counters by
// reason of what was dropped or lost on the way.
func isLoss(name string, s observer.SelfSample) bool {
	if s.Gauge || s.Reason == "" || strings.HasPrefix(name, "feed.") {
		return false
	}
	return strings.Contains(name, "dropped") || strings.Contains(name, "losses") || strings.Contains(name, "lost")
}

// offerFeed serves f at addr until ctx ends. A feed that cannot be offered
// (another observer holds the socket) is reported and left off: it is a
// window on the observer, not part of its job.
func offerFeed(ctx context.Context, f *feed.Feed, addr string, log io.Writer) (stop func()) {
	go f.Run(ctx)
	if addr == "" {
		return func() {}
	}
	srv, err := feed.Listen(f, addr)
	if err != nil {
		fmt.Fprintf(log, "llm-observer: no live feed: %v (set LLM_OBSERVER_FEED to another place, or empty)\n", err)
		return func() {}
	}
	go func() {
		if err := srv.Serve(); err != nil {
			fmt.Fprintln(log, "llm-observer:", err)
		}
	}()
	return func() { srv.Close() }
}
