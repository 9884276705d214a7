package k8s

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestWatchRecovers breaks the watch in each way a real API server or
// network does, and checks that the cache resumes from where it was, or
// lists again where the server has forgotten that point, and then follows
// new changes.
func TestWatchRecovers(t *testing.T) {
	tests := []struct {
		name string
		// disturb breaks the watch after the first list; it returns the
		// resourceVersion the next watch must start from ("" for the
		// version of the list that disturb made necessary).
		disturb   func(t *testing.T, f *fakeAPI, c *Cache, cfg inCluster) string
		wantLists int
		// failed: the disturbance must count in Failures; else it must not.
		failed bool
		// gone and back are pods the cache must have lost and found.
		gone, back string
	}{
		{
			name: "server ends the watch",
			disturb: func(t *testing.T, f *fakeAPI, c *Cache, _ inCluster) string {
				rv := f.put(fixturePod(t, "ollama-0"))
				waitForPod(t, c, "22222222-2222-4222-8222-222222222222")
				f.disturb(t, "end")
				return strconv.Itoa(rv)
			},
			wantLists: 1,
		},
		{
			name: "connection dropped mid-stream",
			disturb: func(t *testing.T, f *fakeAPI, c *Cache, _ inCluster) string {
				rv := f.put(fixturePod(t, "ollama-0"))
				waitForPod(t, c, "22222222-2222-4222-8222-222222222222")
				f.disturb(t, "drop")
				return strconv.Itoa(rv)
			},
			wantLists: 1,
			failed:    true,
		},
		{
			name: "dropped after a bookmark",
			disturb: func(t *testing.T, f *fakeAPI, c *Cache, _ inCluster) string {
				f.disturb(t, "bookmark")
				var rv int
				waitFor(t, "the bookmark", func() bool { f.mu.Lock(); rv = f.rv; f.mu.Unlock(); return rv > 1008 })
				// The bookmark is written before the drop, on one stream.
				f.disturb(t, "drop")
				return strconv.Itoa(rv)
			},
			wantLists: 1,
			failed:    true,
		},
		{
			name: "changes while disconnected are replayed",
			disturb: func(t *testing.T, f *fakeAPI, c *Cache, _ inCluster) string {
				f.set(func(f *fakeAPI) { f.holdWatches = true })
				f.disturb(t, "drop")
				waitFor(t, "a refused rewatch", func() bool { return f.refusedWatches() > 0 })
				f.remove("77777777-7777-4777-8777-777777777777")
				f.put(fixturePod(t, "ollama-0"))
				f.set(func(f *fakeAPI) { f.holdWatches = false })
				return "1008"
			},
			wantLists: 1,
			failed:    true,
			gone:      "77777777-7777-4777-8777-777777777777",
			back:      "22222222-2222-4222-8222-222222222222",
		},
		{
			name: "410 Gone on rewatch forces a relist",
			disturb: func(t *testing.T, f *fakeAPI, c *Cache, _ inCluster) string {
				f.set(func(f *fakeAPI) { f.holdWatches = true })
				f.disturb(t, "drop")
				waitFor(t, "a refused rewatch", func() bool { return f.refusedWatches() > 0 })
				f.remove("77777777-7777-4777-8777-777777777777")
				f.put(fixturePod(t, "ollama-0"))
				f.compact()
				f.set(func(f *fakeAPI) { f.holdWatches = false })
				return ""
			},
			wantLists: 2,
			failed:    true,
			gone:      "77777777-7777-4777-8777-777777777777",
			back:      "22222222-2222-4222-8222-222222222222",
		},
		{
			name: "ERROR event with 410 forces a relist",
			disturb: func(t *testing.T, f *fakeAPI, c *Cache, _ inCluster) string {
				f.disturb(t, "gone")
				return ""
			},
			wantLists: 2,
		},
		{
			name: "401 after token rotation, token read again",
			disturb: func(t *testing.T, f *fakeAPI, _ *Cache, cfg inCluster) string {
				// The old token is revoked before the kubelet writes the
				// new one: the cache must keep trying, and read the file
				// again after a 401 although its copy is not old yet.
				f.set(func(f *fakeAPI) { f.tokens = map[string]bool{"token-2": true} })
				f.disturb(t, "drop")
				waitFor(t, "a refused rewatch", func() bool { return f.unauthorized() > 0 })
				writeFile(t, cfg.tokenFile, "token-2\n")
				return "1008"
			},
			wantLists: 1,
			failed:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, withoutPod(fixturePods(t), "ollama-0")...)
			cfg := f.config(t, "token-1")
			c := startOn(t, f, cfg)
			waitFor(t, "the first watch", func() bool { return f.openWatches() > 0 })
			before := len(f.log())

			wantRV := tt.disturb(t, f, c, cfg)
			waitFor(t, "a new watch", func() bool { return f.openWatches() > 0 && len(f.okWatchesAfter(before)) > 0 })
			if got := f.lists(); got != tt.wantLists {
				t.Errorf("%d lists, want %d", got, tt.wantLists)
			}
			if n := c.Failures(); (n > 0) != tt.failed {
				t.Errorf("%d failures counted, want some: %v", n, tt.failed)
			}
			first := f.okWatchesAfter(before)[0]
			if wantRV == "" {
				f.mu.Lock()
				wantRV = strconv.Itoa(f.rv)
				f.mu.Unlock()
			}
			if got := first.query.Get("resourceVersion"); got != wantRV {
				t.Errorf("watch resumed from %s, want %s", got, wantRV)
			}
			if tt.gone != "" {
				waitFor(t, "the pod deleted while disconnected to go", func() bool { _, ok := c.Lookup(Container{PodUID: tt.gone}); return !ok })
			}
			if tt.back != "" {
				waitFor(t, "the pod made while disconnected", func() bool { _, ok := c.Lookup(Container{PodUID: tt.back}); return ok })
			}
			// And the watch is live: a change made now arrives.
			p := fixturePod(t, "migrate-2-hx7vq")
			p["metadata"].(map[string]any)["labels"] = map[string]any{"app.kubernetes.io/name": "after-" + strings.ReplaceAll(tt.name, " ", "-")}
			f.put(p)
			waitFor(t, "a change after recovery", func() bool {
				id, _ := c.Lookup(Container{PodUID: uidOf(p)})
				return strings.HasPrefix(id.ServiceName(), "after-")
			})
		})
	}
}

