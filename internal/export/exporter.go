package export

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// Exporter turns calls into telemetry. Its methods are safe for concurrent
// use; CallStarted and CallEnded never block on the network.
type Exporter struct {
	cfg        Config
	limits     spanLimits // OTEL_SPAN_ATTRIBUTE_* limits, applied as spans are encoded
	emitSystem bool
	content    contentPolicy
	console    *console // nil when the console is off

	// Shared by every process's providers; nil when the signal is off.
	spans   *spanQueue
	logs    *logQueue
	metrics sdkmetric.Exporter

	// lost counts what never reached the collector; errLog reports export
	// failures at most once a minute per signal.
	lost   losses
	errLog *errorLog

	temporality sdkmetric.TemporalitySelector
	procs       *processTable
	pairs       *pairing     // nil when traces are off
	tools       *toolTracker // nil when traces are off

	self           *sdkmetric.MeterProvider // nil when metrics are off
	selfReader     *sdkmetric.ManualReader
	selfMeter      metric.Meter
	exportFailures metric.Int64Counter

	collectMu sync.Mutex // one collection pass at a time
	scratch   metricdata.ResourceMetrics

	// stop ends the loops; life is the context of their exports, which
	// Shutdown cancels when its budget is spent.
	stop     chan struct{}
	life     context.Context
	endLife  context.CancelFunc
	loops    sync.WaitGroup
	closed   atomic.Bool
	shutOnce sync.Once
	shutErr  error
}

// New builds an exporter from cfg. With OTLP on it creates one exporter per
// enabled signal (connections are made lazily by the OTLP clients, so an
// unreachable collector does not fail New).
func New(ctx context.Context, cfg Config) (*Exporter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	red, err := newRedactor(cfg.Redact)
	if err != nil {
		return nil, err
	}
	// Span encoding cuts attribute values beyond OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
	// (or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT) blindly, as the SDK does, which
	// would leave content JSON invalid; capping it here first keeps it whole.
	limits := newSpanLimits()
	if limit := limits.valueLen; limit > 0 && limit < cfg.ContentMaxBytes {
		cfg.ContentMaxBytes = limit
	}
	e := &Exporter{
		cfg:        cfg,
		limits:     limits,
		emitSystem: cfg.EmitGenAISystem && !cfg.LatestGenAIConventions,
		content: contentPolicy{
			capture:  cfg.CaptureContent,
			dest:     cfg.ContentDestination,
			maxBytes: cfg.ContentMaxBytes,
			redactor: red,
		},
		stop:      make(chan struct{}),
		selfMeter: metricnoop.NewMeterProvider().Meter(scopeName),
		errLog:    newErrorLog(cfg.ErrorWriter, errorLogInterval),
	}
	e.life, e.endLife = context.WithCancel(context.Background())
	if cfg.Console {
		e.console = &console{w: cfg.ConsoleWriter}
	}
	if cfg.OTLP {
		if err := e.startOTLP(ctx); err != nil {
			e.closeExporters(ctx)
			return nil, err
		}
	}
	e.procs = newProcessTable(cfg.MaxProcesses, cfg.ProcessIdleTimeout, e.newProcessTelemetry)
	if e.spans != nil {
		e.pairs = newPairing(cfg.PairWait)
		e.tools = newToolTracker(cfg.toolWait)
		e.loops.Add(1)
		go e.pairLoop()
	}
	if cfg.OTLP {
		e.loops.Add(1)
		go e.collectLoop()
	}
	return e, nil
}

