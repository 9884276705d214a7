package export

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// Process identifies the observed process that made or served a call; it
// becomes the telemetry's resource.
type Process struct {
	// PID is the process id as the host sees it (not a container's).
	PID int
	// StartTime is when the process started; with PID it tells a reused PID
	// from the process that had it before. Zero when unknown.
	StartTime time.Time
	// ExecutableName is the executable's base name, e.g. "python3".
	ExecutableName string
	// ExecutablePath is the executable's full path.
	ExecutablePath string
	// Command is the command the process was started as (argv[0]); it is
	// still passed through the redactor. The full command line is not
	// taken: people pass credentials there (curl -H, -u).
	Command string
	// ServiceName is resolved by the agent (configuration, Kubernetes
	// workload, else the executable name).
	ServiceName string
	// Attributes are extra resource attributes (k8s.*, container.id, …).
	Attributes []attribute.KeyValue
}

// processKey is what makes two Process values the same resource. A changed
// executable (exec) or service name gives a new resource; the old one is
// retired when idle.
type processKey struct {
	pid     int
	start   int64
	exe     string
	service string
}

func keyOfProcess(p *Process) processKey {
	k := processKey{pid: p.PID, exe: p.ExecutablePath, service: p.ServiceName}
	if !p.StartTime.IsZero() {
		k.start = p.StartTime.UnixNano()
	}
	if k.exe == "" {
		k.exe = p.ExecutableName
	}
	return k
}

// processTelemetry holds the providers and instruments of one observed
// process. Its traces and logs go into the exporter's shared batch
// processors; its metrics are pulled through reader by the exporter's
// collection loop.
type processTelemetry struct {
	key processKey
	// spanRes is the encoded resource of the process's spans; nil when
	// traces are off.
	spanRes *spanResource
	mp      *sdkmetric.MeterProvider // nil when metrics are off
	reader  *sdkmetric.ManualReader
	inst    *instruments
	lp      *sdklog.LoggerProvider // nil when no log records are made
	logger  otellog.Logger

	// Guarded by processTable.mu.
	lastUsed time.Time
	users    int

	activeMu sync.Mutex
	active   map[callKey]activeSet // started calls, with the attributes counted
}

// callKey identifies one call between its start and end hooks.
type callKey struct {
	exchange   exchangeKey
	start      int64
	clientSide bool
}

func callKeyOf(c *genai.Call) callKey {
	k, _ := exchangeKeyOf(c)
	return callKey{exchange: k, start: c.Start.UnixNano(), clientSide: c.Endpoint.ClientSide}
}

// maxActivePerProcess bounds the started-call table of a process whose calls
// never end (a bug upstream must not grow memory without bound).
const maxActivePerProcess = 4096

// started counts c as active and reports the attributes it was counted with.
func (pt *processTelemetry) started(c *genai.Call, set activeSet) bool {
	pt.activeMu.Lock()
	defer pt.activeMu.Unlock()
	if pt.active == nil {
		pt.active = map[callKey]activeSet{}
	}
	k := callKeyOf(c)
	if _, dup := pt.active[k]; dup || len(pt.active) >= maxActivePerProcess {
		return false
	}
	pt.active[k] = set
	return true
}

// ended forgets c and returns the attributes it was counted with, so the
// decrement matches the increment even if the call learnt more meanwhile.
func (pt *processTelemetry) ended(c *genai.Call) (activeSet, bool) {
	pt.activeMu.Lock()
	defer pt.activeMu.Unlock()
	k := callKeyOf(c)
	set, ok := pt.active[k]
	delete(pt.active, k)
	return set, ok
}

