package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Why telemetry was lost on its way to the collector: the values of the
// reason attribute of llm_observer.export.dropped.
const (
	// LossQueueFull: the export queue was full when the item arrived,
	// because exports could not keep up (a slow or hung collector).
	LossQueueFull = "queue_full"
	// LossCollectorDown: the collector refused or could not be reached.
	LossCollectorDown = "collector_down"
	// LossTimeout: an export got no answer within its timeout.
	LossTimeout = "timeout"
	// LossExportFailed: the collector answered with an error.
	LossExportFailed = "export_failed"
	// LossShutdown: still queued or in flight when the shutdown budget ran
	// out, or made after shutdown began.
	LossShutdown = "shutdown"
)

var (
	lossSignals = [...]string{signalTraces, signalMetrics, signalLogs}
	lossReasons = [...]string{LossQueueFull, LossCollectorDown, LossTimeout, LossExportFailed, LossShutdown}
)

// Loss is how many items of one signal were lost for one reason: spans for
// traces, data points for metrics, log records for logs.
type Loss struct {
	Signal string
	Reason string
	Count  uint64
}

// losses counts what never reached the collector, per signal and reason.
type losses struct {
	n [len(lossSignals)][len(lossReasons)]atomic.Uint64
}

func (l *losses) add(signal, reason string, n int) {
	if n <= 0 {
		return
	}
	for i, s := range lossSignals {
		if s != signal {
			continue
		}
		for j, r := range lossReasons {
			if r == reason {
				l.n[i][j].Add(uint64(n))
				return
			}
		}
	}
}

// all lists every signal and reason, zeros included, so a dashboard sees
// the series before the first loss.
func (l *losses) all() []Loss {
	out := make([]Loss, 0, len(lossSignals)*len(lossReasons))
	for i, s := range lossSignals {
		for j, r := range lossReasons {
			out = append(out, Loss{Signal: s, Reason: r, Count: l.n[i][j].Load()})
		}
	}
	return out
}

// lossReason names why an export failed. The OTLP exporters retry until
// their deadline and then wrap the deadline and the last attempt's error
// together, so the evidence of a collector that refused or could not be
// reached is looked for first. stopping is set once the shutdown budget is
// spent, which is what cut an export short then.
func lossReason(err error, stopping bool) string {
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) && gs.GRPCStatus().Code() == codes.Unavailable {
		return LossCollectorDown
	}
	var op *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || (errors.As(err, &op) && op.Op == "dial") {
		return LossCollectorDown
	}
	switch {
	case stopping:
		return LossShutdown
	case errors.Is(err, context.DeadlineExceeded):
		return LossTimeout
	case errors.As(err, &gs) && gs.GRPCStatus().Code() == codes.DeadlineExceeded:
		return LossTimeout
	}
	return LossExportFailed
}

// errorLog writes export failures to the operator at most once per signal
// per interval, with the count of those it held back: a collector that is
// down must not fill the observer's log with one line per export.
type errorLog struct {
	w        io.Writer
	interval time.Duration

	mu   sync.Mutex
	sigs map[string]*errorLogState
}

type errorLogState struct {
	last    time.Time // when a line was last written
	held    int       // failures since then not written
	lastErr error
}

func newErrorLog(w io.Writer, interval time.Duration) *errorLog {
	return &errorLog{w: w, interval: interval, sigs: map[string]*errorLogState{}}
}

func (l *errorLog) report(signal string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.sigs[signal]
	if st == nil {
		st = &errorLogState{}
		l.sigs[signal] = st
	}
	now := time.Now()
	if !st.last.IsZero() && now.Sub(st.last) < l.interval {
		st.held++
		st.lastErr = err
		return
	}
	l.write(signal, err, st.held)
	st.last, st.held, st.lastErr = now, 0, nil
}

// flush writes what was held back, at exit.
func (l *errorLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for signal, st := range l.sigs {
		if st.held > 0 {
			l.write(signal, st.lastErr, st.held-1)
			st.held = 0
		}
	}
}

func (l *errorLog) write(signal string, err error, held int) {
	if held > 0 {
		fmt.Fprintf(l.w, "llm-observer: export %s: %v (and %d more failures in the last %v)\n", signal, err, held, l.interval)
		return
	}
	fmt.Fprintf(l.w, "llm-observer: export %s: %v\n", signal, err)
}

// QueueConfig bounds one export queue, as the OTEL_BSP_* and OTEL_BLRP_*
// variables do for the SDK's batch processors.
type QueueConfig struct {
	// Size is the most items waiting; beyond it new items are dropped and
	// counted as queue_full.
	Size int
	// Batch is the most items per export request.
	Batch int
	// Delay is the longest an item waits before its batch is sent.
	Delay time.Duration
	// Timeout bounds one export request.
	Timeout time.Duration
}

// batchQueue is the bounded queue between the data path and one signal's
// OTLP exporter. Adding never blocks; one goroutine exports batches, one
// request at a time, each bounded by the queue's timeout and by the
// exporter's lifetime context, which Shutdown cancels when its budget is
// spent. Every item that does not reach the collector is counted.
type batchQueue[T any] struct {
	signal string
	cfg    QueueConfig
	export func(context.Context, []T) error
	close  func(context.Context) error // shuts the exporter down
	lost   *losses
	log    *errorLog
	failed func(context.Context) // counts a failed request

	mu     sync.Mutex
	items  []T
	closed bool

	exportMu sync.Mutex // one export request at a time
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}

	// life ends the queue's exports; Shutdown cancels it at its deadline.
	life     context.Context
	endLife  context.CancelFunc
	stopping atomic.Bool
}

