// Command load is the observer's load benchmark: real processes, as a user
// would run them. It builds a model server and a keep-alive load client
// (the two programs beside it) and the observer itself, then runs each
// scenario with the observer off and on, alternating (off, on, off, on …)
// within one run so that other load on the machine falls on both alike.
// The observer exports OTLP to a receiver inside this process, which counts
// the spans of the benchmark's calls.
//
// For each run it reports the application's throughput and latency, the
// CPU time of server and client, and, with the observer on, the observer's
// CPU per call and per stream event, its peak RSS, every loss counter on
// its /metrics, the highest backlog seen in its lag gauges, and the spans
// received against the calls made (two per call: client and server side).
//
// It loads eBPF programs through the observer, so it runs as root:
//
//	sudo go run ./bench/load -duration 10s -rounds 2
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// scenario is one kind of load.
type scenario struct {
	name, what string
	mode       string  // the client's -mode
	rate       float64 // calls/s; 0 unpaced
	conns      int
	chunkDelay time.Duration
}

var scenarios = []scenario{
	{"sse-500", "500 streamed calls/s, 32 SSE chunks", "sse", 500, 32, 0},
	{"sse-1000", "1,000 streamed calls/s, 32 SSE chunks", "sse", 1000, 64, 0},
	{"ndjson-500", "500 Ollama NDJSON calls/s, 32 lines", "ndjson", 500, 32, 0},
	{"json-1000", "1,000 plain JSON calls/s", "json", 1000, 32, 0},
	{"sse-unpaced-8", "8 unpaced keep-alive streams", "sse", 0, 8, 0},
	{"slow-1000", "1,000 concurrent slow streams, 50 ms per chunk", "sse", 0, 1000, 50 * time.Millisecond},
}

type options struct {
	duration   time.Duration
	rounds     int
	observer   string
	only       map[string]bool
	profileDir string
	workDir    string
}

func main() {
	var o options
	var only string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load time of each run (a full run of every scenario takes about 2.5×duration×rounds×scenarios)")
	flag.IntVar(&o.rounds, "rounds", 2, "off/on pairs per scenario")
	flag.StringVar(&o.observer, "observer", "", "observer binary to measure (default: build ./cmd/llm-observer)")
	flag.StringVar(&only, "scenarios", "", "comma-separated scenario names (default all: "+names()+")")
	flag.StringVar(&o.profileDir, "profile", "", "directory for a CPU profile (name.pprof) and a heap profile at its end (name.heap) of the observer during each scenario's first run with it on (served by LLM_OBSERVER_PPROF_ADDR)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal(errors.New("the observer loads eBPF programs: run as root (sudo make bench-load)"))
	}
	if only != "" {
		o.only = map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			o.only[strings.TrimSpace(n)] = true
		}
	}
	dir, err := os.MkdirTemp("", "llm-observer-load-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	o.workDir = dir
	if err := build(&o); err != nil {
		fatal(err)
	}
	recv, err := startReceiver()
	if err != nil {
		fatal(err)
	}
	defer recv.stop()

	var results []scenarioResult
	for _, sc := range scenarios {
		if o.only != nil && !o.only[sc.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s (%s)\n", sc.name, sc.what)
		res, err := runScenario(&o, recv, sc)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", sc.name, err))
		}
		results = append(results, res)
	}
	report(os.Stdout, &o, results)
}

func names() string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}

// build compiles the server, the client and, unless given, the observer.
func build(o *options) error {
	targets := map[string]string{"server": "./bench/load/server", "client": "./bench/load/client"}
	if o.observer == "" {
		targets["llm-observer"] = "./cmd/llm-observer"
		o.observer = filepath.Join(o.workDir, "llm-observer")
	}
	for out, pkg := range targets {
		cmd := exec.Command("go", "build", "-o", filepath.Join(o.workDir, out), pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s (run from the repository root): %w", pkg, err)
		}
	}
	return nil
}

