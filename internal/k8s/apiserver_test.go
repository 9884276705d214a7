package k8s

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a kube-apiserver for the one collection the cache reads,
// /api/v1/pods, over TLS. It speaks the protocol as the real server does:
// bearer tokens, the spec.nodeName field selector, lists in pages joined
// by continue tokens over one snapshot, watches that replay the history
// after a resourceVersion and then follow changes as they are made,
// bookmarks when asked for, timeoutSeconds, and 410 Gone for a
// resourceVersion older than the history kept or an expired continue
// token. Tests change pods and disturb watches through its methods.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	rv      int
	pods    map[string]map[string]any // by UID, as the server stores them
	history []fakeEvent               // every change, oldest first
	oldest  int                       // a watch from before this resourceVersion gets 410
	changed chan struct{}             // closed and replaced on every change

	tokens              map[string]bool // bearer tokens accepted
	pageSize            int             // most items per page, whatever limit asks
	ignoreFieldSelector bool            // as a broken proxy or an old fake would
	refuse              int             // when set, the status every request gets
	holdWatches         bool            // while set, watch requests get 503
	silent              bool            // watches send nothing and never end
	expireContinues     int             // this many continue tokens are refused as expired

	snapshots map[string]fakeSnapshot // by continue token
	watchers  map[*fakeWatcher]bool
	requests  []fakeRequest
	statuses  map[int]int // responses by status
}

type fakeEvent struct {
	rv  int
	typ string
	obj map[string]any
}

type fakeSnapshot struct {
	rv     int
	items  []map[string]any
	offset int
}

type fakeWatcher struct{ cmds chan string }

type fakeRequest struct {
	method, path string
	query        url.Values
	token        string
	accept       string
	accepted     bool // answered 200
}

func (r fakeRequest) watch() bool { return r.query.Get("watch") == "1" }

func newFakeAPI(t *testing.T, pods ...map[string]any) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		t:         t,
		rv:        1000,
		pods:      map[string]map[string]any{},
		changed:   make(chan struct{}),
		tokens:    map[string]bool{"token-1": true},
		snapshots: map[string]fakeSnapshot{},
		watchers:  map[*fakeWatcher]bool{},
		statuses:  map[int]int{},
	}
	for _, p := range pods {
		f.put(p)
	}
	f.srv = httptest.NewUnstartedServer(f)
	// The handshakes that a test of a wrong CA fails on purpose.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// config points a cache at the server: its address, a token file holding