// shutdown releases the providers. Spans and records already handed to the
// shared processors stay there and are exported with the rest.
func (pt *processTelemetry) shutdown(ctx context.Context) error {
	var errs []error
	if pt.mp != nil {
		errs = append(errs, pt.mp.Shutdown(ctx))
	}
	if pt.lp != nil {
		errs = append(errs, pt.lp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// processTable caches processTelemetry by process, creating it on first use
// and retiring it after idle time or when the table is full.
type processTable struct {
	mu       sync.Mutex
	byKey    map[processKey]*processTelemetry
	retiring []*processTelemetry
	max      int
	idle     time.Duration
	create   func(*Process) *processTelemetry
	wake     chan struct{} // tells the collection loop there is something to retire
}

func newProcessTable(maxProcs int, idle time.Duration, create func(*Process) *processTelemetry) *processTable {
	return &processTable{
		byKey:  map[processKey]*processTelemetry{},
		max:    maxProcs,
		idle:   idle,
		create: create,
		wake:   make(chan struct{}, 1),
	}
}

// unknownProcess stands in when a call arrives without its process.
var unknownProcess = &Process{}

// acquire returns p's telemetry, creating it if needed, and keeps it from
// being retired until release.
func (t *processTable) acquire(p *Process, now time.Time) *processTelemetry {
	if p == nil {
		p = unknownProcess
	}
	k := keyOfProcess(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.byKey[k]
	if pt == nil {
		if len(t.byKey) >= t.max {
			t.evictLeastRecent()
		}
		pt = t.create(p)
		pt.key = k
		t.byKey[k] = pt
	}
	pt.users++
	pt.lastUsed = now
	return pt
}

func (t *processTable) release(pt *processTelemetry) {
	t.mu.Lock()
	pt.users--
	t.mu.Unlock()
}

// evictLeastRecent retires the least recently used process nobody is using.
// If every one is in use the table grows past max for a moment instead.
func (t *processTable) evictLeastRecent() {
	var lru *processTelemetry
	for _, pt := range t.byKey {
		if pt.users == 0 && (lru == nil || pt.lastUsed.Before(lru.lastUsed)) {
			lru = pt
		}
	}
	if lru != nil {
		t.retireLocked(lru)
	}
}

func (t *processTable) retireLocked(pt *processTelemetry) {
	delete(t.byKey, pt.key)
	t.retiring = append(t.retiring, pt)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// retireIdle retires the processes without calls since idle before now and
// without calls in flight.
func (t *processTable) retireIdle(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, pt := range t.byKey {
		if pt.users > 0 || now.Sub(pt.lastUsed) < t.idle {
			continue
		}
		pt.activeMu.Lock()
		busy := len(pt.active) > 0
		pt.activeMu.Unlock()
		if !busy {
			t.retireLocked(pt)
		}
	}
}

// takeRetiring hands the retired processes to the caller, which flushes and
// shuts them down.
func (t *processTable) takeRetiring() []*processTelemetry {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.retiring
	t.retiring = nil
	return out
}

// snapshot lists the live processes.
func (t *processTable) snapshot() []*processTelemetry {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*processTelemetry, 0, len(t.byKey))
	for _, pt := range t.byKey {
		out = append(out, pt)
	}
	return out
}

// retireAll retires every process, for shutdown.
func (t *processTable) retireAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, pt := range t.byKey {
		t.retireLocked(pt)
	}
}

func (t *processTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}

// processResource is the resource of an observed process. Later entries win:
// OTEL_RESOURCE_ATTRIBUTES, then the host, the process, the agent's extra
// attributes, and the service name last.
func (e *Exporter) processResource(p *Process) *resource.Resource {
	attrs := make([]attribute.KeyValue, 0, len(e.cfg.ResourceAttributes)+8+len(p.Attributes))
	attrs = append(attrs, e.cfg.ResourceAttributes...)
	if e.cfg.HostName != "" {
		attrs = append(attrs, semconv.HostName(e.cfg.HostName))
	}
	if p.PID > 0 {
		attrs = append(attrs, semconv.ProcessPID(p.PID))
	}
	if p.ExecutableName != "" {
		attrs = append(attrs, semconv.ProcessExecutableName(p.ExecutableName))
	}
	if p.ExecutablePath != "" {
		attrs = append(attrs, semconv.ProcessExecutablePath(p.ExecutablePath))
	}
	if p.Command != "" {
		attrs = append(attrs, semconv.ProcessCommand(e.content.redactor.redact(p.Command)))
	}
	if !p.StartTime.IsZero() {
		attrs = append(attrs, semconv.ProcessCreationTime(p.StartTime.UTC().Format(time.RFC3339Nano)))
	}
	attrs = append(attrs, p.Attributes...)
	attrs = append(attrs, semconv.ServiceName(serviceName(p)))
	return resource.NewWithAttributes(semconv.SchemaURL, attrs...)
}

func serviceName(p *Process) string {
	switch {
	case p.ServiceName != "":
		return p.ServiceName
	case p.ExecutableName != "":
		return p.ExecutableName
	}
	return "unknown_service"
}
