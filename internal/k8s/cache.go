// Package k8s tells which Kubernetes pod and container an observed process
// belongs to. It reads the process's cgroup path for the container ID and
// pod UID, and keeps a watch on the pods of this node for their names,
// labels and owners; it hands on an Identity whose attributes and service
// name go on the process's telemetry resource. Outside Kubernetes it does
// nothing.
//
// The watch speaks the API server's list and watch protocol over HTTPS
// itself, with the pod's service account, and keeps a few hundred bytes per
// pod: a node agent needs one resource on one node, not a client library
// for every API group.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// syncTimeout bounds how long New waits for the first pod list. A node runs
// at most a few hundred pods, so a list that takes longer means the API
// server is unreachable or the RBAC rules are missing, and waiting more will
// not help.
const syncTimeout = 30 * time.Second

// labelPodTemplateHash is copied by the Deployment controller onto every
// pod and is the suffix of the ReplicaSet's name.
const labelPodTemplateHash = "pod-template-hash"

// Cache holds the metadata of the pods on one node, kept current by a watch
// on the API server. A Cache made outside Kubernetes, and a nil *Cache,
// answer every lookup with "not found".
type Cache struct {
	node string
	stop func()
	// failures counts lists and watches that failed after New returned
	// (the API server unreachable, the RBAC rules revoked): each leaves
	// the pods' metadata as old as the last success.
	failures atomic.Uint64

	mu          sync.RWMutex
	byUID       map[string]*pod
	byContainer map[string]*pod // by bare container ID
}

// pod is what the cache keeps of a pod: what Lookup reads and nothing
// else. A stored pod is never changed, an update replaces it, so Lookup
// reads it without holding the lock.
type pod struct {
	name, namespace, uid, node string
	labels                     map[string]string
	controller                 ownerRef // zero for a pod nobody controls
	containers                 []containerRef
}

type ownerRef struct{ apiVersion, kind, name string }

// containerRef is a container of the pod that the runtime has started.
type containerRef struct {
	name string
	id   string // without the runtime's "<name>://" prefix
}

// New watches the pods on nodeName (normally from K8S_NODE_NAME, set by the
// downward API) through the in-cluster service account, and returns once
// the first list has arrived. Outside a cluster it returns a no-op Cache and
// no error. On any error it still returns a usable no-op Cache, so a caller
// may log the error and carry on without Kubernetes metadata.
//
// The watch runs until ctx is done or Close is called.
func New(ctx context.Context, nodeName string) (*Cache, error) {
	return start(ctx, inClusterFromEnv(), nodeName, syncTimeout)
}

func start(ctx context.Context, cfg inCluster, node string, timeout time.Duration) (*Cache, error) {
	if cfg.host == "" || cfg.port == "" {
		return &Cache{}, nil
	}
	api, err := newAPIClient(cfg, node)
	if err != nil {
		return &Cache{}, fmt.Errorf("kubernetes in-cluster config: %w (is the service account token mounted?)", err)
	}
	if node == "" {
		return &Cache{}, errors.New("kubernetes: node name is empty; set K8S_NODE_NAME from the downward API (fieldRef spec.nodeName)")
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	c := &Cache{node: node}
	w := &watcher{api: api, cache: c, listed: make(chan struct{}), backoff: backoff{base: cfg.retryMin, max: cfg.retryMax}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Idle connections would otherwise outlive the watch by minutes.
		defer api.http.CloseIdleConnections()
		w.run(ctx)
	}()
	c.stop = func() {
		cancel()
		<-done
	}

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.listed:
		return c, nil
	case <-t.C:
	case <-ctx.Done():
	}
	c.stop()
	if err := parent.Err(); err != nil {
		return &Cache{}, fmt.Errorf("kubernetes pod watch: %w", err)
	}
	reason := ""
	if err := w.lastError(); err != nil {
		reason = " (" + err.Error() + ")"
	}
	return &Cache{}, fmt.Errorf("kubernetes: no pod list for node %q within %s%s; check that the API server is reachable and the ClusterRole grants list and watch on pods", node, timeout, reason)
}

// Failures is how many lists and watches of the pods have failed so far.
// A nil Cache, or one outside Kubernetes, has none.
func (c *Cache) Failures() uint64 {
	if c == nil {
		return 0
	}
	return c.failures.Load()
}

// Close stops the watch and waits for it to end.
func (c *Cache) Close() {
	if c != nil && c.stop != nil {
		c.stop()
	}
}