func withoutPod(pods []map[string]any, name string) []map[string]any {
	var out []map[string]any
	for _, p := range pods {
		if p["metadata"].(map[string]any)["name"] != name {
			out = append(out, p)
		}
	}
	return out
}

// waitForPod waits until the cache has the pod.
func waitForPod(t *testing.T, c *Cache, uid string) {
	t.Helper()
	waitFor(t, "pod "+uid, func() bool { _, ok := c.Lookup(Container{PodUID: uid}); return ok })
}

func (f *fakeAPI) refusedWatches() int { return f.countStatus(http.StatusServiceUnavailable) }
func (f *fakeAPI) unauthorized() int   { return f.countStatus(http.StatusUnauthorized) }

func (f *fakeAPI) countStatus(code int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statuses[code]
}

// okWatchesAfter is the watch requests after the first n requests that the
// server accepted.
func (f *fakeAPI) okWatchesAfter(n int) []fakeRequest {
	var out []fakeRequest
	for _, r := range f.watchesAfter(n) {
		if r.accepted {
			out = append(out, r)
		}
	}
	return out
}

func TestListInPages(t *testing.T) {
	tests := []struct {
		name            string
		pageSize        int
		expireContinues int
		wantPages       int // requests made in all for the list(s)
	}{
		{"one page", 0, 0, 1},
		{"pages of two", 2, 0, 4},
		{"pages of one", 1, 0, 8},
		{"continue token expired, list again from the start", 4, 1, 2 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, fixturePods(t)...)
			f.set(func(f *fakeAPI) { f.pageSize, f.expireContinues = tt.pageSize, tt.expireContinues })
			c := startOn(t, f, f.config(t, "token-1"))
			var pages int
			var tokens []string
			for _, r := range f.log() {
				if !r.watch() {
					pages++
					tokens = append(tokens, r.query.Get("continue"))
				}
			}
			if pages != tt.wantPages {
				t.Errorf("%d list requests (continue tokens %q), want %d", pages, tokens, tt.wantPages)
			}
			c.mu.RLock()
			n := len(c.byUID)
			c.mu.RUnlock()
			if n != 8 {
				t.Errorf("%d pods cached, want node-a's 8", n)
			}
			for _, uid := range []string{"11111111-1111-4111-8111-111111111111", "88888888-8888-4888-8888-888888888888"} {
				if _, ok := c.Lookup(Container{PodUID: uid}); !ok {
					t.Errorf("pod %s from the list not found", uid)
				}
			}
		})
	}
}

