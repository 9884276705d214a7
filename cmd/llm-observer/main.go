// Command llm-observer watches the LLM API traffic of every process on the
// host through eBPF and reports each call as OpenTelemetry GenAI spans,
// metrics and logs, or as a console line when no OTLP endpoint is set.
//
// Usage:
//
//	llm-observer [flags]        run until SIGINT or SIGTERM
//	llm-observer check          report the kernel features it needs
//	llm-observer version
//
// Every flag has an environment variable; the flag wins.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/decode"
	"github.com/llm-observer/llm-observer/internal/discover"
	"github.com/llm-observer/llm-observer/internal/export"
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
	case "version":
		fmt.Println("llm-observer", version)
	default:
		err = fmt.Errorf("unknown command %q: use run, check or version", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "llm-observer:", err)
		os.Exit(1)
	}
}

// settings are the agent's own options; the exporter has its own.
type settings struct {
	paths      string
	ports      string
	maxBody    int
	maxHeader  int
	ringBytes  int
	procRoot   string
	providers  string
	userIDSalt string
	healthAddr string
	tls        bool
	tlsExes    string
	tlsPIDs    string
	tlsCgroups string
}

func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) (int, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want an integer", name, v)
	}
	return n, nil
}

func (s *settings) register(fs *flag.FlagSet) error {
	var err error
	intFlag := func(p *int, name, env string, def int, usage string) {
		v, e := envInt(env, def)
		if e != nil {
			err = errors.Join(err, e)
		}
		fs.IntVar(p, name, v, usage+" ($"+env+")")
	}
	strFlag := func(p *string, name, env, def, usage string) {
		fs.StringVar(p, name, envString(env, def), usage+" ($"+env+")")
	}
	strFlag(&s.paths, "paths", "LLM_OBSERVER_PATHS", strings.Join(capture.DefaultPaths, ","),
		"comma-separated request-path prefixes that mark a connection as LLM traffic (at most 16)")
	strFlag(&s.ports, "ports", "LLM_OBSERVER_PORTS", "",
		"comma-separated TCP ports whose every connection is treated as LLM traffic, e.g. 11434")
	intFlag(&s.maxBody, "max-body-bytes", "LLM_OBSERVER_MAX_BODY_BYTES", 1<<20,
		"largest request or response body kept per exchange; larger ones are skipped through and marked truncated")
	intFlag(&s.maxHeader, "max-header-bytes", "LLM_OBSERVER_MAX_HEADER_BYTES", 64<<10, "largest HTTP head kept")
	intFlag(&s.ringBytes, "ring-bytes", "LLM_OBSERVER_RING_BYTES", 8<<20, "kernel ring buffer size, a power of two")
	strFlag(&s.procRoot, "proc-root", "LLM_OBSERVER_PROC_ROOT", "/proc", "the host's /proc")
	strFlag(&s.providers, "providers", "LLM_OBSERVER_PROVIDERS", "",
		"provider overrides, e.g. 'llm.internal:8000=vllm,:11434=ollama'")
	strFlag(&s.userIDSalt, "user-id-salt", "LLM_OBSERVER_USER_ID_SALT", "",
		"salt for hashing end-user ids (set it to keep hashes stable across restarts; random otherwise)")
	strFlag(&s.healthAddr, "health-addr", "LLM_OBSERVER_HEALTH_ADDR", "127.0.0.1:9464",
		"address of /healthz, /readyz and /metrics; empty disables them")
	tlsOn, e := envBool("LLM_OBSERVER_TLS", true)
	err = errors.Join(err, e)
	fs.BoolVar(&s.tls, "tls", tlsOn, "probe TLS libraries (OpenSSL) to see HTTPS calls ($LLM_OBSERVER_TLS)")
	strFlag(&s.tlsExes, "tls-executables", "LLM_OBSERVER_TLS_EXECUTABLES", "",
		"comma-separated executable names whose TLS is followed; empty means every process")
	strFlag(&s.tlsPIDs, "tls-pids", "LLM_OBSERVER_TLS_PIDS", "", "comma-separated pids whose TLS is followed")
	strFlag(&s.tlsCgroups, "tls-cgroups", "LLM_OBSERVER_TLS_CGROUPS", "",
		"comma-separated substrings of /proc/PID/cgroup (pod UID, container id) whose TLS is followed")
	return err
}

