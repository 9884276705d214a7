// Command llm-observer watches the LLM API traffic of every process on the
// host through eBPF and reports each call as OpenTelemetry GenAI spans,
// metrics and logs, or as a console line when no OTLP endpoint is set.
//
// Usage:
//
//	llm-observer [flags]        run until SIGINT or SIGTERM
//	llm-observer check          report the kernel features it needs
//	llm-observer top [flags]    a live view of the calls and the observer's health
//	llm-observer version
//
// Every setting is an environment variable, most also a flag, which wins;
// internal/config lists them.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/config"
	"github.com/llm-observer/llm-observer/internal/discover"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/feed"
	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/health"
	"github.com/llm-observer/llm-observer/internal/observer"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = run(args)
	case "check":
		err = check(os.Stdout)
	case "top":
		err = runTop(args)
	case "version":
		fmt.Println("llm-observer", version)
	default:
		err = fmt.Errorf("unknown command %q: use run, check, top or version", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "llm-observer:", err)
		os.Exit(1)
	}
}

// shutdownClock is the one budget every step of the exit shares: it starts
// at the signal, and each step gets a context ending by the same deadline,
// so the steps together cannot take longer than the budget whatever the
// collector, the kernel or a scraper does.
type shutdownClock struct {
	timeout  time.Duration
	once     sync.Once
	deadline time.Time
}

func (s *shutdownClock) start() {
	s.once.Do(func() { s.deadline = time.Now().Add(s.timeout) })
}

// context ends reserve before the deadline, leaving that much to the steps
// after it.
func (s *shutdownClock) context(reserve time.Duration) (context.Context, context.CancelFunc) {
	s.start()
	return context.WithDeadline(context.Background(), s.deadline.Add(-reserve))
}

// exitReserve is what the exporter leaves of the shutdown budget to the
// steps after it: closing the health server and writing the loss summary.
const exitReserve = 300 * time.Millisecond

func run(args []string) error {
	cfg, err := config.FromEnvironment(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h: the flags were listed
	}
	if err != nil {
		return err
	}
	return serve(cfg, serveOptions{})
}

// serveOptions adapt the service to `top`, which runs the same data path
// in its own process and shows the calls instead of printing them.
type serveOptions struct {
	// parent ends the service as a signal does; nil: only signals do.
	parent context.Context
	// onFeed receives the live feed once the data path runs.
	onFeed func(*feed.Feed)
}

