package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

func silent(t *testing.T) string { return otlptest.Silent(t) }

// downCollector is an address where nothing listens.
func downCollector(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func lossesOf(e *Exporter, signal string) (total uint64, by map[string]uint64) {
	by = map[string]uint64{}
	for _, l := range e.Losses() {
		if l.Signal == signal {
			total += l.Count
			by[l.Reason] += l.Count
		}
	}
	return total, by
}

// callsFromProcesses ends n calls spread over procs processes, so that the
// metric pass has several resources to export.
func callsFromProcesses(e *Exporter, n, procs int) {
	for i := range n {
		p := &Process{PID: 10000 + i%procs, ExecutableName: "client", ServiceName: fmt.Sprintf("client-%d", i%procs)}
		c := chatStreamCall()
		c.Endpoint.ClientPort = 20000 + i
		end(e, p, c)
	}
}

// TestShutdownBounded: whatever the collector does, Shutdown returns by its
// deadline, and every span that did not reach the collector is counted.
func TestShutdownBounded(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoint  func(*testing.T) string
		proto     Protocol
		wantLoss  string // a reason that must be among the counted ones
		errLogged string
	}{
		{"silent grpc", silent, ProtocolGRPC, LossShutdown, ""},
		{"silent http", silent, ProtocolHTTPProtobuf, LossShutdown, ""},
		{"down grpc", downCollector, ProtocolGRPC, LossCollectorDown, "export traces"},
		{"down http", downCollector, ProtocolHTTPProtobuf, LossCollectorDown, "export traces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errs syncBuffer
			const calls = 40
			e, err := New(context.Background(), Config{
				Endpoint: tc.endpoint(t), TracesProtocol: tc.proto, MetricsProtocol: tc.proto, LogsProtocol: tc.proto,
				ConsoleWriter: io.Discard, ErrorWriter: &errs, HostName: "testhost",
				MetricInterval: 50 * time.Millisecond, MetricTimeout: 20 * time.Second,
				SpanQueue: QueueConfig{Size: 1000, Batch: 8, Delay: 20 * time.Millisecond, Timeout: 20 * time.Second},
				PairWait:  -1,
			})
			if err != nil {
				t.Fatal(err)
			}
			callsFromProcesses(e, calls, 5)
			time.Sleep(300 * time.Millisecond) // exports are in flight (or failed) by now
			const budget = time.Second
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			start := time.Now()
			e.Shutdown(ctx) //nolint:errcheck // it fails: nothing could be exported
			if took := time.Since(start); took > budget+250*time.Millisecond {
				t.Errorf("Shutdown took %v with a %v budget", took, budget)
			}
			total, by := lossesOf(e, signalTraces)
			if total != calls {
				t.Errorf("%d spans counted lost (%v), want all %d", total, by, calls)
			}
			if by[tc.wantLoss] == 0 {
				t.Errorf("no span lost for %s: %v", tc.wantLoss, by)
			}
			if mtotal, mby := lossesOf(e, signalMetrics); mtotal == 0 {
				t.Errorf("no metric data point counted lost: %v", mby)
			}
			if !strings.Contains(errs.String(), tc.errLogged) {
				t.Errorf("error log %q lacks %q", errs.String(), tc.errLogged)
			}
			// Calls after shutdown are counted too.
			end(e, curl, chatStreamCall())
			if after, _ := lossesOf(e, signalTraces); after != calls+1 {
				t.Errorf("a call after shutdown: %d spans lost, want %d", after, calls+1)
			}
		})
	}
}