func envBool(name string, def bool) (bool, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// tlsOptions turns the TLS filter settings into discover's options.
func (s *settings) tlsOptions() (discover.TLSOptions, error) {
	opts := discover.TLSOptions{
		Executables: splitList(s.tlsExes),
		Cgroups:     splitList(s.tlsCgroups),
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "llm-observer: "+format+"\n", args...)
		},
	}
	for _, p := range splitList(s.tlsPIDs) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return opts, fmt.Errorf("LLM_OBSERVER_TLS_PIDS: %q is not a pid", p)
		}
		opts.PIDs = append(opts.PIDs, n)
	}
	return opts, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (s *settings) captureConfig() (capture.Config, error) {
	cfg := capture.Config{RingBytes: s.ringBytes}
	for _, p := range strings.Split(s.paths, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Paths = append(cfg.Paths, p)
		}
	}
	for _, p := range strings.Split(s.ports, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return cfg, fmt.Errorf("port %q: want a number from 1 to 65535", p)
		}
		cfg.Ports = append(cfg.Ports, uint16(n))
	}
	return cfg, nil
}

func parseProviders(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("provider override %q: want host[:port]=name or :port=name", kv)
		}
		m[strings.ToLower(k)] = v
	}
	return m, nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("llm-observer", flag.ContinueOnError)
	var s settings
	if err := s.register(fs); err != nil {
		return err
	}
	expCfg, err := export.ConfigFromEnv()
	if err != nil {
		return err
	}
	expCfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	capCfg, err := s.captureConfig()
	if err != nil {
		return err
	}
	tlsOpts, err := s.tlsOptions()
	if err != nil {
		return err
	}
	capCfg.FilterTLS = tlsOpts.Filtered()
	providers, err := parseProviders(s.providers)
	if err != nil {
		return err
	}
	if addr := os.Getenv("LLM_OBSERVER_PPROF_ADDR"); addr != "" {
		if err := startProfiling(addr); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	exp, err := export.New(ctx, expCfg)
	if err != nil {
		return fmt.Errorf("start exporter: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := exp.Shutdown(sctx); err != nil {
			fmt.Fprintln(os.Stderr, "llm-observer: flush on exit:", err)
		}
	}()

	var ready readiness
	reg := health.NewRegistry()
	if s.healthAddr != "" {
		srv, err := health.Start(s.healthAddr, ready.check, reg)
		if err != nil {
			return fmt.Errorf("health server: %w", err)
		}
		defer func() {
			// Bounded, so a hung scrape cannot eat the pod's grace period.
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
	}
	pods := startKubernetes(ctx)
	defer pods.Close()

	probe, err := capture.Load(capCfg)
	if err != nil {
		return fmt.Errorf("%w\n(run 'llm-observer check' to see what this machine lacks)", err)
	}
	defer probe.Close()

	procs, err := discover.NewTable(s.procRoot)
	if err != nil {
		return err
	}
	agentCfg := observer.Config{
		Limits: decode.Limits{MaxBodyBytes: s.maxBody, MaxHeaderBytes: s.maxHeader},
		GenAI:  genaiOptions(expCfg, providers, s.userIDSalt),
	}
	var tls *discover.TLSProbes
	if s.tls {
		tls, err = discover.NewTLSProbes(s.procRoot, probe, tlsOpts)
		if err != nil {
			return err
		}
		agentCfg.Notice = tls.Notice
		// Probes go before the kernel objects they use (deferred calls
		// run last first): Run removes them when ctx ends.
		tlsDone := make(chan struct{})
		go func() { tls.Run(ctx); close(tlsDone) }()
		defer func() { <-tlsDone }()
	}
	agent := observer.New(agentCfg, procs, identity(pods), exp)
	if tls != nil {
		agent.AddSamples(func() []observer.SelfSample { return tlsSamples(tls.Stats()) })
	}
	if err := observer.RegisterSelfMetrics(exp.SelfMeter(), agent, probe); err != nil {
		return err
	}
	if err := reg.Register(newSelfCollector(agent, probe)); err != nil {
		return fmt.Errorf("health metrics: %w", err)
	}
	ready.ready.Store(true)
	fmt.Fprintf(os.Stderr, "llm-observer %s: watching %d path prefixes, exporting to %s\n",
		version, len(capCfg.Paths), destination(expCfg))
	err = agent.Run(ctx, probe)
	if ctx.Err() != nil {
		return nil
	}
	return err
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