// Lookup finds the pod and container that ct names. It looks the pod up by
// UID first, then by container ID: static pods run under a UID of the
// kubelet's own, which differs from the UID of their mirror pod in the API.
func (c *Cache) Lookup(ct Container) (Identity, bool) {
	if c == nil {
		return Identity{}, false
	}
	var p *pod
	c.mu.RLock()
	if ct.PodUID != "" {
		p = c.byUID[ct.PodUID]
	}
	if p == nil && ct.ID != "" {
		p = c.byContainer[ct.ID]
	}
	c.mu.RUnlock()
	// The field selector already keeps other nodes' pods out; this check
	// guards against a pod that moved between list and lookup and against
	// servers that ignore field selectors.
	if p == nil || p.node != c.node {
		return Identity{}, false
	}
	return identityOf(p, ct.ID), true
}

// replace makes pods the whole content of the cache, as a fresh list says
// it is: pods deleted while the watch was broken go with it.
func (c *Cache) replace(pods []*pod) {
	byUID := make(map[string]*pod, len(pods))
	byContainer := make(map[string]*pod, len(pods))
	for _, p := range pods {
		byUID[p.uid] = p
	}
	// From byUID, so that of two list entries with one UID the one kept
	// there is also the one its containers point to.
	for _, p := range byUID {
		for _, ct := range p.containers {
			byContainer[ct.id] = p
		}
	}
	c.mu.Lock()
	c.byUID, c.byContainer = byUID, byContainer
	c.mu.Unlock()
}

// apply makes one watch event's change.
func (c *Cache) apply(ev watchEvent) {
	if ev.pod == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byUID == nil {
		c.byUID, c.byContainer = map[string]*pod{}, map[string]*pod{}
	}
	if old := c.byUID[ev.pod.uid]; old != nil {
		delete(c.byUID, old.uid)
		for _, ct := range old.containers {
			// Only if it still points here: a container ID is the
			// runtime's and unique, but the index must stay consistent
			// whatever the server sends.
			if c.byContainer[ct.id] == old {
				delete(c.byContainer, ct.id)
			}
		}
	}
	if ev.typ == eventDeleted {
		return
	}
	c.byUID[ev.pod.uid] = ev.pod
	for _, ct := range ev.pod.containers {
		c.byContainer[ct.id] = ev.pod
	}
}

func identityOf(p *pod, containerID string) Identity {
	id := Identity{
		PodName:     p.name,
		PodUID:      p.uid,
		Namespace:   p.namespace,
		NodeName:    p.node,
		ContainerID: containerID,
		// A copy, so that a caller editing its Identity cannot reach into
		// the cache.
		Labels: maps.Clone(p.labels),
	}
	if containerID != "" {
		for _, ct := range p.containers {
			if ct.id == containerID {
				id.ContainerName = ct.name
				break
			}
		}
	}
	id.Controller, id.Workload = workloadsOf(p)
	return id
}

// workloadsOf resolves the pod's controller to the object a person
// deployed, from naming rules the controllers guarantee rather than from
// ReplicaSets and Jobs fetched from the API server: those cannot be limited
// to one node, so watching them would make every agent hold the whole
// cluster's ReplicaSets and need wider RBAC.
func workloadsOf(p *pod) (controller, workload Workload) {
	ref := p.controller
	if ref.kind == "" && ref.name == "" {
		return Workload{}, Workload{}
	}
	controller = Workload{Kind: ref.kind, Name: ref.name}
	group, _, _ := strings.Cut(ref.apiVersion, "/")
	switch {
	case ref.kind == KindReplicaSet && group == "apps":
		// The Deployment controller names its ReplicaSets
		// "<deployment>-<pod-template-hash>" and labels their pods with
		// that hash; a ReplicaSet made by hand has no such label.
		if h := p.labels[labelPodTemplateHash]; h != "" && strings.HasSuffix(ref.name, "-"+h) {
			return controller, Workload{Kind: KindDeployment, Name: strings.TrimSuffix(ref.name, "-"+h)}
		}
	case ref.kind == KindJob && group == "batch":
		if name, ok := cronJobOf(ref.name, time.Now()); ok {
			return controller, Workload{Kind: KindCronJob, Name: name}
		}
	}
	return controller, controller
}

// cronJobOf recognises the CronJob controller's Job names,
// "<cronjob>-<scheduled time in minutes since the Unix epoch>". The number
// must fall between the year CronJobs appeared and a day from now, so that a
// hand-made Job such as "migrate-2" is not taken for a CronJob's.
func cronJobOf(job string, now time.Time) (string, bool) {
	i := strings.LastIndexByte(job, '-')
	if i <= 0 {
		return "", false
	}
	minutes, err := strconv.ParseInt(job[i+1:], 10, 64)
	if err != nil {
		return "", false
	}
	earliest := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 60
	latest := now.Add(24*time.Hour).Unix() / 60
	if minutes < earliest || minutes > latest {
		return "", false
	}
	return job[:i], true
}
