package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/health"
	"github.com/llm-observer/llm-observer/internal/observer"
)

func TestReportLosses(t *testing.T) {
	var b strings.Builder
	reportLosses(&b, []export.Loss{
		{Signal: "traces", Reason: "queue_full", Count: 0},
		{Signal: "traces", Reason: "collector_down", Count: 2},
		{Signal: "traces", Reason: "shutdown", Count: 10},
		{Signal: "metrics", Reason: "timeout", Count: 0},
		{Signal: "logs", Reason: "shutdown", Count: 1},
	})
	want := "llm-observer: export traces: 12 lost (collector_down=2 shutdown=10)\n" +
		"llm-observer: export logs: 1 lost (shutdown=1)\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// TestShutdownClock: every step's context ends by the one deadline set at
// the signal, less the step's reserve.
func TestShutdownClock(t *testing.T) {
	c := &shutdownClock{timeout: 2 * time.Second}
	c.start()
	first := c.deadline
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := c.context(300 * time.Millisecond)
	defer cancel()
	dl, ok := ctx.Deadline()
	if !ok || !dl.Equal(first.Add(-300*time.Millisecond)) || !c.deadline.Equal(first) {
		t.Errorf("deadline %v, want %v: the clock must start once", dl, first.Add(-300*time.Millisecond))
	}
}

// TestLossCollector: /metrics has llm_observer_export_dropped_total for
// every signal and reason, zeros included, so dashboards see the series
// before the first loss.
func TestLossCollector(t *testing.T) {
	exp, err := export.New(context.Background(), export.Config{ConsoleWriter: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background()) //nolint:errcheck // console only
	reg := health.NewRegistry()
	if err := reg.Register(newLossCollector(exp)); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "llm_observer_export_dropped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			series[labels["signal"]+"/"+labels["reason"]] = true
		}
	}
	for _, l := range exp.Losses() {
		if !series[l.Signal+"/"+l.Reason] {
			t.Errorf("no series for %s/%s", l.Signal, l.Reason)
		}
	}
	if len(series) != len(exp.Losses()) || len(series) == 0 {
		t.Errorf("%d series, want %d", len(series), len(exp.Losses()))
	}
}

func TestPromName(t *testing.T) {
	for _, tc := range []struct {
		s    observer.SelfSample
		want string
	}{
		{observer.SelfSample{Name: "llm_observer.dropped.records"}, "dropped_records_total"},
		{observer.SelfSample{Name: "llm_observer.connections.active", Gauge: true}, "connections_active"},
	} {
		if got := promName(tc.s); got != tc.want {
			t.Errorf("promName(%q) = %q, want %q", tc.s.Name, got, tc.want)
		}
	}
}