func TestWatchEndsAtTimeoutSeconds(t *testing.T) {
	f := newFakeAPI(t, fixturePods(t)...)
	cfg := f.config(t, "token-1")
	cfg.watchTimeout = time.Second
	startOn(t, f, cfg)
	// The server ends each watch after the timeoutSeconds it was asked for
	// (1 or 2 here); the cache starts the next from where it was, without
	// listing again.
	waitFor(t, "three watches", func() bool { return len(f.okWatchesAfter(0)) >= 3 })
	for _, r := range f.okWatchesAfter(0) {
		if s := r.query.Get("timeoutSeconds"); s != "1" && s != "2" {
			t.Errorf("timeoutSeconds=%s, want 1 or 2", s)
		}
		if rv := r.query.Get("resourceVersion"); rv != "1009" {
			t.Errorf("rewatch from %s, want 1009", rv)
		}
	}
	if n := f.lists(); n != 1 {
		t.Errorf("%d lists, want 1", n)
	}
}

func TestSilentWatchIsAbandoned(t *testing.T) {
	// A connection that died without a word: the server neither sends nor
	// ends the watch, whatever timeoutSeconds said.
	f := newFakeAPI(t, fixturePods(t)...)
	f.set(func(f *fakeAPI) { f.silent = true })
	cfg := f.config(t, "token-1")
	cfg.watchTimeout = time.Second
	cfg.watchGrace = 100 * time.Millisecond
	startOn(t, f, cfg)
	waitFor(t, "a second watch", func() bool { return len(f.okWatchesAfter(0)) >= 2 })
}

func TestCloseEndsTheWatch(t *testing.T) {
	c, f := startCache(t, fixturePods(t)...)
	waitFor(t, "a watch", func() bool { return f.openWatches() > 0 })
	c.Close()
	waitFor(t, "the watch to close", func() bool { return f.openWatches() == 0 })
	n := len(f.log())
	time.Sleep(50 * time.Millisecond)
	if len(f.log()) != n {
		t.Error("requests after Close")
	}
	c.Close() // twice is harmless
}

func TestNewFails(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fakeAPI, cfg *inCluster)
		node  string
		want  []string // in the error
	}{
		{"RBAC missing", func(t *testing.T, f *fakeAPI, cfg *inCluster) {
			f.set(func(f *fakeAPI) { f.refuse = http.StatusForbidden })
		}, thisNode, []string{"403 Forbidden", "cannot list resource", "ClusterRole grants list and watch on pods"}},
		{"token refused", func(t *testing.T, f *fakeAPI, cfg *inCluster) {
			f.set(func(f *fakeAPI) { f.tokens = map[string]bool{} })
		}, thisNode, []string{"401 Unauthorized"}},
		{"server certificate not from the cluster CA", func(t *testing.T, f *fakeAPI, cfg *inCluster) {
			writeFile(t, cfg.caFile, otherCA(t))
		}, thisNode, []string{"certificate", "reachable"}},
		{"no token mounted", func(t *testing.T, f *fakeAPI, cfg *inCluster) {
			if err := os.Remove(cfg.tokenFile); err != nil {
				t.Fatal(err)
			}
		}, thisNode, []string{"read service account token", "is the service account token mounted?"}},
		{"empty token file", func(t *testing.T, f *fakeAPI, cfg *inCluster) {
			writeFile(t, cfg.tokenFile, "\n")
		}, thisNode, []string{"is empty"}},
		{"no CA", func(t *testing.T, f *fakeAPI, cfg *inCluster) {
			if err := os.Remove(cfg.caFile); err != nil {
				t.Fatal(err)
			}
		}, thisNode, []string{"read cluster CA", "ca.crt"}},
		{"CA not PEM", func(t *testing.T, f *fakeAPI, cfg *inCluster) {
			writeFile(t, cfg.caFile, "not a certificate")
		}, thisNode, []string{"holds no PEM certificate"}},
		{"no node name", func(t *testing.T, f *fakeAPI, cfg *inCluster) {}, "", []string{"K8S_NODE_NAME"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, fixturePods(t)...)
			cfg := f.config(t, "token-1")
			tt.setup(t, f, &cfg)
			c, err := start(context.Background(), cfg, tt.node, 500*time.Millisecond)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if c == nil || c.stop != nil {
				t.Fatalf("want a no-op Cache alongside the error, got %+v", c)
			}
			if _, ok := c.Lookup(Container{PodUID: "11111111-1111-4111-8111-111111111111"}); ok {
				t.Error("a failed Cache found something")
			}
		})
	}
}