// TestQueueFull: with a batch in flight to a collector that never answers,
// the queue fills, the newest spans are dropped and counted, and at
// shutdown the batch in flight and the queued spans are counted too.
func TestQueueFull(t *testing.T) {
	e, err := New(context.Background(), Config{
		Endpoint: otlptest.Silent(t), ConsoleWriter: io.Discard, ErrorWriter: io.Discard, HostName: "testhost",
		MetricInterval: time.Hour, DisableMetrics: true, PairWait: -1,
		SpanQueue: QueueConfig{Size: 10, Batch: 5, Delay: time.Hour, Timeout: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	callsFromProcesses(e, 5, 1) // a full batch: its export starts and hangs
	deadline := time.Now().Add(waitLong)
	for queued(e) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	callsFromProcesses(e, 20, 1)
	if _, by := lossesOf(e, signalTraces); by[LossQueueFull] != 10 {
		t.Errorf("queue_full losses %d, want 10 (%v)", by[LossQueueFull], by)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	e.Shutdown(ctx) //nolint:errcheck // nothing could be exported
	if total, by := lossesOf(e, signalTraces); total != 25 || by[LossShutdown] != 15 {
		t.Errorf("losses %v, want 10 queue_full and 15 shutdown", by)
	}
}

func queued(e *Exporter) int {
	e.spans.q.mu.Lock()
	defer e.spans.q.mu.Unlock()
	return len(e.spans.q.items)
}

// TestLossesOverOTLP: the loss counters reach the collector as the
// observer's own llm_observer.export.dropped, by signal and reason.
func TestLossesOverOTLP(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.HTTPProtobuf, nil)
	e.lost.add(signalTraces, LossQueueFull, 2)
	e.lost.add(signalLogs, LossTimeout, 3)
	flush(t, e)
	pts := rcv.WaitDataPoints(t, metricExportDropped, len(lossSignals)*len(lossReasons), waitLong)
	got := map[string]int64{}
	for _, p := range pts {
		if !p.Monotonic || p.Unit != "{item}" {
			t.Errorf("point %+v is not a counter of items", p)
		}
		got[p.Attributes.Str("llm_observer.signal")+"/"+p.Attributes.Str("reason")] = p.IntValue
	}
	if got["traces/queue_full"] != 2 || got["logs/timeout"] != 3 || got["metrics/shutdown"] != 0 || len(got) != len(lossSignals)*len(lossReasons) {
		t.Errorf("llm_observer.export.dropped points %v", got)
	}
}

func TestErrorLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	l := newErrorLog(&buf, time.Hour)
	for range 100 {
		l.report(signalTraces, errors.New("connection refused"))
	}
	l.report(signalMetrics, errors.New("timeout"))
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Errorf("%d lines for 101 failures of two signals within the interval:\n%s", n, buf.String())
	}
	l.flush()
	if !strings.Contains(buf.String(), "and 98 more failures") {
		t.Errorf("the held-back failures are not summed at exit:\n%s", buf.String())
	}
}

func TestLossReason(t *testing.T) {
	for _, tc := range []struct {
		err      error
		stopping bool
		want     string
	}{
		{context.DeadlineExceeded, false, LossTimeout},
		{fmt.Errorf("traces export: %w", context.DeadlineExceeded), true, LossShutdown},
		{fmt.Errorf("%w: %w", context.DeadlineExceeded, status.Error(codes.Unavailable, "connection refused")), true, LossCollectorDown},
		{fmt.Errorf("%w: %w", context.DeadlineExceeded, status.Error(codes.DeadlineExceeded, "no answer")), false, LossTimeout},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false, LossCollectorDown},
		{errors.New("failed to send to http://c:4318/v1/traces: 400 Bad Request"), false, LossExportFailed},
	} {
		if got := lossReason(tc.err, tc.stopping); got != tc.want {
			t.Errorf("lossReason(%v, %v) = %s, want %s", tc.err, tc.stopping, got, tc.want)
		}
	}
}

// TestMetricPassBounded: a metric pass to a collector that never answers
// costs one MetricTimeout for all processes together, not one per process.
func TestMetricPassBounded(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e, err := New(context.Background(), Config{
		Endpoint: otlptest.Silent(t), ConsoleWriter: io.Discard, ErrorWriter: io.Discard, HostName: "testhost",
		MetricInterval: time.Hour, MetricTimeout: timeout, DisableTraces: true, PairWait: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		e.Shutdown(ctx) //nolint:errcheck // nothing can be exported
	}()
	callsFromProcesses(e, 20, 20)
	start := time.Now()
	if err := e.metricPass(context.Background(), false); err == nil {
		t.Fatal("a pass to a silent collector succeeded")
	}
	if took := time.Since(start); took > 2*timeout {
		t.Errorf("the pass over 20 processes took %v with a %v timeout", took, timeout)
	}
	if total, by := lossesOf(e, signalMetrics); total == 0 || by[LossCollectorDown]+by[LossTimeout] != total {
		t.Errorf("metric losses %v: want the failed request's points, as collector_down or timeout", by)
	}
}
