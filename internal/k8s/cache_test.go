package k8s

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

const thisNode = "node-a"

// hexID makes a distinct 64-hex-digit container ID from a short tag, as
// the fixtures spell them.
func hexID(tag string) string {
	return tag + strings.Repeat("0", 64-len(tag))
}

// fixturePods are the pods of testdata/podlist_node_a.json, a PodList as
// the API server sends it: eight pods on node-a, one on node-b.
func fixturePods(t *testing.T) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile("testdata/podlist_node_a.json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func fixturePod(t *testing.T, name string) map[string]any {
	t.Helper()
	for _, p := range fixturePods(t) {
		if p["metadata"].(map[string]any)["name"] == name {
			return p
		}
	}
	t.Fatalf("no pod %s in the fixture", name)
	return nil
}

func uidOf(p map[string]any) string { return p["metadata"].(map[string]any)["uid"].(string) }

// startCache starts a cache on a fake API server holding pods and waits
// for its first list.
func startCache(t *testing.T, pods ...map[string]any) (*Cache, *fakeAPI) {
	t.Helper()
	f := newFakeAPI(t, pods...)
	return startOn(t, f, f.config(t, "token-1")), f
}

func startOn(t *testing.T, f *fakeAPI, cfg inCluster) *Cache {
	t.Helper()
	c, err := start(context.Background(), cfg, thisNode, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestLookupResolvesWorkloads(t *testing.T) {
	c, _ := startCache(t, fixturePods(t)...)
	tests := []struct {
		name        string
		ct          Container
		container   string
		controller  Workload
		workload    Workload
		serviceName string
	}{
		{"deployment via replicaset hash", Container{ID: hexID("a2"), PodUID: "11111111-1111-4111-8111-111111111111"}, "proxy",
			Workload{KindReplicaSet, "chat-api-7c9f8d6b5"}, Workload{KindDeployment, "chat-api"}, "chat"},
		{"init container", Container{ID: hexID("a3"), PodUID: "11111111-1111-4111-8111-111111111111"}, "migrate-schema",
			Workload{KindReplicaSet, "chat-api-7c9f8d6b5"}, Workload{KindDeployment, "chat-api"}, "chat"},
		{"statefulset", Container{ID: hexID("b1"), PodUID: "22222222-2222-4222-8222-222222222222"}, "ollama",
			Workload{KindStatefulSet, "ollama"}, Workload{KindStatefulSet, "ollama"}, "ollama"},
		{"daemonset", Container{ID: hexID("c1"), PodUID: "33333333-3333-4333-8333-333333333333"}, "agent",
			Workload{KindDaemonSet, "gpu-agent"}, Workload{KindDaemonSet, "gpu-agent"}, "gpu-agent"},
		{"cronjob via job name, controller not first owner", Container{ID: hexID("d1"), PodUID: "44444444-4444-4444-8444-444444444444"}, "embed",
			Workload{KindJob, "embed-batch-29000000"}, Workload{KindCronJob, "embed-batch"}, "embed-batch"},
		{"plain job", Container{ID: hexID("e1"), PodUID: "55555555-5555-4555-8555-555555555555"}, "migrate",
			Workload{KindJob, "migrate-2"}, Workload{KindJob, "migrate-2"}, "migrate-2"},
		{"replicaset without deployment", Container{ID: hexID("f1"), PodUID: "66666666-6666-4666-8666-666666666666"}, "main",
			Workload{KindReplicaSet, "hand-rs"}, Workload{KindReplicaSet, "hand-rs"}, "hand-rs"},
		{"bare pod", Container{ID: hexID("71"), PodUID: "77777777-7777-4777-8777-777777777777"}, "shell",
			Workload{}, Workload{}, "debug-shell"},
		{"static pod found by container id", Container{ID: hexID("81"), PodUID: "6ec3ee1d8bc4ba0a5ec0f0bc4e1d7a9e"}, "etcd",
			Workload{"Node", thisNode}, Workload{"Node", thisNode}, thisNode},
		{"container not yet in status", Container{ID: hexID("ff"), PodUID: "11111111-1111-4111-8111-111111111111"}, "",
			Workload{KindReplicaSet, "chat-api-7c9f8d6b5"}, Workload{KindDeployment, "chat-api"}, "chat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := c.Lookup(tt.ct)
			if !ok {
				t.Fatalf("Lookup(%+v) found nothing", tt.ct)
			}
			if id.ContainerName != tt.container || id.ContainerID != tt.ct.ID {
				t.Errorf("container = %q %q, want %q %q", id.ContainerName, id.ContainerID, tt.container, tt.ct.ID)
			}
			if id.Controller != tt.controller || id.Workload != tt.workload {
				t.Errorf("controller, workload = %+v, %+v; want %+v, %+v", id.Controller, id.Workload, tt.controller, tt.workload)
			}
			if got := id.ServiceName(); got != tt.serviceName {
				t.Errorf("ServiceName() = %q, want %q", got, tt.serviceName)
			}
			if id.NodeName != thisNode {
				t.Errorf("NodeName = %q", id.NodeName)
			}
		})
	}
}

func TestLookupIgnoresOtherNodes(t *testing.T) {
	f := newFakeAPI(t, fixturePods(t)...)
	// A server (or a proxy before it) that ignores the field selector hands
	// the cache node-b's pod too; the cache must still refuse it, by UID
	// and by ID.
	f.set(func(f *fakeAPI) { f.ignoreFieldSelector = true })
	c := startOn(t, f, f.config(t, "token-1"))
	if _, ok := c.byUID["99999999-9999-4999-8999-999999999999"]; !ok {
		t.Fatal("the server did not send node-b's pod; the test tests nothing")
	}
	for _, ct := range []Container{
		{ID: hexID("91"), PodUID: "99999999-9999-4999-8999-999999999999"},
		{ID: hexID("91")},
	} {
		if id, ok := c.Lookup(ct); ok {
			t.Errorf("Lookup(%+v) = %+v, want nothing from another node", ct, id)
		}
	}
}

func TestRequestsAskForThisNodeOnly(t *testing.T) {
	_, f := startCache(t, fixturePods(t)...)
	waitFor(t, "a watch", func() bool { return f.openWatches() > 0 })
	var lists, watches int
	for _, r := range f.log() {
		if r.method != "GET" || r.path != "/api/v1/pods" {
			t.Errorf("%s %s: the cache only lists and watches pods", r.method, r.path)
		}
		if got := r.query.Get("fieldSelector"); got != "spec.nodeName="+thisNode {
			t.Errorf("field selector %q, want spec.nodeName=%s", got, thisNode)
		}
		if r.accept != "application/json" {
			t.Errorf("Accept %q, want application/json", r.accept)
		}
		if r.token != "token-1" {
			t.Errorf("bearer token %q, want the service account's", r.token)
		}
		if r.watch() {
			watches++
			secs, _ := strconv.Atoi(r.query.Get("timeoutSeconds"))
			if r.query.Get("resourceVersion") != "1009" || r.query.Get("allowWatchBookmarks") != "true" || secs < 60 || secs > 120 {
				t.Errorf("watch %v: want resourceVersion of the list, bookmarks, timeoutSeconds in [60, 120]", r.query)
			}
		} else {
			lists++
			if r.query.Get("limit") != "500" || r.query.Get("resourceVersion") != "0" {
				t.Errorf("list %v: want limit=500, resourceVersion=0", r.query)
			}
		}
	}
	if lists != 1 || watches != 1 {
		t.Errorf("%d lists and %d watches, want one of each", lists, watches)
	}
}

func TestLookupFollowsPodChanges(t *testing.T) {
	c, f := startCache(t)
	full := fixturePod(t, "ollama-0")
	uid := uidOf(full)
	byUID := Container{ID: hexID("b1"), PodUID: uid}
	byID := Container{ID: hexID("b1")}
	pending := clone(full)
	delete(pending, "status")
	steps := []struct {
		name       string
		change     func()
		uidFound   bool
		container  string // name found for byUID
		idFound    bool
		serviceFor string
	}{
		{"not created yet", func() {}, false, "", false, ""},
		{"scheduled, no container yet", func() { f.put(pending) }, true, "", false, "ollama"},
		{"container started", func() { f.put(full) }, true, "ollama", true, "ollama"},
		{"relabelled", func() {
			p := clone(full)
			p["metadata"].(map[string]any)["labels"] = map[string]any{"app.kubernetes.io/name": "llm-server"}
			f.put(p)
		}, true, "ollama", true, "llm-server"},
		{"deleted", func() { f.remove(uid) }, false, "", false, ""},
	}
	for _, s := range steps {
		s.change()
		waitFor(t, s.name, func() bool {
			id, ok := c.Lookup(byUID)
			_, idOK := c.Lookup(byID)
			return ok == s.uidFound && idOK == s.idFound && id.ContainerName == s.container && id.ServiceName() == s.serviceFor
		})
	}
}

// waitFor polls cond: the cache follows the server on its own goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCacheKeepsOnlyWhatLookupNeeds(t *testing.T) {
	c, _ := startCache(t, fixturePod(t, "chat-api-7c9f8d6b5-x2k4j"), fixturePod(t, "embed-batch-29000000-q8zlm"))
	want := map[string]*pod{
		"11111111-1111-4111-8111-111111111111": {
			name: "chat-api-7c9f8d6b5-x2k4j", namespace: "apps", uid: "11111111-1111-4111-8111-111111111111", node: thisNode,
			labels:     map[string]string{"pod-template-hash": "7c9f8d6b5", "app.kubernetes.io/name": "chat", "app": "chat-api"},
			controller: ownerRef{apiVersion: "apps/v1", kind: KindReplicaSet, name: "chat-api-7c9f8d6b5"},
			containers: []containerRef{{"api", hexID("a1")}, {"proxy", hexID("a2")}, {"migrate-schema", hexID("a3")}},
		},
		"44444444-4444-4444-8444-444444444444": {
			name: "embed-batch-29000000-q8zlm", namespace: "jobs", uid: "44444444-4444-4444-8444-444444444444", node: thisNode,
			labels:     map[string]string{"batch.kubernetes.io/job-name": "embed-batch-29000000", "job-name": "embed-batch-29000000"},
			controller: ownerRef{apiVersion: "batch/v1", kind: KindJob, name: "embed-batch-29000000"},
			containers: []containerRef{{"embed", hexID("d1")}},
		},
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.byUID) != len(want) {
		t.Fatalf("%d pods cached, want %d", len(c.byUID), len(want))
	}
	for uid, w := range want {
		if got := c.byUID[uid]; !reflect.DeepEqual(got, w) {
			t.Errorf("cached %+v\nwant   %+v", got, w)
		}
	}
	if len(c.byContainer) != 4 {
		t.Errorf("%d containers indexed, want 4", len(c.byContainer))
	}
}

