package health_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-observer/llm-observer/internal/health"
)

// The agent keeps its counts in atomics and lets the Registry read them at
// scrape time; readiness is whatever the agent says it is.
func Example() {
	var eventsRead, ringFull atomic.Uint64
	var probesAttached atomic.Bool

	reg := health.NewRegistry()
	_ = reg.CounterFunc("events_read_total", "Events read from the ring buffer.", nil,
		func() float64 { return float64(eventsRead.Load()) })
	_ = reg.CounterFunc("events_dropped_total", "Events lost, by reason.", prometheus.Labels{"reason": "ring_full"},
		func() float64 { return float64(ringFull.Load()) })

	srv, err := health.Start("127.0.0.1:0", func() error {
		if !probesAttached.Load() {
			return fmt.Errorf("probes not attached yet")
		}
		return nil
	}, reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	probesAttached.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx))
	// Output: <nil>
}