func (e *Exporter) startOTLP(ctx context.Context) error {
	cfg := e.cfg
	if !cfg.DisableMetrics {
		exp, err := newMetricExporter(ctx, cfg)
		if err != nil {
			return fmt.Errorf("OTLP metric exporter: %w", err)
		}
		e.metrics = exp
		switch cfg.Temporality {
		case TemporalityDelta:
			e.temporality = sdkmetric.DeltaTemporalitySelector
		case TemporalityLowMemory:
			e.temporality = sdkmetric.LowMemoryTemporalitySelector
		default:
			e.temporality = sdkmetric.CumulativeTemporalitySelector
		}
		e.selfReader = sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(e.temporality))
		e.self = sdkmetric.NewMeterProvider(sdkmetric.WithResource(e.selfResource()), sdkmetric.WithReader(e.selfReader))
		e.selfMeter = e.self.Meter(scopeName, metric.WithSchemaURL(semconv.SchemaURL))
	}
	var err error
	e.exportFailures, err = e.selfMeter.Int64Counter(metricExportFailures,
		metric.WithDescription("Export requests that failed, by signal; their data is lost."),
		metric.WithUnit("{request}"))
	if err != nil {
		return err
	}
	if _, err := e.selfMeter.Int64ObservableCounter(metricExportDropped,
		metric.WithDescription("Telemetry that never reached the collector, by signal (spans, metric data points, log records) and reason."),
		metric.WithUnit("{item}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for _, l := range e.lost.all() {
				o.Observe(int64(l.Count), metric.WithAttributes(keySignal.String(l.Signal), keyLossReason.String(l.Reason)))
			}
			return nil
		})); err != nil {
		return err
	}
	if _, err := e.selfMeter.Int64ObservableGauge(metricProcesses,
		metric.WithDescription("Observed processes that currently have telemetry providers."),
		metric.WithUnit("{process}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.procs.len()))
			return nil
		})); err != nil {
		return err
	}

	if !cfg.DisableTraces {
		client, err := newSpanClient(ctx, cfg)
		if err != nil {
			return fmt.Errorf("OTLP trace exporter: %w", err)
		}
		e.spans = newSpanQueue(client, cfg.SpanQueue, &e.lost, e.errLog, e.failed(signalTraces))
	}
	if !cfg.DisableLogs && e.content.enabled() && cfg.ContentDestination.toLog() {
		exp, err := newLogExporter(ctx, cfg)
		if err != nil {
			return fmt.Errorf("OTLP log exporter: %w", err)
		}
		e.logs = newLogQueue(exp, cfg.LogQueue, &e.lost, e.errLog, e.failed(signalLogs))
	}
	return nil
}

// selfResource describes the observer itself.
func (e *Exporter) selfResource() *resource.Resource {
	attrs := append([]attribute.KeyValue(nil), e.cfg.ResourceAttributes...)
	if e.cfg.HostName != "" {
		attrs = append(attrs, semconv.HostName(e.cfg.HostName))
	}
	attrs = append(attrs, semconv.ProcessPID(os.Getpid()), semconv.ServiceName(e.cfg.SelfServiceName))
	return resource.NewWithAttributes(semconv.SchemaURL, attrs...)
}

func (e *Exporter) failed(signal string) func(context.Context) {
	set := metric.WithAttributes(keySignal.String(signal))
	return func(ctx context.Context) { e.exportFailures.Add(ctx, 1, set) }
}

// signalURL turns a base endpoint into an OTLP/HTTP signal URL, the way the
// OTEL_EXPORTER_OTLP_ENDPOINT variable is interpreted.
func signalURL(base, signalPath string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + signalPath
	return u.String()
}

// reconnect caps gRPC's reconnection backoff at 5 s instead of its default
// 120 s, so that telemetry flows again within seconds of a collector's
// return rather than being dropped for up to two more minutes.
var reconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
	MinConnectTimeout: 5 * time.Second,
})

// newSpanClient starts the OTLP trace client the span queue sends through;
// spans are encoded by spanwire.go, not by the SDK's exporter.
func newSpanClient(ctx context.Context, cfg Config) (otlptrace.Client, error) {
	var client otlptrace.Client
	if cfg.TracesProtocol == ProtocolHTTPProtobuf {
		var opts []otlptracehttp.Option
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(signalURL(cfg.Endpoint, "/v1/traces")))
		}
		client = otlptracehttp.NewClient(opts...)
	} else {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithDialOption(reconnect)}
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		}
		client = otlptracegrpc.NewClient(opts...)
	}
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return client, nil
}

func newMetricExporter(ctx context.Context, cfg Config) (sdkmetric.Exporter, error) {
	if cfg.MetricsProtocol == ProtocolHTTPProtobuf {
		var opts []otlpmetrichttp.Option
		if cfg.Endpoint != "" {
			opts = append(opts, otlpmetrichttp.WithEndpointURL(signalURL(cfg.Endpoint, "/v1/metrics")))
		}
		return otlpmetrichttp.New(ctx, opts...)
	}
	opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithDialOption(reconnect)}
	if cfg.Endpoint != "" {
		opts = append(opts, otlpmetricgrpc.WithEndpointURL(cfg.Endpoint))
	}
	return otlpmetricgrpc.New(ctx, opts...)
}