// token, and its certificate as the cluster CA.
func (f *fakeAPI) config(t *testing.T, token string) inCluster {
	t.Helper()
	dir := t.TempDir()
	cfg := inCluster{
		tokenFile:    filepath.Join(dir, "token"),
		caFile:       filepath.Join(dir, "ca.crt"),
		tokenMaxAge:  time.Hour,
		watchTimeout: time.Minute,
		watchGrace:   30 * time.Second,
		retryMin:     5 * time.Millisecond,
		retryMax:     50 * time.Millisecond,
	}
	var err error
	cfg.host, cfg.port, err = net.SplitHostPort(f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg.tokenFile, token+"\n")
	writeFile(t, cfg.caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})))
	return cfg
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// As the kubelet does: a new file renamed over the old.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	req := fakeRequest{
		method: r.Method, path: r.URL.Path, query: r.URL.Query(),
		token:  strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
		accept: r.Header.Get("Accept"),
	}
	f.requests = append(f.requests, req)
	w = &statusRecorder{ResponseWriter: w, f: f, i: len(f.requests) - 1}
	tokenOK, refuse := f.tokens[req.token], f.refuse
	f.mu.Unlock()

	switch {
	case r.Method != http.MethodGet || r.URL.Path != "/api/v1/pods":
		writeStatus(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
	case !tokenOK:
		writeStatus(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
	case refuse != 0:
		writeStatus(w, refuse, "Forbidden", `pods is forbidden: User "system:serviceaccount:llm-observer:llm-observer" cannot list resource "pods" in API group "" at the cluster scope`)
	case req.watch():
		f.serveWatch(w, r, req.query)
	default:
		f.serveList(w, req.query)
	}
}

// statusRecorder notes each response's status as its header is written.
type statusRecorder struct {
	http.ResponseWriter
	f      *fakeAPI
	i      int
	header bool
}

func (s *statusRecorder) WriteHeader(code int) {
	s.header = true
	s.f.mu.Lock()
	s.f.statuses[code]++
	s.f.requests[s.i].accepted = code == http.StatusOK
	s.f.mu.Unlock()
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.header {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() { s.ResponseWriter.(http.Flusher).Flush() }

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(statusObject(code, reason, msg))
}

func statusObject(code int, reason, msg string) map[string]any {
	return map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	}
}

// onNode is the field selector: "" for every node.
func (f *fakeAPI) onNode(q url.Values) (string, bool) {
	sel := q.Get("fieldSelector")
	if sel == "" || f.ignoreFieldSelector {
		return "", true
	}
	node, ok := strings.CutPrefix(sel, "spec.nodeName=")
	return node, ok
}

func matches(obj map[string]any, node string) bool {
	if node == "" {
		return true
	}
	spec, _ := obj["spec"].(map[string]any)
	return spec["nodeName"] == node
}

func (f *fakeAPI) serveList(w http.ResponseWriter, q url.Values) {
	node, ok := f.onNode(q)
	if !ok {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "unable to parse requested fieldSelector")
		return
	}
	if rv := q.Get("resourceVersion"); rv != "" && (rv != "0" || q.Get("continue") != "") {
		// The real server would serve an exact version; the cache has no
		// use for one, and takes none with a continue token.
		writeStatus(w, http.StatusBadRequest, "BadRequest", "specifying resource version is not allowed when using continue")
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	f.mu.Lock()
	if f.pageSize > 0 && (limit <= 0 || limit > f.pageSize) {
		limit = f.pageSize
	}
	var snap fakeSnapshot
	if token := q.Get("continue"); token != "" {
		var found bool
		snap, found = f.snapshots[token]
		if !found || f.expireContinues > 0 {
			f.expireContinues--
			f.mu.Unlock()
			writeStatus(w, http.StatusGone, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
			return
		}
	} else {
		snap.rv = f.rv
		for _, p := range f.pods {
			if matches(p, node) {
				snap.items = append(snap.items, clone(p))
			}
		}
		slices.SortFunc(snap.items, func(a, b map[string]any) int { return strings.Compare(key(a), key(b)) })
	}
	end := len(snap.items)
	if limit > 0 && snap.offset+limit < end {
		end = snap.offset + limit
	}
	meta := map[string]any{"resourceVersion": strconv.Itoa(snap.rv)}
	if end < len(snap.items) {
		token := fmt.Sprintf("continue-%d-%d", snap.rv, end)
		f.snapshots[token] = fakeSnapshot{rv: snap.rv, items: snap.items, offset: end}
		meta["continue"] = token
	}
	page := snap.items[snap.offset:end]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page})
}

func key(obj map[string]any) string {
	m := obj["metadata"].(map[string]any)
	return fmt.Sprint(m["namespace"], "/", m["name"])
}

