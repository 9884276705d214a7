package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

const (
	// pageSize is the most pods one list response holds; a node rarely
	// runs more, so a list is usually one request.
	pageSize = 500
	// listTimeout bounds one page of the list.
	listTimeout = time.Minute
	// shortWatch is how long a watch must last, when it brings no event,
	// for the next one to start at once: a server that ends every watch
	// straight away is failing, and gets the backoff of a failure.
	shortWatch = time.Second
)

// inCluster is where the API server and the pod's credentials are, and how
// patient the watch is with them. New takes it from the environment and the
// service account volume; tests point it at a server of their own.
type inCluster struct {
	host, port        string
	tokenFile, caFile string
	// tokenMaxAge is how long a token read from tokenFile is used before
	// the file is read again.
	tokenMaxAge time.Duration
	// watchTimeout is the shortest timeoutSeconds a watch asks for; each
	// asks for a random length between it and twice it.
	watchTimeout time.Duration
	// watchGrace is how long past its timeoutSeconds a watch that has gone
	// quiet is given before it is abandoned.
	watchGrace time.Duration
	// retryMin and retryMax bound the wait before the next attempt after a
	// failure.
	retryMin, retryMax time.Duration
}

func inClusterFromEnv() inCluster {
	return inCluster{
		host:         os.Getenv("KUBERNETES_SERVICE_HOST"),
		port:         os.Getenv("KUBERNETES_SERVICE_PORT"),
		tokenFile:    serviceAccountDir + "/token",
		caFile:       serviceAccountDir + "/ca.crt",
		tokenMaxAge:  time.Minute,
		watchTimeout: 5 * time.Minute,
		watchGrace:   30 * time.Second,
		retryMin:     500 * time.Millisecond,
		retryMax:     30 * time.Second,
	}
}

// apiClient lists and watches the pods of one node.
type apiClient struct {
	podsURL      string
	selector     string
	http         *http.Client
	token        *tokenFile
	watchTimeout time.Duration
	watchGrace   time.Duration
}

func newAPIClient(cfg inCluster, node string) (*apiClient, error) {
	token := &tokenFile{path: cfg.tokenFile, maxAge: cfg.tokenMaxAge}
	if _, err := token.get(); err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(cfg.caFile)
	if err != nil {
		return nil, fmt.Errorf("read cluster CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cluster CA %s holds no PEM certificate", cfg.caFile)
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
		// Pings find a connection that died without a word well before
		// the watch's own deadline does.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
	return &apiClient{
		podsURL:      "https://" + net.JoinHostPort(cfg.host, cfg.port) + "/api/v1/pods",
		selector:     "spec.nodeName=" + node,
		http:         &http.Client{Transport: transport},
		token:        token,
		watchTimeout: cfg.watchTimeout,
		watchGrace:   cfg.watchGrace,
	}, nil
}

// get makes one GET on the pods collection and returns the response when
// its status is 200; any other status comes back as the error the server
// described.
func (a *apiClient) get(ctx context.Context, op string, q url.Values) (*http.Response, error) {
	token, err := a.token.get()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// The field selector makes the API server send only this node's pods,
	// so each agent's memory and the server's load grow with the node, not
	// with the cluster.
	q.Set("fieldSelector", a.selector)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.podsURL+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "llm-observer")
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		// Most likely the kubelet has rotated the token since it was read.
		a.token.expire()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st apiStatus
	_ = json.Unmarshal(body, &st) // a body that is no Status still has its HTTP status
	st.Code = resp.StatusCode
	if st.Reason == "" && st.Message == "" {
		st.Reason = http.StatusText(resp.StatusCode)
	}
	return nil, st.err(op)
}

// list reads every page of the node's pod list and returns the pods and
// the resourceVersion to watch from.
func (a *apiClient) list(ctx context.Context) ([]*pod, string, error) {
	// resourceVersion=0 lets the API server answer from its watch cache
	// instead of reading etcd, where the field selector is no index: when
	// every node's agent starts at once, each would otherwise have the
	// whole cluster's pods read to find its own. A list so served may be a
	// little old; the watch from its resourceVersion brings it up to date.
	q := url.Values{"limit": {strconv.Itoa(pageSize)}, "resourceVersion": {"0"}}
	var all []*pod
	for {
		pods, meta, err := a.listPage(ctx, q)
		if err != nil {
			return nil, "", err
		}
		all = append(all, pods...)
		if meta.Continue == "" {
			return all, meta.ResourceVersion, nil
		}
		if meta.Continue == q.Get("continue") {
			return nil, "", errors.New("list pods: the API server sent the same continue token twice")
		}
		// The token holds the version of the first page; the server takes
		// no other with it.
		q.Del("resourceVersion")
		q.Set("continue", meta.Continue)
	}
}

func (a *apiClient) listPage(ctx context.Context, q url.Values) ([]*pod, listMeta, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	resp, err := a.get(ctx, "list pods", q)
	if err != nil {
		return nil, listMeta{}, err
	}
	defer resp.Body.Close()
	pods, meta, err := decodeList(resp.Body)
	if err != nil {
		return nil, meta, fmt.Errorf("list pods: %w", err)
	}
	return pods, meta, nil
}

