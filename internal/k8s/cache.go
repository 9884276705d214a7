// Package k8s tells which Kubernetes pod and container an observed process
// belongs to. It reads the process's cgroup path for the container ID and
// pod UID, and keeps a watch on the pods of this node for their names,
// labels and owners; it hands on an Identity whose attributes and service
// name go on the process's telemetry resource. Outside Kubernetes it does
// nothing.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// syncTimeout bounds how long New waits for the first pod list. A node runs
// at most a few hundred pods, so a list that takes longer means the API
// server is unreachable or the RBAC rules are missing, and waiting more will
// not help.
const syncTimeout = 30 * time.Second

const (
	indexPodUID      = "podUID"
	indexContainerID = "containerID"
	// labelPodTemplateHash is copied by the Deployment controller onto every
	// pod and is the suffix of the ReplicaSet's name.
	labelPodTemplateHash = "pod-template-hash"
)

// Cache holds the metadata of the pods on one node, kept current by a watch
// on the API server. A Cache made outside Kubernetes, and a nil *Cache,
// answer every lookup with "not found".
type Cache struct {
	node    string
	indexer cache.Indexer
	stop    func()
}

// New watches the pods on nodeName (normally from K8S_NODE_NAME, set by the
// downward API) through the in-cluster service account, and returns once
// the first list has arrived. Outside a cluster it returns a no-op Cache and
// no error. On any error it still returns a usable no-op Cache, so a caller
// may log the error and carry on without Kubernetes metadata.
//
// The watch runs until ctx is done or Close is called.
func New(ctx context.Context, nodeName string) (*Cache, error) {
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return &Cache{}, nil
	}
	if err != nil {
		return &Cache{}, fmt.Errorf("kubernetes in-cluster config: %w (is the service account token mounted?)", err)
	}
	if nodeName == "" {
		return &Cache{}, errors.New("kubernetes: node name is empty; set K8S_NODE_NAME from the downward API (fieldRef spec.nodeName)")
	}
	cfg.UserAgent = "llm-observer"
	// Protobuf decodes pod lists several times faster than JSON, which
	// matters on a node that restarts many pods at once.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return &Cache{}, fmt.Errorf("kubernetes client: %w", err)
	}
	return start(ctx, client, nodeName, syncTimeout)
}

func start(ctx context.Context, client kubernetes.Interface, node string, timeout time.Duration) (*Cache, error) {
	ctx, cancel := context.WithCancel(ctx)
	// The field selector makes the API server send only this node's pods,
	// so each agent's memory and the server's load grow with the node, not
	// with the cluster.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	stop := func() {
		cancel()
		factory.Shutdown()
	}
	if err := inf.SetTransform(trimPod); err != nil {
		stop()
		return &Cache{}, fmt.Errorf("kubernetes pod watch: %w", err)
	}
	if err := inf.AddIndexers(cache.Indexers{
		indexPodUID:      podUIDs,
		indexContainerID: containerIDs,
	}); err != nil {
		stop()
		return &Cache{}, fmt.Errorf("kubernetes pod watch: %w", err)
	}
	factory.Start(ctx.Done())

	syncCtx, cancelSync := context.WithTimeout(ctx, timeout)
	defer cancelSync()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		stop()
		return &Cache{}, fmt.Errorf("kubernetes: no pod list for node %q within %s; check that the API server is reachable and the ClusterRole grants list and watch on pods", node, timeout)
	}
	return &Cache{node: node, indexer: inf.GetIndexer(), stop: stop}, nil
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
	if c == nil || c.indexer == nil {
		return Identity{}, false
	}
	pod := c.find(indexPodUID, ct.PodUID)
	if pod == nil {
		pod = c.find(indexContainerID, ct.ID)
	}
	// The field selector already keeps other nodes' pods out; this check
	// guards against a pod that moved between list and lookup and against
	// clients that ignore field selectors.
	if pod == nil || pod.Spec.NodeName != c.node {
		return Identity{}, false
	}
	return identityOf(pod, ct.ID), true
}

