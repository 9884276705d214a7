package k8s

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

const thisNode = "node-a"

type podSpec struct {
	name, ns, uid, node string
	owner               *metav1.OwnerReference
	labels              map[string]string
	containers          map[string]string // name → status containerID
}

func makePod(s podSpec) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.name, Namespace: s.ns, UID: types.UID(s.uid), Labels: s.labels,
			// Fields the cache has no use for, to show they are dropped.
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096)},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec: corev1.PodSpec{NodeName: s.node, Containers: []corev1.Container{{Name: "main", Image: "example/app:1"}}},
	}
	if s.owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*s.owner}
	}
	for name, id := range s.containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: name, ContainerID: id})
	}
	return p
}

func owner(apiVersion, kind, name string) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: &yes}
}

// hexID makes a distinct 64-hex-digit container ID from a short tag.
func hexID(tag string) string {
	return tag + strings.Repeat("0", 64-len(tag))
}

var fixturePods = []podSpec{
	{
		name: "chat-api-7c9f8d6b5-x2k4j", ns: "apps", uid: "11111111-1111-4111-8111-111111111111", node: thisNode,
		owner:      owner("apps/v1", "ReplicaSet", "chat-api-7c9f8d6b5"),
		labels:     map[string]string{"pod-template-hash": "7c9f8d6b5", "app.kubernetes.io/name": "chat", "app": "chat-api"},
		containers: map[string]string{"api": "containerd://" + hexID("a1"), "proxy": "containerd://" + hexID("a2")},
	},
	{
		name: "ollama-0", ns: "llm", uid: "22222222-2222-4222-8222-222222222222", node: thisNode,
		owner:      owner("apps/v1", "StatefulSet", "ollama"),
		labels:     map[string]string{"app": "ollama"},
		containers: map[string]string{"ollama": "cri-o://" + hexID("b1")},
	},
	{
		name: "gpu-agent-7xk2p", ns: "kube-system", uid: "33333333-3333-4333-8333-333333333333", node: thisNode,
		owner:      owner("apps/v1", "DaemonSet", "gpu-agent"),
		containers: map[string]string{"agent": "docker://" + hexID("c1")},
	},
	{
		// 29000000 minutes after the epoch is February 2025.
		name: "embed-batch-29000000-q8zlm", ns: "jobs", uid: "44444444-4444-4444-8444-444444444444", node: thisNode,
		owner:      owner("batch/v1", "Job", "embed-batch-29000000"),
		containers: map[string]string{"embed": "containerd://" + hexID("d1")},
	},
	{
		name: "migrate-2-hx7vq", ns: "jobs", uid: "55555555-5555-4555-8555-555555555555", node: thisNode,
		owner:      owner("batch/v1", "Job", "migrate-2"),
		containers: map[string]string{"migrate": "containerd://" + hexID("e1")},
	},
	{
		name: "hand-rs-abcde", ns: "apps", uid: "66666666-6666-4666-8666-666666666666", node: thisNode,
		owner:      owner("apps/v1", "ReplicaSet", "hand-rs"),
		containers: map[string]string{"main": "containerd://" + hexID("f1")},
	},
	{
		name: "debug-shell", ns: "default", uid: "77777777-7777-4777-8777-777777777777", node: thisNode,
		containers: map[string]string{"shell": "containerd://" + hexID("71")},
	},
	{
		// A mirror pod: the API server gave it its own UID, while its
		// processes run under the kubelet's hash of the manifest.
		name: "etcd-node-a", ns: "kube-system", uid: "88888888-8888-4888-8888-888888888888", node: thisNode,
		owner:      owner("v1", "Node", thisNode),
		containers: map[string]string{"etcd": "containerd://" + hexID("81")},
	},
	{
		name: "chat-api-7c9f8d6b5-remote", ns: "apps", uid: "99999999-9999-4999-8999-999999999999", node: "node-b",
		owner:      owner("apps/v1", "ReplicaSet", "chat-api-7c9f8d6b5"),
		labels:     map[string]string{"pod-template-hash": "7c9f8d6b5"},
		containers: map[string]string{"api": "containerd://" + hexID("91")},
	},
}