func TestNewStopsWithContext(t *testing.T) {
	f := newFakeAPI(t)
	f.set(func(f *fakeAPI) { f.refuse = http.StatusForbidden })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := start(ctx, f.config(t, "token-1"), thisNode, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
}

// otherCA is a CA certificate in PEM that signed nothing the test server
// shows.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "another-cluster-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestTokenReadAgainWhenOld(t *testing.T) {
	f := newFakeAPI(t, fixturePods(t)...)
	f.set(func(f *fakeAPI) { f.tokens["token-2"] = true })
	cfg := f.config(t, "token-1")
	cfg.tokenMaxAge = 10 * time.Millisecond
	startOn(t, f, cfg)
	writeFile(t, cfg.tokenFile, "token-2")
	time.Sleep(20 * time.Millisecond)
	before := len(f.log())
	f.disturb(t, "end")
	waitFor(t, "a new watch", func() bool { return len(f.okWatchesAfter(before)) > 0 })
	if got := f.okWatchesAfter(before)[0].token; got != "token-2" {
		t.Errorf("rewatch with %q, want the token now in the file", got)
	}
}

// TestReadEventsFixture feeds a recorded watch stream whole and one byte at
// a time, and checks the cache after it and what the stream said.
func TestReadEventsFixture(t *testing.T) {
	raw, err := os.ReadFile("testdata/watch_stream_ollama.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(raw),
		"bytewise": iotest.OneByteReader(bytes.NewReader(raw)),
	} {
		t.Run(name, func(t *testing.T) {
			c := &Cache{node: thisNode}
			var seen []string
			apply := func(ev watchEvent) {
				c.apply(ev)
				_, byID := c.Lookup(Container{ID: hexID("b1")})
				_, byUID := c.Lookup(Container{PodUID: "22222222-2222-4222-8222-222222222222"})
				seen = append(seen, ev.typ+" "+ev.rv+" "+strconv.FormatBool(byUID)+" "+strconv.FormatBool(byID))
			}
			rv, n, err := readEvents(r, "2000", apply)
			want := []string{
				"ADDED 2001 true false", // scheduled, no container yet
				"MODIFIED 2005 true true",
				"BOOKMARK 2009 true true",
				"MODIFIED 2011 true true", // terminating, still there
				"DELETED 2012 false false",
			}
			if strings.Join(seen, "\n") != strings.Join(want, "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
			}
			if rv != "2012" || n != 5 {
				t.Errorf("rv, n = %s, %d; want 2012, 5", rv, n)
			}
			if !errors.Is(err, errGone) || !strings.Contains(err.Error(), "too old resource version") {
				t.Errorf("err = %v, want the ERROR event's 410", err)
			}
		})
	}
}