func newLogExporter(ctx context.Context, cfg Config) (sdklog.Exporter, error) {
	if cfg.LogsProtocol == ProtocolHTTPProtobuf {
		var opts []otlploghttp.Option
		if cfg.Endpoint != "" {
			opts = append(opts, otlploghttp.WithEndpointURL(signalURL(cfg.Endpoint, "/v1/logs")))
		}
		return otlploghttp.New(ctx, opts...)
	}
	opts := []otlploggrpc.Option{otlploggrpc.WithDialOption(reconnect)}
	if cfg.Endpoint != "" {
		opts = append(opts, otlploggrpc.WithEndpointURL(cfg.Endpoint))
	}
	return otlploggrpc.New(ctx, opts...)
}

// sharedLogProcessor lets every process's logger provider feed the
// exporter's one batch processor. A provider shuts down when its process is
// retired; that must not stop the pipeline the other providers still use,
// so Shutdown here does nothing and the exporter shuts the real processor
// down itself.
type sharedLogProcessor struct{ sdklog.Processor }

func (sharedLogProcessor) Shutdown(context.Context) error { return nil }

// newProcessTelemetry builds the providers of one observed process.
func (e *Exporter) newProcessTelemetry(p *Process) *processTelemetry {
	pt := &processTelemetry{}
	if !e.cfg.OTLP {
		return pt
	}
	res := e.processResource(p)
	if e.spans != nil {
		pt.spanRes = newSpanResource(res)
	}
	if e.metrics != nil {
		pt.reader = sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(e.temporality))
		pt.mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(pt.reader))
		ins, err := newInstruments(pt.mp.Meter(scopeName, metric.WithSchemaURL(semconv.SchemaURL)))
		if err != nil {
			otel.Handle(fmt.Errorf("instruments for process %d: %w", p.PID, err))
		}
		pt.inst = ins
	}
	if e.logs != nil {
		pt.lp = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sharedLogProcessor{e.logs}))
		pt.logger = pt.lp.Logger(scopeName, otellog.WithSchemaURL(semconv.SchemaURL))
	}
	return pt
}

// CallStarted notes that a request was recognised: it counts the call as
// active and, for a client call, reserves its span's IDs so that the server
// side of the same exchange can name it as parent whichever ends first.
func (e *Exporter) CallStarted(p *Process, c *genai.Call) {
	if e.closed.Load() || !e.cfg.OTLP || c == nil {
		return
	}
	c.ScrubCredentials(redactedText)
	now := time.Now()
	pt := e.procs.acquire(p, now)
	defer e.procs.release(pt)
	if pt.inst != nil && c.MCP == nil { // MCP messages have no active-request count
		a := pt.inst.sets.activeOf(e, c)
		if pt.started(c, a) {
			pt.inst.side(c).active.Add(context.Background(), 1, a.add...)
		}
	}
	e.toolsAnswered(p, pt, c, now)
	e.mcpUnderTool(p, c)
	if e.pairs != nil && c.Endpoint.ClientSide {
		if self, held := e.pairs.client(c, false, now); held != nil {
			e.emitHeld(held, self)
		}
	}
}

// CallEnded exports a complete call: console line, metrics, span and, when
// content goes to logs, its event record. The exporter may keep c for up to
// Config.PairWait (a server call waiting for its client), so the caller must
// not modify c afterwards.
func (e *Exporter) CallEnded(p *Process, c *genai.Call) {
	if c == nil {
		return
	}
	if e.closed.Load() {
		if e.spans != nil {
			e.lost.add(signalTraces, LossShutdown, 1)
		}
		return
	}
	// Whatever the server echoed of the request's own credentials goes
	// before anything of the call is printed or recorded.
	c.ScrubCredentials(redactedText)
	if e.console != nil {
		e.console.print(p, c)
	}
	if !e.cfg.OTLP {
		return
	}
	now := time.Now()
	pt := e.procs.acquire(p, now)
	if pt.inst != nil {
		if a, ok := pt.ended(c); ok {
			pt.inst.side(c).active.Add(context.Background(), -1, a.add...)
		}
		e.record(pt.inst, c)
	}
	e.mcpUnderTool(p, c)
	if e.spans == nil && e.logs == nil {
		e.procs.release(pt)
		return
	}
	if e.pairs == nil {
		e.emit(pt, c, trace.SpanContext{}, trace.SpanContext{})
		e.procs.release(pt)
		return
	}
	if c.Endpoint.ClientSide {
		self, held := e.pairs.client(c, true, now)
		sc := e.emit(pt, c, self, trace.SpanContext{})
		e.procs.release(pt)
		e.toolsAsked(p, c, sc, now)
		if held != nil {
			e.emitHeld(held, sc)
		}
		return
	}
	parent, held := e.pairs.server(pt, c, now)
	if held {
		return // pt stays acquired until the call is emitted
	}
	e.emit(pt, c, trace.SpanContext{}, parent)
	e.procs.release(pt)
}