func newBatchQueue[T any](signal string, cfg QueueConfig, export func(context.Context, []T) error, closeExporter func(context.Context) error,
	lost *losses, log *errorLog, failed func(context.Context)) *batchQueue[T] {
	q := &batchQueue[T]{
		signal: signal, cfg: cfg, export: export, close: closeExporter, lost: lost, log: log, failed: failed,
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	q.life, q.endLife = context.WithCancel(context.Background())
	go q.run()
	return q
}

// add queues an item, or counts it lost when the queue is full or closed.
func (q *batchQueue[T]) add(item T) {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		q.lost.add(q.signal, LossShutdown, 1)
		return
	case len(q.items) >= q.cfg.Size:
		q.mu.Unlock()
		q.lost.add(q.signal, LossQueueFull, 1)
		return
	}
	q.items = append(q.items, item)
	full := len(q.items) >= q.cfg.Batch
	q.mu.Unlock()
	if full {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

func (q *batchQueue[T]) run() {
	defer close(q.done)
	timer := time.NewTimer(q.cfg.Delay)
	defer timer.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-timer.C:
		case <-q.kick:
		}
		// select picks among ready cases at random: a stop must win over a
		// due batch, or the loop could keep exporting after Shutdown began.
		select {
		case <-q.stop:
			return
		default:
		}
		q.drain(q.life) //nolint:errcheck // counted and logged by send
		timer.Reset(q.cfg.Delay)
	}
}

// drain exports the items queued when it starts, in batches, and stops at
// the first failure (the collector is likely to fail the next batch too;
// what is left waits for the next round) or when ctx ends.
func (q *batchQueue[T]) drain(ctx context.Context) error {
	q.exportMu.Lock()
	defer q.exportMu.Unlock()
	q.mu.Lock()
	todo := len(q.items)
	q.mu.Unlock()
	for todo > 0 && ctx.Err() == nil {
		q.mu.Lock()
		n := min(todo, q.cfg.Batch, len(q.items))
		batch := slices.Clone(q.items[:n])
		rest := copy(q.items, q.items[n:])
		clear(q.items[rest:]) // no stale references for the collector to keep alive
		q.items = q.items[:rest]
		q.mu.Unlock()
		if n == 0 {
			break
		}
		todo -= n
		if err := q.send(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// send exports one batch; a batch that fails is lost and counted, not
// retried here (the OTLP exporters retry within the timeout themselves).
func (q *batchQueue[T]) send(ctx context.Context, batch []T) error {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	err := q.export(ctx, batch)
	if err == nil {
		return nil
	}
	q.failed(context.Background())
	q.lost.add(q.signal, lossReason(err, q.stopping.Load() || q.life.Err() != nil), len(batch))
	q.log.report(q.signal, err)
	return fmt.Errorf("export %s: %w", q.signal, err)
}

// flush exports everything queued now, within ctx.
func (q *batchQueue[T]) flush(ctx context.Context) error {
	ctx, cancel := mergeDone(ctx, q.life)
	defer cancel()
	return q.drain(ctx)
}

// shutdown stops the loop, exports what is queued until ctx ends and
// counts the rest as lost. An export in flight when ctx ends is cut short.
func (q *batchQueue[T]) shutdown(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	stopAtDeadline := context.AfterFunc(ctx, func() {
		q.stopping.Store(true)
		q.endLife()
	})
	defer stopAtDeadline()
	close(q.stop)
	select {
	case <-q.done:
	case <-ctx.Done():
	}
	err := q.flush(ctx)
	q.mu.Lock()
	left := len(q.items)
	q.items = nil
	q.mu.Unlock()
	q.lost.add(q.signal, LossShutdown, left)
	q.endLife()
	return err
}

// closeExporter shuts the queue (if Shutdown has not) and its exporter down.
func (q *batchQueue[T]) closeExporter(ctx context.Context) error {
	return errors.Join(q.shutdown(ctx), q.close(ctx))
}

// mergeDone returns a context that ends when either ctx or other does.
func mergeDone(ctx, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}

// logQueue is the logs pipeline's processor: each record is copied (the
// SDK reuses it) into a batchQueue.
type logQueue struct {
	q *batchQueue[sdklog.Record]
}

func newLogQueue(exp sdklog.Exporter, cfg QueueConfig, lost *losses, log *errorLog, failed func(context.Context)) *logQueue {
	return &logQueue{q: newBatchQueue(signalLogs, cfg, exp.Export, exp.Shutdown, lost, log, failed)}
}

func (*logQueue) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

func (l *logQueue) OnEmit(_ context.Context, r *sdklog.Record) error {
	l.q.add(r.Clone())
	return nil
}

func (l *logQueue) ForceFlush(ctx context.Context) error { return l.q.flush(ctx) }
func (l *logQueue) Shutdown(ctx context.Context) error   { return l.q.shutdown(ctx) }
