package k8s

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
)

// Workload kinds as they appear in owner references.
const (
	KindDeployment  = "Deployment"
	KindReplicaSet  = "ReplicaSet"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindJob         = "Job"
	KindCronJob     = "CronJob"
)

// labelAppName is the recommended label that names an application across
// the objects that make it up; people set it to the name they want to see.
const labelAppName = "app.kubernetes.io/name"

// Workload is a Kubernetes object that owns pods, by kind and name.
type Workload struct {
	Kind string // one of the Kind* constants, or another controller's kind
	Name string
}

// Identity is who a process is in Kubernetes terms: its pod, its container
// and the workload that runs them.
type Identity struct {
	PodName   string
	PodUID    string
	Namespace string
	NodeName  string
	// ContainerName is empty while the kubelet has not yet reported the
	// container in the pod's status.
	ContainerName string
	ContainerID   string
	// Controller is the pod's controlling owner as recorded in the pod
	// (a ReplicaSet, a Job, …); Workload is what a person deployed: the
	// Deployment above a ReplicaSet, the CronJob above a Job, else the
	// Controller itself. Both are zero for a bare pod.
	Controller Workload
	Workload   Workload
	Labels     map[string]string
}

// ServiceName is the service.name the pod's telemetry should carry: the
// app.kubernetes.io/name label when set, since that is the name people chose
// for it, else the workload's name, else the pod's.
func (id Identity) ServiceName() string {
	if v := id.Labels[labelAppName]; v != "" {
		return v
	}
	if id.Workload.Name != "" {
		return id.Workload.Name
	}
	return id.PodName
}

// Attributes are the resource attributes of the OpenTelemetry Kubernetes
// conventions for this identity. Empty values are left out rather than sent
// as "", which a backend would show as a real, empty name.
func (id Identity) Attributes() []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, 9)
	add := func(k attribute.Key, v string) {
		if v != "" {
			kv = append(kv, k.String(v))
		}
	}
	add(semconv.K8SPodNameKey, id.PodName)
	add(semconv.K8SPodUIDKey, id.PodUID)
	add(semconv.K8SNamespaceNameKey, id.Namespace)
	add(semconv.K8SNodeNameKey, id.NodeName)
	add(semconv.K8SContainerNameKey, id.ContainerName)
	add(semconv.ContainerIDKey, id.ContainerID)
	for _, w := range []Workload{id.Controller, id.Workload} {
		if k, ok := workloadKey(w.Kind); ok {
			add(k, w.Name)
		}
	}
	return dedupe(kv)
}

func workloadKey(kind string) (attribute.Key, bool) {
	switch kind {
	case KindDeployment:
		return semconv.K8SDeploymentNameKey, true
	case KindReplicaSet:
		return semconv.K8SReplicaSetNameKey, true
	case KindStatefulSet:
		return semconv.K8SStatefulSetNameKey, true
	case KindDaemonSet:
		return semconv.K8SDaemonSetNameKey, true
	case KindJob:
		return semconv.K8SJobNameKey, true
	case KindCronJob:
		return semconv.K8SCronJobNameKey, true
	}
	return "", false
}

// dedupe drops a repeated key, which happens when Controller and Workload
// are the same object (a StatefulSet owns its pods directly).
func dedupe(kv []attribute.KeyValue) []attribute.KeyValue {
	out := kv[:0]
	seen := make(map[attribute.Key]bool, len(kv))
	for _, a := range kv {
		if !seen[a.Key] {
			seen[a.Key] = true
			out = append(out, a)
		}
	}
	return out
}