// emitHeld emits a server call that waited for its client, as the child of
// the client's span.
func (e *Exporter) emitHeld(h *heldCall, parent trace.SpanContext) {
	e.emit(h.pt, h.call, trace.SpanContext{}, parent)
	e.procs.release(h.pt)
}

// pairLoop emits the server calls whose client never showed up.
func (e *Exporter) pairLoop() {
	defer e.loops.Done()
	period := 250 * time.Millisecond
	if w := e.cfg.PairWait; w > 0 {
		period = min(period, max(w/4, 10*time.Millisecond))
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case now := <-tick.C:
			if e.stopping() {
				return
			}
			e.emitUnpaired(e.pairs.expire(now))
			e.tools.expire(now)
		}
	}
}

// stopping reports whether Shutdown has begun. The loops check it after a
// select, which picks among ready cases at random: without it a due tick
// could win over the stop and start another round of exports.
func (e *Exporter) stopping() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

func (e *Exporter) emitUnpaired(calls []*heldCall) {
	for _, h := range calls {
		e.emit(h.pt, h.call, trace.SpanContext{}, trace.SpanContext{})
		e.procs.release(h.pt)
	}
}

// collectLoop exports metrics every MetricInterval and retires processes that
// went idle or were pushed out of the table.
func (e *Exporter) collectLoop() {
	defer e.loops.Done()
	collect := time.NewTicker(e.cfg.MetricInterval)
	defer collect.Stop()
	housekeeping := time.NewTicker(max(min(e.cfg.ProcessIdleTimeout/4, 30*time.Second), 10*time.Millisecond))
	defer housekeeping.Stop()
	for {
		var now time.Time
		retireOnly := true
		select {
		case <-e.stop:
			return
		case <-collect.C:
			retireOnly = false
		case now = <-housekeeping.C:
		case <-e.procs.wake:
		}
		if e.stopping() {
			return
		}
		if !now.IsZero() {
			e.procs.retireIdle(now)
		}
		e.metricPass(e.life, retireOnly) //nolint:errcheck // failures are counted and logged where they happen
	}
}

// metricPass exports the last metrics of retired processes and, unless
// retireOnly, every live process's and the observer's own. The whole pass
// shares one MetricTimeout, so a hung collector costs one timeout per pass,
// not one per process.
func (e *Exporter) metricPass(ctx context.Context, retireOnly bool) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.MetricTimeout)
	defer cancel()
	err := e.retire(ctx)
	if !retireOnly {
		err = errors.Join(err, e.collectAll(ctx))
	}
	return err
}

// retire exports the last metrics of retired processes and shuts their
// providers down. Their readers go with them, so each is collected even
// after a failure; once ctx has ended that costs nothing but the count of
// what was lost.
func (e *Exporter) retire(ctx context.Context) error {
	var errs []error
	for _, pt := range e.procs.takeRetiring() {
		if pt.reader != nil {
			errs = append(errs, e.collect(ctx, pt.reader))
		}
		errs = append(errs, pt.shutdown(ctx))
	}
	return errors.Join(errs...)
}

// collectAll collects every process's metrics and the observer's own, one
// export request per resource: the OTLP metric exporter takes one resource
// per call. It stops at the first failed export: a collector that failed
// one request fails the next too, and a reader not collected keeps its
// data for the next pass (cumulative sums as they are, delta sums still
// accumulating), so nothing is lost by waiting.
func (e *Exporter) collectAll(ctx context.Context) error {
	if e.metrics == nil {
		return nil
	}
	for _, pt := range e.procs.snapshot() {
		if err := e.collect(ctx, pt.reader); err != nil {
			return err
		}
	}
	return e.collect(ctx, e.selfReader)
}