func startFake(t *testing.T, pods ...podSpec) (*Cache, *fake.Clientset) {
	t.Helper()
	var objs []*corev1.Pod
	for _, s := range pods {
		objs = append(objs, makePod(s))
	}
	client := fake.NewClientset()
	for _, p := range objs {
		if _, err := client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := start(context.Background(), client, thisNode, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, client
}

func TestLookupResolvesWorkloads(t *testing.T) {
	c, _ := startFake(t, fixturePods...)
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
		{"statefulset", Container{ID: hexID("b1"), PodUID: "22222222-2222-4222-8222-222222222222"}, "ollama",
			Workload{KindStatefulSet, "ollama"}, Workload{KindStatefulSet, "ollama"}, "ollama"},
		{"daemonset", Container{ID: hexID("c1"), PodUID: "33333333-3333-4333-8333-333333333333"}, "agent",
			Workload{KindDaemonSet, "gpu-agent"}, Workload{KindDaemonSet, "gpu-agent"}, "gpu-agent"},
		{"cronjob via job name", Container{ID: hexID("d1"), PodUID: "44444444-4444-4444-8444-444444444444"}, "embed",
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
	c, _ := startFake(t, fixturePods...)
	// The fake clientset ignores field selectors and so hands the cache
	// node-b's pod too; the cache must still refuse it, by UID and by ID.
	for _, ct := range []Container{
		{ID: hexID("91"), PodUID: "99999999-9999-4999-8999-999999999999"},
		{ID: hexID("91")},
	} {
		if id, ok := c.Lookup(ct); ok {
			t.Errorf("Lookup(%+v) = %+v, want nothing from another node", ct, id)
		}
	}
}

func TestWatchAsksForThisNodeOnly(t *testing.T) {
	_, client := startFake(t)
	want := "spec.nodeName=" + thisNode
	var seen int
	for _, a := range client.Actions() {
		if a.GetResource().Resource != "pods" {
			continue
		}
		var fields string
		switch a := a.(type) {
		case clienttesting.ListAction:
			fields = a.GetListRestrictions().Fields.String()
		case clienttesting.WatchAction:
			fields = a.GetWatchRestrictions().Fields.String()
		default:
			t.Errorf("unexpected %s on pods: the cache only lists and watches", a.GetVerb())
			continue
		}
		seen++
		if fields != want {
			t.Errorf("%s pods with field selector %q, want %q", a.GetVerb(), fields, want)
		}
	}
	if seen == 0 {
		t.Fatal("no list or watch of pods was made")
	}
}

func TestLookupFollowsPodChanges(t *testing.T) {
	c, client := startFake(t)
	s := fixturePods[1]
	ct := Container{ID: hexID("b1"), PodUID: s.uid}
	if _, ok := c.Lookup(ct); ok {
		t.Fatal("found a pod before it was created")
	}
	ctx := context.Background()
	if _, err := client.CoreV1().Pods(s.ns).Create(ctx, makePod(s), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod to appear", func() bool { _, ok := c.Lookup(ct); return ok })
	if err := client.CoreV1().Pods(s.ns).Delete(ctx, s.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod to go", func() bool { _, ok := c.Lookup(ct); return !ok })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCacheKeepsOnlyWhatLookupNeeds(t *testing.T) {
	c, _ := startFake(t, fixturePods[0])
	objs := c.indexer.List()
	if len(objs) != 1 {
		t.Fatalf("%d objects cached, want 1", len(objs))
	}
	p := objs[0].(*corev1.Pod)
	if len(p.Annotations) != 0 || len(p.ManagedFields) != 0 || len(p.Spec.Containers) != 0 {
		t.Errorf("cached pod keeps unused fields: %+v", p)
	}
}

func TestIdentityDoesNotShareLabels(t *testing.T) {
	c, _ := startFake(t, fixturePods[0])
	ct := Container{PodUID: fixturePods[0].uid}
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
	_, statErr := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token")
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