// clientResult mirrors the client program's JSON output.
type clientResult struct {
	Calls      int     `json:"calls"`
	Errors     int     `json:"errors"`
	Events     int     `json:"events"`
	Missed     int     `json:"missed"`
	Seconds    float64 `json:"seconds"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	CPUSeconds float64 `json:"cpu_seconds"`
	FirstError string  `json:"first_error"`
}

// runResult is one run of a scenario.
type runResult struct {
	on        bool
	client    clientResult
	serverCPU float64 // seconds, during the run
	// With the observer on:
	obsCPU  float64 // seconds, from the first call to the last span received
	obsRSS  float64 // peak resident set, bytes
	obsAnon float64 // anonymous resident memory at the end of the load (heap, stacks), bytes
	metrics map[string]float64
	peaks   map[string]float64 // highest value of each lag gauge seen while the load ran
	spans   spanCounts
	profile string
}

func (r *runResult) appCPUPerCall() float64 {
	return (r.serverCPU + r.client.CPUSeconds) / float64(max(r.client.Calls, 1))
}

type scenarioResult struct {
	sc   scenario
	runs []runResult
}

func runScenario(o *options, recv *receiver, sc scenario) (scenarioResult, error) {
	res := scenarioResult{sc: sc}
	srv := exec.Command(filepath.Join(o.workDir, "server"), "-chunk-delay", sc.chunkDelay.String())
	srv.Stderr = os.Stderr
	out, err := srv.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := srv.Start(); err != nil {
		return res, fmt.Errorf("start server: %w", err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("server address: %w", err)
	}
	addr := strings.TrimSpace(line)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)

	for round := range o.rounds {
		for _, on := range []bool{false, true} {
			profile := ""
			if on && round == 0 && o.profileDir != "" {
				profile = filepath.Join(o.profileDir, sc.name+".pprof")
			}
			r, err := runOnce(o, recv, sc, srv.Process.Pid, addr, port, on, profile)
			if err != nil {
				return res, err
			}
			fmt.Fprintf(os.Stderr, "   observer %-3s %7.0f calls/s  p99 %6.2f ms  errors %d  spans %d/%d\n",
				onOff(on), float64(r.client.Calls)/r.client.Seconds, r.client.P99ms, r.client.Errors,
				r.spans.Client+r.spans.Server, 2*r.client.Calls)
			res.runs = append(res.runs, r)
			time.Sleep(300 * time.Millisecond) // let the last connections close
		}
	}
	return res, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// observerProc is a running observer.
type observerProc struct {
	cmd        *exec.Cmd
	healthAddr string
	pprofAddr  string
	exited     chan struct{} // closed when the process has been waited for
}

func startObserver(o *options, recvAddr string) (*observerProc, error) {
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	health, pprofAddr := addrs[0], addrs[1]
	logf, err := os.OpenFile(filepath.Join(o.workDir, "observer.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(o.observer, "-health-addr", health)
	cmd.Env = append(os.Environ(),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recvAddr,
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_METRIC_EXPORT_INTERVAL=10000",
		"LLM_OBSERVER_PPROF_ADDR="+pprofAddr,
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start observer: %w", err)
	}
	p := &observerProc{cmd: cmd, healthAddr: health, pprofAddr: pprofAddr, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("observer exited at start (log: %s)", filepath.Join(o.workDir, "observer.log"))
		default:
		}
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("observer not ready after 90s (log: %s)", filepath.Join(o.workDir, "observer.log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *observerProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// freeAddrs returns n distinct loopback addresses free a moment ago: all
// are held until the last is found, so none comes back twice.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

func runOnce(o *options, recv *receiver, sc scenario, serverPID int, addr string, port int, on bool, profile string) (runResult, error) {
	r := runResult{on: on}
	var obs *observerProc
	if on {
		recv.reset(port)
		var err error
		if obs, err = startObserver(o, recv.addr()); err != nil {
			return r, err
		}
		defer obs.stop()
	}
	srv0 := cpuSeconds(serverPID)
	var obs0 float64
	if obs != nil {
		obs0 = cpuSeconds(obs.cmd.Process.Pid)
	}
	client := exec.Command(filepath.Join(o.workDir, "client"),
		"-url", "http://"+addr, "-mode", sc.mode, "-rate", fmt.Sprint(sc.rate),
		"-conns", fmt.Sprint(sc.conns), "-duration", o.duration.String())
	client.Stderr = os.Stderr
	var out strings.Builder
	client.Stdout = &out
	if err := client.Start(); err != nil {
		return r, fmt.Errorf("start client: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()

	profDone := make(chan error, 1)
	if obs != nil && profile != "" {
		go func() {
			// The heap is taken as the CPU profile ends, with the load
			// still on: what the live connections hold.
			err := fetchProfile(obs.pprofAddr, "profile?seconds="+fmt.Sprint(max(int((o.duration-time.Second).Seconds()), 1)), profile)
			if err == nil {
				err = fetchProfile(obs.pprofAddr, "heap", strings.TrimSuffix(profile, ".pprof")+".heap")
			}
			profDone <- err
		}()
	} else {
		profDone <- nil
	}
	// Lag gauges are levels: poll them while the load runs to see the peak,
	// every 2 s (a scrape costs the observer CPU, which is measured; the
	// delay gauge is already a maximum over its own window).
	r.peaks = map[string]float64{}
	var waitErr error
poll:
	for {
		select {
		case waitErr = <-done:
			break poll
		case <-time.After(2 * time.Second):
			if obs != nil {
				if m, err := scrape(obs.healthAddr); err == nil {
					notePeaks(r.peaks, m)
				}
			}
		}
	}
	if waitErr != nil {
		return r, fmt.Errorf("client: %w", waitErr)
	}
	r.serverCPU = cpuSeconds(serverPID) - srv0
	if err := json.Unmarshal([]byte(out.String()), &r.client); err != nil {
		return r, fmt.Errorf("client output %q: %w", out.String(), err)
	}
	if obs == nil {
		return r, nil
	}
	if err := <-profDone; err != nil {
		fmt.Fprintln(os.Stderr, "   no CPU profile:", err)
	} else if profile != "" {
		r.profile = profile
	}
	// Spans trail the calls by the exporter's batch delay and the server
	// side's wait for its client: wait until all arrived or none came for
	// a while.
	want := 2 * r.client.Calls
	last, lastChange := -1, time.Now()
	for time.Since(lastChange) < 2*time.Second {
		s := recv.spans()
		n := s.Client + s.Server
		if n >= want {
			break
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		if m, err := scrape(obs.healthAddr); err == nil {
			notePeaks(r.peaks, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pid := obs.cmd.Process.Pid
	r.obsCPU = cpuSeconds(pid) - obs0
	r.obsRSS = procStatus(pid, "VmHWM:")
	r.obsAnon = procStatus(pid, "RssAnon:")
	m, err := scrape(obs.healthAddr)
	if err != nil {
		return r, fmt.Errorf("observer metrics: %w", err)
	}
	r.metrics = m
	// Spans still batched are flushed on shutdown, and count: a user's
	// collector gets them too.
	obs.stop()
	r.spans = recv.spans()
	return r, nil
}

// fetchProfile saves the pprof endpoint what (e.g. "heap") at path.
func fetchProfile(addr, what, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", addr, what))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: status %d", resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// cpuSeconds is the user+system time of pid so far, from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	// The command name may hold spaces; the fields after it do not.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return math.NaN()
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	const clockTicks = 100 // USER_HZ, fixed on Linux
	return (utime + stime) / clockTicks
}

// procStatus reads a memory field of /proc/<pid>/status, in bytes: VmHWM
// is the peak resident set, which counts the ring buffer (mapped twice)
// and the binary's own pages; RssAnon is the memory the process allocated.
func procStatus(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return math.NaN()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return math.NaN()
}

// scrape reads the observer's /metrics into series name (labels included)
// -> value.
func scrape(addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	// Uncompressed: gzip would be the observer's CPU, charged to the
	// calls it observes.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// lagGauge names the observer's backlog gauges, whatever their exact names.
var lagGauge = regexp.MustCompile(`^llm_observer_[a-z_]*(pending|queue|delay|lag)[a-z_]*(\{.*\})?$`)

func notePeaks(peaks, m map[string]float64) {
	for k, v := range m {
		if lagGauge.MatchString(k) && !strings.Contains(k, "_total") && v > peaks[k] {
			peaks[k] = v
		}
	}
}

// lossSeries are the counters that say something was not seen or not sent.
var lossSeries = regexp.MustCompile(`^llm_observer_[a-z_]*(dropped|lost|truncated|failed|full|missed)[a-z_]*(\{.*\})?$`)

func losses(m map[string]float64) []string {
	var out []string
	for k, v := range m {
		if v != 0 && lossSeries.MatchString(k) {
			out = append(out, fmt.Sprintf("%s=%g", strings.TrimPrefix(k, "llm_observer_"), v))
		}
	}
	slices.Sort(out)
	return out
}

func report(w io.Writer, o *options, results []scenarioResult) {
	fmt.Fprintf(w, "\nobserver: %s; %s per run, %d off/on pairs per scenario\n\n", o.observer, o.duration, o.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tobserver\tcalls/s\tevents/s\tp50 ms\tp99 ms\tapp CPU µs/call\tobs CPU µs/call/side\tobs CPU µs/event/side\tobs records/call\tobs RSS MB\tanon MB\tspans/calls×2\tpaired\terrors\t")
	for _, res := range results {
		for _, r := range res.runs {
			c := r.client
			row := []string{res.sc.name, onOff(r.on),
				f0(float64(c.Calls) / c.Seconds), f0(float64(c.Events) / c.Seconds),
				f2(c.P50ms), f2(c.P99ms), f0(r.appCPUPerCall() * 1e6)}
			if r.on {
				sides := 2 * float64(max(c.Calls, 1))
				row = append(row, f1(r.obsCPU*1e6/sides), f2(r.obsCPU*1e6/(2*float64(max(c.Events, 1)))),
					f1(r.metrics["llm_observer_events_total"]/float64(max(c.Calls, 1))),
					f0(r.obsRSS/(1<<20)), f0(r.obsAnon/(1<<20)),
					fmt.Sprintf("%d/%d", r.spans.Client+r.spans.Server, 2*c.Calls),
					fmt.Sprint(r.spans.Paired))
			} else {
				row = append(row, "", "", "", "", "", "", "")
			}
			row = append(row, fmt.Sprint(c.Errors))
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\nwith/without (median over pairs; app CPU counts server and client processes):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tthroughput\tp50\tp99\tapp CPU/call\tobs µs/call/side\tobs µs/event/side\tobs RSS MB max\tanon MB max\tspans received\t")
	for _, res := range results {
		var thr, p50, p99, cpu, perCall, perEvent []float64
		rss, anon, spans, want := 0.0, 0.0, 0, 0
		for i := 0; i+1 < len(res.runs); i += 2 {
			off, on := res.runs[i].client, res.runs[i+1].client
			thr = append(thr, (float64(on.Calls)/on.Seconds)/(float64(off.Calls)/off.Seconds))
			p50 = append(p50, on.P50ms/off.P50ms)
			p99 = append(p99, on.P99ms/off.P99ms)
			cpu = append(cpu, res.runs[i+1].appCPUPerCall()/res.runs[i].appCPUPerCall())
			r := res.runs[i+1]
			perCall = append(perCall, r.obsCPU*1e6/(2*float64(max(on.Calls, 1))))
			perEvent = append(perEvent, r.obsCPU*1e6/(2*float64(max(on.Events, 1))))
			rss = max(rss, r.obsRSS)
			anon = max(anon, r.obsAnon)
			spans += r.spans.Client + r.spans.Server
			want += 2 * on.Calls
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", res.sc.name,
			f2(median(thr)), f2(median(p50)), f2(median(p99)), f2(median(cpu)),
			f1(median(perCall)), f2(median(perEvent)), f0(rss/(1<<20)), f0(anon/(1<<20)),
			fmt.Sprintf("%d/%d (%.1f%%)", spans, want, 100*float64(spans)/float64(max(want, 1))))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nobserver loss counters (non-zero; host-wide) and lag peaks, per run with the observer on:")
	for _, res := range results {
		for i, r := range res.runs {
			if !r.on {
				continue
			}
			l := losses(r.metrics)
			if len(l) == 0 {
				l = []string{"none"}
			}
			var peaks []string
			for k, v := range r.peaks {
				peaks = append(peaks, fmt.Sprintf("%s=%g", strings.TrimPrefix(k, "llm_observer_"), v))
			}
			slices.Sort(peaks)
			fmt.Fprintf(w, "  %s run %d: losses: %s\n", res.sc.name, i/2+1, strings.Join(l, " "))
			if len(peaks) > 0 {
				fmt.Fprintf(w, "  %s run %d: peaks: %s\n", res.sc.name, i/2+1, strings.Join(peaks, " "))
			}
			if r.profile != "" {
				fmt.Fprintf(w, "  %s run %d: CPU profile %s\n", res.sc.name, i/2+1, r.profile)
			}
			if r.client.FirstError != "" {
				fmt.Fprintf(w, "  %s run %d: first client error: %s\n", res.sc.name, i/2+1, r.client.FirstError)
			}
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