func TestReadEventsBrokenStream(t *testing.T) {
	raw, err := os.ReadFile("testdata/watch_stream_ollama.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	tests := []struct {
		name    string
		stream  []byte
		wantRV  string
		wantN   int
		wantErr string // "" for a clean end
	}{
		{"clean end after two events", bytes.Join(lines[:2], nil), "2005", 2, ""},
		{"cut inside an event", append(bytes.Join(lines[:2], nil), lines[2][:40]...), "2005", 2, "unexpected EOF"},
		{"not JSON", []byte("<html>proxy error</html>"), "2000", 0, "invalid character"},
		{"object of the wrong shape", []byte(`{"type":"ADDED","object":{"metadata":{"labels":["x"]}}}`), "2000", 0, "cannot unmarshal"},
		{"unknown event type ignored", []byte(`{"type":"SYNC","object":{}}` + "\n" + string(lines[0])), "2001", 2, ""},
		{"error event other than 410", []byte(`{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"internal error","reason":"InternalError","code":500}}`), "2000", 0, "500 InternalError: internal error"},
		{"empty", nil, "2000", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cache{node: thisNode}
			rv, n, err := readEvents(bytes.NewReader(tt.stream), "2000", c.apply)
			if rv != tt.wantRV || n != tt.wantN {
				t.Errorf("rv, n = %s, %d; want %s, %d", rv, n, tt.wantRV, tt.wantN)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want a clean end", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			case errors.Is(err, errGone):
				t.Errorf("err = %v is not a 410", err)
			}
		})
	}
}

func TestDecodeListFixture(t *testing.T) {
	raw, err := os.ReadFile("testdata/podlist_node_a.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(raw),
		"bytewise": iotest.OneByteReader(bytes.NewReader(raw)),
	} {
		t.Run(name, func(t *testing.T) {
			pods, meta, err := decodeList(r)
			if err != nil {
				t.Fatal(err)
			}
			if meta.ResourceVersion != "1042" || meta.Continue != "" {
				t.Errorf("meta = %+v", meta)
			}
			var names []string
			for _, p := range pods {
				names = append(names, p.name)
			}
			want := "chat-api-7c9f8d6b5-x2k4j ollama-0 gpu-agent-7xk2p embed-batch-29000000-q8zlm migrate-2-hx7vq hand-rs-abcde debug-shell etcd-node-a chat-api-7c9f8d6b5-remote"
			if got := strings.Join(names, " "); got != want {
				t.Errorf("pods %s\nwant %s", got, want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: time.Second}
	// Doubling, never more than max, never less than half the step.
	steps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, step := range steps {
		step *= time.Millisecond
		if d := b.next(); d < step/2 || d > step {
			t.Errorf("wait %d = %s, want in [%s, %s]", i, d, step/2, step)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset %s, want at most the base", d)
	}
	for range 100 {
		b.next() // no overflow however long it fails
	}
	if d := b.next(); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("after many failures %s, want within [max/2, max]", d)
	}
}

func TestInClusterFromEnv(t *testing.T) {
	tests := []struct{ host, port, wantURL string }{
		{"10.96.0.1", "443", "https://10.96.0.1:443/api/v1/pods"},
		{"fd00:10:96::1", "443", "https://[fd00:10:96::1]:443/api/v1/pods"},
	}
	for _, tt := range tests {
		t.Setenv("KUBERNETES_SERVICE_HOST", tt.host)
		t.Setenv("KUBERNETES_SERVICE_PORT", tt.port)
		cfg := inClusterFromEnv()
		if cfg.tokenFile != serviceAccountDir+"/token" || cfg.caFile != serviceAccountDir+"/ca.crt" {
			t.Errorf("credentials from %s and %s, want the service account volume", cfg.tokenFile, cfg.caFile)
		}
		// The rest of the client needs files; the URL is what the
		// environment decides.
		f := newFakeAPI(t)
		files := f.config(t, "token-1")
		cfg.tokenFile, cfg.caFile = files.tokenFile, files.caFile
		api, err := newAPIClient(cfg, thisNode)
		if err != nil {
			t.Fatal(err)
		}
		if api.podsURL != tt.wantURL {
			t.Errorf("%s %s: URL %s, want %s", tt.host, tt.port, api.podsURL, tt.wantURL)
		}
	}
}