func (e *Exporter) collect(ctx context.Context, r *sdkmetric.ManualReader) error {
	if r == nil || e.metrics == nil {
		return nil
	}
	e.collectMu.Lock()
	defer e.collectMu.Unlock()
	// Collecting only reads memory; it must happen even past the deadline
	// so that what is lost can be counted.
	if err := r.Collect(context.WithoutCancel(ctx), &e.scratch); err != nil {
		if errors.Is(err, sdkmetric.ErrReaderShutdown) {
			return nil
		}
		return err
	}
	if !hasDataPoints(&e.scratch) {
		return nil
	}
	err := ctx.Err()
	if err == nil {
		if err = e.metrics.Export(ctx, &e.scratch); err == nil {
			return nil
		}
		e.exportFailures.Add(context.Background(), 1, metric.WithAttributes(keySignal.String(signalMetrics)))
		e.errLog.report(signalMetrics, err)
	}
	e.lost.add(signalMetrics, lossReason(err, e.life.Err() != nil), dataPoints(&e.scratch))
	return fmt.Errorf("export metrics: %w", err)
}

func hasDataPoints(rm *metricdata.ResourceMetrics) bool {
	for _, sm := range rm.ScopeMetrics {
		if len(sm.Metrics) > 0 {
			return true
		}
	}
	return false
}

// dataPoints counts the points of rm, what a failed metric export loses.
func dataPoints(rm *metricdata.ResourceMetrics) int {
	n := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				n += len(d.DataPoints)
			case metricdata.Sum[float64]:
				n += len(d.DataPoints)
			case metricdata.Gauge[int64]:
				n += len(d.DataPoints)
			case metricdata.Gauge[float64]:
				n += len(d.DataPoints)
			case metricdata.Histogram[int64]:
				n += len(d.DataPoints)
			case metricdata.Histogram[float64]:
				n += len(d.DataPoints)
			default:
				n++
			}
		}
	}
	return n
}

// SelfMeter is a meter under the observer's own resource (service.name
// llm-observer unless OTEL_SERVICE_NAME says otherwise) for its health
// counters. It records nothing when metrics are not exported over OTLP.
func (e *Exporter) SelfMeter() metric.Meter { return e.selfMeter }

// Losses returns how much telemetry never reached the collector, per
// signal and reason, zeros included.
func (e *Exporter) Losses() []Loss { return e.lost.all() }

// ForceFlush exports everything recorded so far: held server calls wait on,
// as their clients may still come.
func (e *Exporter) ForceFlush(ctx context.Context) error {
	if !e.cfg.OTLP {
		return nil
	}
	errs := []error{e.retire(ctx), e.collectAll(ctx)}
	if e.spans != nil {
		errs = append(errs, e.spans.ForceFlush(ctx))
	}
	if e.logs != nil {
		errs = append(errs, e.logs.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

// Shutdown emits the calls still waiting for a partner, exports what it
// can before ctx ends and closes the exporters; calls arriving afterwards
// are dropped and counted. It returns by ctx's deadline whatever the
// collector does: the loops stop at once (an export they have in flight
// is cut at the deadline), then spans, logs and the last metrics are
// flushed side by side, each under ctx, and whatever is still queued when
// ctx ends is counted lost with reason shutdown.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.shutOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		cutAtDeadline := context.AfterFunc(ctx, e.endLife)
		defer cutAtDeadline()
		defer e.endLife()
		defer e.errLog.flush()
		loopsDone := make(chan struct{})
		go func() {
			e.loops.Wait()
			close(loopsDone)
		}()
		select {
		case <-loopsDone:
		case <-ctx.Done():
		}
		if !e.cfg.OTLP {
			return
		}
		if e.pairs != nil {
			e.emitUnpaired(e.pairs.expire(time.Now().Add(openCallLimit + time.Hour)))
		}

		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		flush := func(f func() error) {
			wg.Go(func() {
				err := f()
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
		if e.spans != nil {
			flush(func() error { return e.spans.Shutdown(ctx) })
		}
		if e.logs != nil {
			flush(func() error { return e.logs.Shutdown(ctx) })
		}
		flush(func() error {
			// Retiring collects each process's metrics one last time.
			e.procs.retireAll()
			err := e.retire(ctx)
			if e.self != nil {
				err = errors.Join(err, e.collect(ctx, e.selfReader), e.self.Shutdown(ctx))
			}
			return err
		})
		wg.Wait()
		errs = append(errs, e.closeExporters(ctx))
		e.shutErr = errors.Join(errs...)
	})
	return e.shutErr
}

// closeExporters closes the OTLP clients. The queues were shut down by
// Shutdown already; when New fails they never started.
func (e *Exporter) closeExporters(ctx context.Context) error {
	var errs []error
	if e.spans != nil {
		errs = append(errs, e.spans.q.closeExporter(ctx))
	}
	if e.logs != nil {
		errs = append(errs, e.logs.q.closeExporter(ctx))
	}
	if e.metrics != nil {
		errs = append(errs, e.metrics.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
