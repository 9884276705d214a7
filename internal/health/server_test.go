package health

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func startTest(t *testing.T, ready func() error, g prometheus.Gatherer) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0", ready, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

func request(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestHealthz(t *testing.T) {
	s := startTest(t, func() error { return errors.New("not yet") }, nil)
	url := "http://" + s.Addr() + "/healthz"
	// Alive even while not ready: liveness must not depend on readiness,
	// or a slow start would get the process killed.
	if code, body, _ := request(t, http.MethodGet, url); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	if code, _, _ := request(t, http.MethodHead, url); code != http.StatusOK {
		t.Errorf("HEAD /healthz = %d", code)
	}
	if code, _, _ := request(t, http.MethodPost, url); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", code)
	}
	if code, _, _ := request(t, http.MethodGet, "http://"+s.Addr()+"/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics without a Gatherer = %d, want 404", code)
	}
}

func TestReadyz(t *testing.T) {
	var reason atomic.Pointer[string]
	notReady := "probes not attached"
	reason.Store(&notReady)
	s := startTest(t, func() error {
		if r := reason.Load(); r != nil {
			return errors.New(*r)
		}
		return nil
	}, nil)
	url := "http://" + s.Addr() + "/readyz"

	code, body, _ := request(t, http.MethodGet, url)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "probes not attached") {
		t.Errorf("not ready: GET /readyz = %d %q, want 503 with the reason", code, body)
	}
	reason.Store(nil)
	if code, body, _ := request(t, http.MethodGet, url); code != http.StatusOK || body != "ok\n" {
		t.Errorf("ready: GET /readyz = %d %q", code, body)
	}
}

func TestReadyzWithoutReadinessFunc(t *testing.T) {
	s := startTest(t, nil, nil)
	if code, _, _ := request(t, http.MethodGet, "http://"+s.Addr()+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz = %d, want 200", code)
	}
}

func TestMetrics(t *testing.T) {
	var read, ringFull, mapFull, exported, exportErrors, conns atomic.Uint64
	r := NewRegistry()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	load := func(v *atomic.Uint64) func() float64 { return func() float64 { return float64(v.Load()) } }
	must(r.CounterFunc("events_read_total", "Events read from the ring buffer.", nil, load(&read)))
	must(r.CounterFunc("events_dropped_total", "Events lost, by reason.", prometheus.Labels{"reason": "ring_full"}, load(&ringFull)))
	must(r.CounterFunc("events_dropped_total", "Events lost, by reason.", prometheus.Labels{"reason": "map_full"}, load(&mapFull)))
	must(r.GaugeFunc("connections_tracked", "Connections being followed now.", nil, load(&conns)))
	must(r.CounterFunc("calls_exported_total", "LLM calls handed to the exporter.", nil, load(&exported)))
	must(r.CounterFunc("export_errors_total", "Failed exports.", nil, load(&exportErrors)))
	s := startTest(t, nil, r)

	read.Store(42)
	ringFull.Store(3)
	conns.Store(7)
	exported.Store(5)
	families := scrape(t, s)
	want := map[string]float64{
		`llm_observer_events_read_total`:                        42,
		`llm_observer_events_dropped_total{reason="ring_full"}`: 3,
		`llm_observer_events_dropped_total{reason="map_full"}`:  0,
		`llm_observer_connections_tracked`:                      7,
		`llm_observer_calls_exported_total`:                     5,
		`llm_observer_export_errors_total`:                      0,
	}
	for series, v := range want {
		if got, ok := families[series]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, v)
		}
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Error("Go runtime metrics missing")
	}

	// Values are read at scrape time, not copied at registration.
	read.Add(8)
	if got := scrape(t, s)["llm_observer_events_read_total"]; got != 50 {
		t.Errorf("after more events: %v, want 50", got)
	}
}

// scrape fetches /metrics, checks it parses as the Prometheus text format,
// and returns each series' value keyed by name{labels}.
func scrape(t *testing.T, s *Server) map[string]float64 {
	t.Helper()
	code, body, hdr := request(t, http.MethodGet, "http://"+s.Addr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %q", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid text format: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := name
			if lp := m.GetLabel(); len(lp) > 0 {
				var parts []string
				for _, l := range lp {
					parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

func TestRegistryRejectsBadSeries(t *testing.T) {
	r := NewRegistry()
	zero := func() float64 { return 0 }
	if err := r.CounterFunc("calls_total", "h", nil, zero); err != nil {
		t.Fatal(err)
	}
	if err := r.CounterFunc("calls_total", "h", nil, zero); err == nil {
		t.Error("registering the same series twice should fail")
	}
	if err := r.GaugeFunc("bad name", "h", nil, zero); err == nil {
		t.Error("a name outside the classic character set should fail")
	}
	if err := r.CounterFunc("drops_total", "h", prometheus.Labels{"drop reason": "x"}, zero); err == nil {
		t.Error("a label name outside the classic character set should fail")
	}
}

func TestStartReportsAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(ln.Addr().String(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "LLM_OBSERVER_HEALTH_ADDR") {
		t.Fatalf("Start on a busy port: %v, want an error that says what to change", err)
	}
}

func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s, err := Start("127.0.0.1:0", func() error {
		close(entered)
		<-release
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/readyz")
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-entered

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if code := <-got; code != http.StatusOK {
		t.Errorf("request in flight during shutdown got %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Error("still accepting connections after Shutdown")
	}
}

func TestShutdownGivesUpAtDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{})
	s, err := Start("127.0.0.1:0", func() error { close(entered); <-release; return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if resp, err := http.Get("http://" + s.Addr() + "/readyz"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown past its deadline = %v, want DeadlineExceeded", err)
	}
}