func TestIdentityDoesNotShareLabels(t *testing.T) {
	c, _ := startCache(t, fixturePod(t, "chat-api-7c9f8d6b5-x2k4j"))
	ct := Container{PodUID: "11111111-1111-4111-8111-111111111111"}
	id, _ := c.Lookup(ct)
	id.Labels["app.kubernetes.io/name"] = "changed"
	if again, _ := c.Lookup(ct); again.ServiceName() != "chat" {
		t.Fatalf("editing one Identity changed the cache: %q", again.ServiceName())
	}
}

func TestAttributes(t *testing.T) {
	id := Identity{
		PodName: "chat-api-7c9f8d6b5-x2k4j", PodUID: "11111111-1111-4111-8111-111111111111",
		Namespace: "apps", NodeName: thisNode, ContainerName: "api", ContainerID: hexID("a1"),
		Controller: Workload{KindReplicaSet, "chat-api-7c9f8d6b5"}, Workload: Workload{KindDeployment, "chat-api"},
	}
	got := map[attribute.Key]string{}
	for _, kv := range id.Attributes() {
		if _, dup := got[kv.Key]; dup {
			t.Errorf("%s twice", kv.Key)
		}
		got[kv.Key] = kv.Value.AsString()
	}
	want := map[attribute.Key]string{
		"k8s.pod.name": id.PodName, "k8s.pod.uid": id.PodUID, "k8s.namespace.name": "apps",
		"k8s.node.name": thisNode, "k8s.container.name": "api", "container.id": hexID("a1"),
		"k8s.replicaset.name": "chat-api-7c9f8d6b5", "k8s.deployment.name": "chat-api",
	}
	if len(got) != len(want) {
		t.Errorf("got %d attributes %v, want %d", len(got), got, len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	// Each workload kind has its own key; the same object as controller
	// and workload gives the key once; empty names are left out.
	for kind, key := range map[string]attribute.Key{
		KindStatefulSet: "k8s.statefulset.name", KindDaemonSet: "k8s.daemonset.name",
		KindJob: "k8s.job.name", KindCronJob: "k8s.cronjob.name",
	} {
		w := Workload{kind, "w"}
		attrs := Identity{PodName: "p", Controller: w, Workload: w}.Attributes()
		wantAttrs := []attribute.KeyValue{attribute.String("k8s.pod.name", "p"), key.String("w")}
		if !slices.Equal(attrs, wantAttrs) {
			t.Errorf("%s: %v, want %v", kind, attrs, wantAttrs)
		}
	}
}

func TestCronJobOf(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	nowMinutes := now.Unix() / 60
	tests := []struct {
		job, cron string
		ok        bool
	}{
		{"nightly-29000000", "nightly", true},
		{"a-b-c-" + itoa(nowMinutes), "a-b-c", true},
		{"soon-" + itoa(nowMinutes+60), "soon", true},
		{"far-future-" + itoa(nowMinutes+48*60), "", false},
		{"migrate-2", "", false},
		{"db-20240101", "", false}, // a date, not minutes: far too small
		{"nodash", "", false},
		{"-29000000", "", false},
		{"x-29000000a", "", false},
	}
	for _, tt := range tests {
		cron, ok := cronJobOf(tt.job, now)
		if cron != tt.cron || ok != tt.ok {
			t.Errorf("cronJobOf(%q) = %q, %v; want %q, %v", tt.job, cron, ok, tt.cron, tt.ok)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestNewOutsideKubernetes(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	c, err := New(context.Background(), "whatever")
	if err != nil {
		t.Fatalf("New outside a cluster: %v, want no error", err)
	}
	if c == nil {
		t.Fatal("New returned a nil Cache")
	}
	if _, ok := c.Lookup(Container{ID: hexID("a1"), PodUID: "11111111-1111-4111-8111-111111111111"}); ok {
		t.Fatal("a no-op Cache found something")
	}
	c.Close()
}

func TestNewWithoutServiceAccount(t *testing.T) {
	// In a pod whose token is not mounted the environment says "cluster"
	// but there is no way in; the caller gets a reason and a usable Cache.
	t.Setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "1")
	_, statErr := os.Stat(serviceAccountDir + "/token")
	c, err := New(context.Background(), thisNode)
	if err == nil {
		t.Fatal("New succeeded against an API server that is not there")
	}
	// Where a token happens to be mounted, the failure comes later, from
	// the unreachable server, and names the RBAC and network to check.
	if wantHint := map[bool]string{true: "service account", false: "reachable"}[statErr != nil]; !strings.Contains(err.Error(), wantHint) {
		t.Errorf("error %q does not say what to check", err)
	}
	if c == nil {
		t.Fatal("no usable Cache alongside the error")
	}
	if _, ok := c.Lookup(Container{ID: hexID("a1")}); ok {
		t.Fatal("a no-op Cache found something")
	}
}

func TestNilCache(t *testing.T) {
	var c *Cache
	if _, ok := c.Lookup(Container{ID: hexID("a1")}); ok {
		t.Fatal("a nil Cache found something")
	}
	c.Close()
}