// serve runs the observer with cfg until a signal, or opts.parent, ends it.
func serve(cfg config.Config, opts serveOptions) error {
	parent := opts.parent
	if parent == nil {
		parent = context.Background()
	}
	tlsOpts := discover.TLSOptions{
		Executables: cfg.TLSExecutables,
		PIDs:        cfg.TLSPIDs,
		Cgroups:     cfg.TLSCgroups,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "llm-observer: "+format+"\n", args...)
		},
	}
	cfg.Capture.FilterTLS = tlsOpts.Filtered()
	if cfg.PprofAddr != "" {
		if err := startProfiling(cfg.PprofAddr); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go tuneGC(ctx)
	clock := &shutdownClock{timeout: cfg.ShutdownTimeout}
	context.AfterFunc(ctx, func() {
		clock.start()
		// The steps below are bounded by the clock; this is the backstop
		// for one that is not (a kernel call that hangs), and a second
		// signal ends the process at once.
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		go func() {
			select {
			case <-again:
				fmt.Fprintln(os.Stderr, "llm-observer: second signal, exiting without flushing")
			case <-time.After(cfg.ShutdownTimeout + time.Second):
				fmt.Fprintf(os.Stderr, "llm-observer: shutdown took more than %v, exiting\n", cfg.ShutdownTimeout)
			}
			os.Exit(1)
		}()
	})

	exp, err := export.New(ctx, cfg.Export)
	if err != nil {
		return fmt.Errorf("start exporter: %w", err)
	}
	// The exporter is flushed as soon as the data path has stopped, beside
	// the probes' removal (which can take seconds: the kernel unregisters
	// uprobes one by one), not after it; the deferred call waits for it.
	flushExporter := sync.OnceFunc(func() {
		sctx, cancel := clock.context(exitReserve)
		defer cancel()
		if err := exp.Shutdown(sctx); err != nil && sctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "llm-observer: flush on exit:", err)
		}
		reportLosses(os.Stderr, exp.Losses())
	})
	defer flushExporter()

	var ready readiness
	reg := health.NewRegistry()
	if err := reg.Register(newLossCollector(exp)); err != nil {
		return fmt.Errorf("health metrics: %w", err)
	}
	if cfg.HealthAddr != "" {
		srv, err := health.Start(cfg.HealthAddr, ready.check, reg)
		if err != nil {
			return fmt.Errorf("health server: %w", err)
		}
		defer func() {
			// First of the exit steps, so a hung scrape cannot hold the rest.
			sctx, cancel := clock.context(cfg.ShutdownTimeout * 9 / 10)
			defer cancel()
			srv.Shutdown(sctx) //nolint:errcheck // a scrape cut short at exit is fine
		}()
	}
	pods := startKubernetes(ctx, cfg.NodeName)
	defer pods.Close()

	llmPaths := cfg.Capture.Paths
	cfg.Capture.Paths = cfg.KernelPaths() // MCP traffic is followed like LLM calls
	probe, err := capture.Load(cfg.Capture)
	if err != nil {
		return fmt.Errorf("%w\n(run 'llm-observer check' to see what this machine lacks)", err)
	}
	// Left open when the TLS probes could not be removed within the budget:
	// exiting closes every descriptor, and the kernel detaches what is left.
	var detachPending atomic.Bool
	defer func() {
		if !detachPending.Load() {
			probe.Close()
		}
	}()

	procs, err := discover.NewTable(cfg.ProcRoot)
	if err != nil {
		return err
	}
	agentCfg := observer.Config{
		Limits: cfg.Limits,
		GenAI:  genaiOptions(cfg.Export, cfg.Providers, cfg.UserIDSalt),
	}
	agentCfg.LLMPaths, agentCfg.MCPPaths = llmPaths, cfg.MCPPaths
	agentCfg.Verdict = func(k capture.ConnKey, keep bool) {
		if err := probe.SetVerdict(k, keep); err != nil {
			fmt.Fprintln(os.Stderr, "llm-observer:", err)
		}
	}
	var tls *discover.TLSProbes
	if cfg.TLS {
		tls, err = discover.NewTLSProbes(cfg.ProcRoot, probe, tlsOpts)
		if err != nil {
			return err
		}
		go func() {
			if err := probe.RunNotices(ctx, func(_ capture.Kind, pid uint32) { tls.Notice(int(pid)) }); err != nil {
				fmt.Fprintln(os.Stderr, "llm-observer:", err)
			}
		}()
		// Probes go before the kernel objects they use (deferred calls
		// run last first): Run removes them when ctx ends.
		tlsDone := make(chan struct{})
		go func() { tls.Run(ctx); close(tlsDone) }()
		defer func() {
			sctx, cancel := clock.context(exitReserve)
			defer cancel()
			select {
			case <-tlsDone:
			case <-sctx.Done():
				detachPending.Store(true)
			}
		}()
	}
	var agent *observer.Agent
	live := feed.New(feed.Config{
		Health: func() feed.Health { return healthOf(agent, probe) },
		Logf:   func(format string, args ...any) { fmt.Fprintf(os.Stderr, "llm-observer: "+format+"\n", args...) },
	})
	agent = observer.New(agentCfg, procs, identity(pods), liveExporter{exp, live})
	agent.AddSamples(func() []observer.SelfSample { return feedSamples(live) })
	agent.AddSamples(func() []observer.SelfSample { return toolSamples(exp.ToolStats()) })
	agent.AddSamples(func() []observer.SelfSample {
		return []observer.SelfSample{{Name: "llm_observer.kubernetes.watch_failures",
			Help: "lists and watches of this node's pods that failed; pod metadata is as old as the last success", Value: float64(pods.Failures())}}
	})
	if tls != nil {
		agent.AddSamples(func() []observer.SelfSample { return tlsSamples(tls.Stats()) })
	}
	if err := observer.RegisterSelfMetrics(exp.SelfMeter(), agent, probe); err != nil {
		return err
	}
	if err := reg.Register(newSelfCollector(agent, probe)); err != nil {
		return fmt.Errorf("health metrics: %w", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- agent.Run(ctx, probe) }()
	stopFeed := offerFeed(ctx, live, cfg.Feed, os.Stderr)
	defer stopFeed()
	if opts.onFeed != nil {
		opts.onFeed(live)
	}
	if tls != nil {
		// Ready means every process running now has its TLS probes: the
		// first scan reads each executable once, a few seconds on a busy
		// host. Bounded, so a huge host still comes up.
		select {
		case <-tls.Scanned():
		case <-time.After(30 * time.Second):
		case <-ctx.Done():
		}
	}
	ready.ready.Store(true)
	fmt.Fprintf(os.Stderr, "llm-observer %s: watching %d path prefixes, exporting to %s\n",
		version, len(cfg.Capture.Paths), destination(cfg.Export))
	err = <-runErr
	go flushExporter()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// reportLosses writes, at exit, how much telemetry never reached the
// collector, one line per signal that lost any.
func reportLosses(w io.Writer, losses []export.Loss) {
	type signalLoss struct {
		total   uint64
		reasons []string
	}
	var order []string
	by := map[string]*signalLoss{}
	for _, l := range losses {
		if l.Count == 0 {
			continue
		}
		s := by[l.Signal]
		if s == nil {
			s = &signalLoss{}
			by[l.Signal] = s
			order = append(order, l.Signal)
		}
		s.total += l.Count
		s.reasons = append(s.reasons, fmt.Sprintf("%s=%d", l.Reason, l.Count))
	}
	for _, sig := range order {
		fmt.Fprintf(w, "llm-observer: export %s: %d lost (%s)\n", sig, by[sig].total, strings.Join(by[sig].reasons, " "))
	}
}

// genaiOptions derives what the parsers keep from the exporter's content
// switches, so content that will not be exported is never even assembled.
func genaiOptions(cfg export.Config, providers map[string]string, salt string) genai.Options {
	if salt == "" {
		// A random salt still hides the ids and keeps them comparable for
		// as long as this process runs.
		var b [16]byte
		rand.Read(b[:])
		salt = hex.EncodeToString(b[:])
	}
	return genai.Options{
		CaptureInput:  cfg.CaptureContent.Input(),
		CaptureOutput: cfg.CaptureContent.Output(),
		UserIDSalt:    salt,
		Providers:     providers,
	}
}

func destination(cfg export.Config) string {
	switch {
	case cfg.Endpoint != "":
		return "OTLP at " + cfg.Endpoint
	case cfg.OTLP:
		return "OTLP (endpoints from OTEL_EXPORTER_OTLP_*)"
	}
	return "the console (set OTEL_EXPORTER_OTLP_ENDPOINT to send OTLP)"
}

func check(w io.Writer) error {
	failed := 0
	for _, r := range capture.Check() {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "%s %-20s %s\n", mark, r.Name, r.Detail)
	}
	if failed > 0 {
		return fmt.Errorf("%d requirement(s) missing: llm-observer cannot run on this machine as it is", failed)
	}
	fmt.Fprintln(w, "all requirements met")
	return nil
}