func (f *fakeAPI) serveWatch(w http.ResponseWriter, r *http.Request, q url.Values) {
	node, ok := f.onNode(q)
	if !ok {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "unable to parse requested fieldSelector")
		return
	}
	from, err := strconv.Atoi(q.Get("resourceVersion"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", "a watch from the start needs resourceVersion")
		return
	}
	secs, _ := strconv.Atoi(q.Get("timeoutSeconds"))
	f.mu.Lock()
	oldest, hold, silent := f.oldest, f.holdWatches, f.silent
	f.mu.Unlock()
	if hold {
		writeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the server is currently unable to handle the request")
		return
	}
	if from < oldest {
		writeStatus(w, http.StatusGone, "Expired", fmt.Sprintf("too old resource version: %d (%d)", from, oldest))
		return
	}
	fw := &fakeWatcher{cmds: make(chan string, 4)}
	f.mu.Lock()
	f.watchers[fw] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.watchers, fw)
		f.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	if silent {
		<-r.Context().Done()
		return
	}
	var timeout <-chan time.Time
	if secs > 0 {
		t := time.NewTimer(time.Duration(secs) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	enc := json.NewEncoder(w)
	send := func(typ string, obj map[string]any) {
		_ = enc.Encode(map[string]any{"type": typ, "object": obj})
		flusher.Flush()
	}
	cursor := from
	for {
		f.mu.Lock()
		var due []fakeEvent
		for _, ev := range f.history {
			if ev.rv > cursor && matches(ev.obj, node) {
				due = append(due, ev)
			}
		}
		changed := f.changed
		f.mu.Unlock()
		for _, ev := range due {
			send(ev.typ, ev.obj)
			cursor = ev.rv
		}
		select {
		case <-changed:
		case cmd := <-fw.cmds:
			switch cmd {
			case "drop":
				// The connection breaks mid-stream: no clean end.
				panic(http.ErrAbortHandler)
			case "end":
				return
			case "gone":
				send(eventError, statusObject(http.StatusGone, "Expired", fmt.Sprintf("too old resource version: %d (%d)", cursor, cursor+100)))
				return
			case "bookmark":
				if q.Get("allowWatchBookmarks") == "true" {
					// Bookmarks carry the resourceVersion past changes
					// the field selector kept from this watch.
					f.mu.Lock()
					f.rv += 7
					cursor = f.rv
					f.mu.Unlock()
					send(eventBookmark, map[string]any{"kind": "Pod", "apiVersion": "v1", "metadata": map[string]any{"resourceVersion": strconv.Itoa(cursor)}})
				}
			}
		case <-timeout:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// put creates or replaces a pod and returns its new resourceVersion.
func (f *fakeAPI) put(obj map[string]any) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	uid := obj["metadata"].(map[string]any)["uid"].(string)
	typ := eventModified
	if f.pods[uid] == nil {
		typ = eventAdded
	}
	obj = f.record(typ, obj)
	f.pods[uid] = obj
	return f.rv
}

// remove deletes a pod and returns the deletion's resourceVersion.
func (f *fakeAPI) remove(uid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	obj := f.pods[uid]
	if obj == nil {
		f.t.Fatalf("no pod %s to delete", uid)
	}
	delete(f.pods, uid)
	f.record(eventDeleted, obj)
	return f.rv
}

func (f *fakeAPI) record(typ string, obj map[string]any) map[string]any {
	f.rv++
	obj = clone(obj)
	obj["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.rv)
	f.history = append(f.history, fakeEvent{rv: f.rv, typ: typ, obj: obj})
	close(f.changed)
	f.changed = make(chan struct{})
	return obj
}

// compact forgets the history before the latest change, as etcd's
// compaction does.
func (f *fakeAPI) compact() {
	f.mu.Lock()
	f.oldest = f.rv
	f.mu.Unlock()
}

// disturb sends cmd ("drop", "end", "gone", "bookmark") to the watches
// open now, after waiting for one to be open.
func (f *fakeAPI) disturb(t *testing.T, cmd string) {
	t.Helper()
	waitFor(t, "a watch to be open", func() bool { return f.openWatches() > 0 })
	f.mu.Lock()
	defer f.mu.Unlock()
	for fw := range f.watchers {
		fw.cmds <- cmd
	}
}

func (f *fakeAPI) openWatches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watchers)
}

func (f *fakeAPI) set(change func(f *fakeAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeAPI) log() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// lists counts the list requests that began a list (had no continue
// token).
func (f *fakeAPI) lists() int {
	n := 0
	for _, r := range f.log() {
		if !r.watch() && r.query.Get("continue") == "" {
			n++
		}
	}
	return n
}

// watchesAfter returns the watch requests made after the first n requests.
func (f *fakeAPI) watchesAfter(n int) []fakeRequest {
	var out []fakeRequest
	for _, r := range f.log()[n:] {
		if r.watch() {
			out = append(out, r)
		}
	}
	return out
}

func clone(obj map[string]any) map[string]any {
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}