// watch follows the node's pods from resourceVersion rv, handing each
// event to apply, until the server ends the watch, the stream breaks or
// ctx is done. It returns the resourceVersion to go on from and how many
// events came.
func (a *apiClient) watch(ctx context.Context, rv string, apply func(watchEvent)) (string, int, error) {
	// Between the timeout and twice it, so that the watches of every
	// node's agent, started together, do not all end together.
	timeout := a.watchTimeout + rand.N(a.watchTimeout+1)
	secs := max(int(timeout/time.Second), 1)
	q := url.Values{
		"watch":               {"1"},
		"resourceVersion":     {rv},
		"allowWatchBookmarks": {"true"},
		"timeoutSeconds":      {strconv.Itoa(secs)},
	}
	// A connection that died without a word would otherwise hold the
	// watch forever, the server's end of it never arriving.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+a.watchGrace)
	defer cancel()
	resp, err := a.get(ctx, "watch pods", q)
	if err != nil {
		return rv, 0, err
	}
	defer resp.Body.Close()
	return readEvents(resp.Body, rv, apply)
}

// readEvents reads a watch stream: JSON events one after another, each on
// its own line. A clean end of the stream is the server ending the watch
// and no error.
func readEvents(r io.Reader, rv string, apply func(watchEvent)) (string, int, error) {
	dec := json.NewDecoder(r)
	for n := 0; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if err == io.EOF {
				return rv, n, nil
			}
			return rv, n, fmt.Errorf("watch pods: %w", err)
		}
		ev, err := decodeEvent(raw)
		if err != nil {
			return rv, n, fmt.Errorf("watch pods: %w", err)
		}
		if ev.rv != "" {
			rv = ev.rv
		}
		apply(ev)
	}
}

// tokenFile is the service account token. It is read again after maxAge,
// and at once after the server refuses it: the kubelet replaces a bound
// token long before it expires, about hourly, and an agent that kept the
// first would be locked out. Only the watch's goroutine uses it.
type tokenFile struct {
	path   string
	maxAge time.Duration
	token  string
	read   time.Time
}

func (t *tokenFile) get() (string, error) {
	if t.token != "" && time.Since(t.read) < t.maxAge {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err == nil {
		if token := strings.TrimSpace(string(b)); token != "" {
			t.token, t.read = token, time.Now()
			return token, nil
		}
		err = fmt.Errorf("%s is empty", t.path)
	}
	if t.token != "" {
		// The kubelet swaps the file by renaming; a failed read in between
		// is no reason to stop using the token there was.
		return t.token, nil
	}
	return "", fmt.Errorf("read service account token: %w", err)
}

func (t *tokenFile) expire() { t.read = time.Time{} }

// watcher keeps a Cache current: it lists the node's pods, then watches
// them from the list's resourceVersion, and lists again when the server no
// longer has the history to resume a watch from.
type watcher struct {
	api     *apiClient
	cache   *Cache
	listed  chan struct{} // closed when the first list is in the cache
	backoff backoff

	mu      sync.Mutex
	lastErr error
}

func (w *watcher) run(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		pods, rv, err := w.api.list(ctx)
		if ctx.Err() != nil {
			return // Close, not a failure to report
		}
		if err != nil {
			w.failed(err)
			if !w.backoff.wait(ctx) {
				return
			}
			continue
		}
		w.cache.replace(pods)
		if first {
			close(w.listed)
			first = false
		}
		w.backoff.reset()
		w.follow(ctx, rv)
	}
}

// follow watches from rv on, one watch after another, until the server
// says rv is too old or ctx is done.
func (w *watcher) follow(ctx context.Context, rv string) {
	for {
		began := time.Now()
		next, n, err := w.api.watch(ctx, rv, w.cache.apply)
		if ctx.Err() != nil {
			return
		}
		rv = next
		if n > 0 {
			w.backoff.reset()
		}
		switch {
		case errors.Is(err, errGone):
			// A watch that fails at once after a list, again and again,
			// must not turn into a stream of lists.
			if n == 0 {
				w.backoff.wait(ctx)
			}
			return
		case err != nil:
			w.failed(err)
		case n > 0 || time.Since(began) >= shortWatch:
			continue // the server ended the watch at its timeout
		}
		if !w.backoff.wait(ctx) {
			return
		}
	}
}

func (w *watcher) failed(err error) {
	w.cache.failures.Add(1)
	w.mu.Lock()
	w.lastErr = err
	w.mu.Unlock()
}

func (w *watcher) lastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// backoff is the wait before retrying after a failure: doubling from base
// up to max, less a random part of up to half.
type backoff struct {
	base, max time.Duration
	failures  int
}

func (b *backoff) reset() { b.failures = 0 }

func (b *backoff) next() time.Duration {
	d := b.max
	if b.failures < 30 {
		if e := b.base << b.failures; e > 0 && e < b.max {
			d = e
		}
	}
	b.failures++
	// After an API server restart every node's agent retries; spread out,
	// they do not arrive as one wave.
	return d/2 + rand.N(d/2+1)
}

// wait sleeps for the next backoff; false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