func (c *Cache) find(index, key string) *corev1.Pod {
	if key == "" {
		return nil
	}
	objs, err := c.indexer.ByIndex(index, key)
	if err != nil || len(objs) == 0 {
		return nil
	}
	pod, _ := objs[0].(*corev1.Pod)
	return pod
}

func identityOf(pod *corev1.Pod, containerID string) Identity {
	id := Identity{
		PodName:     pod.Name,
		PodUID:      string(pod.UID),
		Namespace:   pod.Namespace,
		NodeName:    pod.Spec.NodeName,
		ContainerID: containerID,
		// A copy, so that a caller editing its Identity cannot reach into
		// the cache.
		Labels: maps.Clone(pod.Labels),
	}
	if containerID != "" {
		for _, st := range allStatuses(pod) {
			if bareID(st.ContainerID) == containerID {
				id.ContainerName = st.Name
				break
			}
		}
	}
	id.Controller, id.Workload = workloadsOf(pod)
	return id
}

// workloadsOf resolves the pod's controller to the object a person
// deployed, from naming rules the controllers guarantee rather than from
// ReplicaSets and Jobs fetched from the API server: those cannot be limited
// to one node, so watching them would make every agent hold the whole
// cluster's ReplicaSets and need wider RBAC.
func workloadsOf(pod *corev1.Pod) (controller, workload Workload) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return Workload{}, Workload{}
	}
	controller = Workload{Kind: ref.Kind, Name: ref.Name}
	group := strings.SplitN(ref.APIVersion, "/", 2)[0]
	switch {
	case ref.Kind == KindReplicaSet && group == "apps":
		// The Deployment controller names its ReplicaSets
		// "<deployment>-<pod-template-hash>" and labels their pods with
		// that hash; a ReplicaSet made by hand has no such label.
		if h := pod.Labels[labelPodTemplateHash]; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
			return controller, Workload{Kind: KindDeployment, Name: strings.TrimSuffix(ref.Name, "-"+h)}
		}
	case ref.Kind == KindJob && group == "batch":
		if name, ok := cronJobOf(ref.Name, time.Now()); ok {
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

// trimPod keeps only what Lookup reads, so the cache costs a few hundred
// bytes per pod instead of the tens of kilobytes a full pod with its
// managed fields takes.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		// Tombstones of deleted pods pass through unchanged.
		return obj, nil
	}
	trim := func(in []corev1.ContainerStatus) []corev1.ContainerStatus {
		out := make([]corev1.ContainerStatus, 0, len(in))
		for _, st := range in {
			out = append(out, corev1.ContainerStatus{Name: st.Name, ContainerID: st.ContainerID})
		}
		return out
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            pod.Name,
			Namespace:       pod.Namespace,
			UID:             pod.UID,
			ResourceVersion: pod.ResourceVersion,
			Labels:          pod.Labels,
			OwnerReferences: pod.OwnerReferences,
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName},
		Status: corev1.PodStatus{
			ContainerStatuses:          trim(pod.Status.ContainerStatuses),
			InitContainerStatuses:      trim(pod.Status.InitContainerStatuses),
			EphemeralContainerStatuses: trim(pod.Status.EphemeralContainerStatuses),
		},
	}, nil
}

func podUIDs(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.UID == "" {
		return nil, nil
	}
	return []string{string(pod.UID)}, nil
}

func containerIDs(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	var ids []string
	for _, st := range allStatuses(pod) {
		if id := bareID(st.ContainerID); id != "" {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func allStatuses(pod *corev1.Pod) []corev1.ContainerStatus {
	all := make([]corev1.ContainerStatus, 0, len(pod.Status.ContainerStatuses)+len(pod.Status.InitContainerStatuses)+len(pod.Status.EphemeralContainerStatuses))
	all = append(all, pod.Status.ContainerStatuses...)
	all = append(all, pod.Status.InitContainerStatuses...)
	return append(all, pod.Status.EphemeralContainerStatuses...)
}

// bareID drops the "<runtime>://" scheme that pod status puts before the
// ID the runtime uses in cgroup paths.
func bareID(statusID string) string {
	if _, id, ok := strings.Cut(statusID, "://"); ok {
		return id
	}
	return statusID
}
