package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const healthPort = 9464

// strictDecoder turns YAML into typed API objects by apiVersion and kind,
// and fails on unknown or duplicated fields: a misspelt field would
// otherwise be dropped without a word by kubectl apply.
var strictDecoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

func decodeStrict(data []byte) ([]runtime.Object, error) {
	var objs []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if onlyComments(doc) {
			continue
		}
		obj, _, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
}

func onlyComments(doc []byte) bool {
	for line := range strings.Lines(string(doc)) {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// manifest is one decoded file, its objects by type.
type manifest struct {
	raw             []byte
	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	configMaps      []*corev1.ConfigMap
	services        []*corev1.Service
	clusterRoles    []*rbacv1.ClusterRole
	bindings        []*rbacv1.ClusterRoleBinding
	daemonSets      []*appsv1.DaemonSet
	deployments     []*appsv1.Deployment
}

func loadManifest(t *testing.T, path string) manifest {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStrict(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m := manifest{raw: raw}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			m.namespaces = append(m.namespaces, o)
		case *corev1.ServiceAccount:
			m.serviceAccounts = append(m.serviceAccounts, o)
		case *corev1.ConfigMap:
			m.configMaps = append(m.configMaps, o)
		case *corev1.Service:
			m.services = append(m.services, o)
		case *rbacv1.ClusterRole:
			m.clusterRoles = append(m.clusterRoles, o)
		case *rbacv1.ClusterRoleBinding:
			m.bindings = append(m.bindings, o)
		case *appsv1.DaemonSet:
			m.daemonSets = append(m.daemonSets, o)
		case *appsv1.Deployment:
			m.deployments = append(m.deployments, o)
		default:
			t.Fatalf("%s: unexpected %T", path, o)
		}
	}
	return m
}

func one[T any](t *testing.T, what string, xs []T) T {
	t.Helper()
	if len(xs) != 1 {
		t.Fatalf("want exactly one %s, found %d", what, len(xs))
	}
	return xs[0]
}

func TestStrictDecoderRejectsUnknownFields(t *testing.T) {
	// The same DaemonSet with one field misspelt: the check must catch it,
	// or the tests below prove nothing about the real file.
	raw, err := os.ReadFile("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(raw, []byte("hostPID: true"), []byte("hostPid: true"), 1)
	if bytes.Equal(bad, raw) {
		t.Fatal("daemonset.yaml has no hostPID line to misspell")
	}
	if _, err := decodeStrict(bad); err == nil || !strings.Contains(err.Error(), "hostPid") {
		t.Fatalf("misspelt field decoded without error (err = %v)", err)
	}
	dup := bytes.Replace(raw, []byte("hostPID: true"), []byte("hostPID: true\n      hostPID: false"), 1)
	if _, err := decodeStrict(dup); err == nil {
		t.Fatal("duplicated field decoded without error")
	}
}

func agentContainer(t *testing.T, ds *appsv1.DaemonSet) corev1.Container {
	t.Helper()
	return one(t, "container in the DaemonSet", ds.Spec.Template.Spec.Containers)
}

func TestDaemonSetPod(t *testing.T) {
	m := loadManifest(t, "daemonset.yaml")
	ds := one(t, "DaemonSet", m.daemonSets)
	pod := ds.Spec.Template.Spec
	c := agentContainer(t, ds)

	ns := one(t, "Namespace", m.namespaces)
	if ds.Namespace != ns.Name {
		t.Errorf("DaemonSet in namespace %q, the file creates %q", ds.Namespace, ns.Name)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Error("the namespace does not allow privileged pods under Pod Security admission")
	}
	sel, err := metav1LabelSelector(ds)
	if err != nil || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the template's labels %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
	}

	if !pod.HostPID {
		t.Error("hostPID is off: the agent would see only its own processes")
	}
	if pod.HostNetwork {
		t.Error("hostNetwork is on: not needed, and it would put the health port on the node")
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", pod.PriorityClassName)
	}
	if pod.ServiceAccountName != one(t, "ServiceAccount", m.serviceAccounts).Name {
		t.Errorf("pod runs as %q, not the ServiceAccount of the file", pod.ServiceAccountName)
	}
	if pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken {
		t.Error("the service account token is not mounted; the pod watch needs it")
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ds.Spec.UpdateStrategy.RollingUpdate == nil {
		t.Errorf("update strategy %+v, want RollingUpdate", ds.Spec.UpdateStrategy)
	} else if s := ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge; s != nil && s.IntValue() != 0 {
		t.Errorf("maxSurge %v: two agents on a node would report every call twice", s)
	}

	// Tolerate every taint: an empty key with Exists matches all keys and,
	// with no effect, all effects.
	if !slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == "" && tl.Operator == corev1.TolerationOpExists && tl.Effect == ""
	}) {
		t.Errorf("tolerations %+v do not cover every node", pod.Tolerations)
	}

	if c.Image == "" {
		t.Error("no image")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim {
			t.Errorf("%s: request or limit missing", r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: request %s above limit %s", r, req.String(), lim.String())
		}
	}
}

func metav1LabelSelector(ds *appsv1.DaemonSet) (labels.Selector, error) {
	if ds.Spec.Selector == nil {
		return nil, errors.New("no selector")
	}
	return labels.SelectorFromSet(ds.Spec.Selector.MatchLabels), nil
}

// wantCaps is every capability the agent uses, and nothing more.
var wantCaps = []corev1.Capability{"BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_RESOURCE"}

func TestDaemonSetPrivileges(t *testing.T) {
	m := loadManifest(t, "daemonset.yaml")
	c := agentContainer(t, one(t, "DaemonSet", m.daemonSets))
	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Fatal("the container is not privileged")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem is writable; the agent writes nothing there")
	}

	// The commented alternative must be valid and complete when a user
	// uncomments it.
	alt := commentedBlock(t, m.raw, "# minimal-capabilities:")
	var minimal corev1.SecurityContext
	if err := yaml.UnmarshalStrict(alt, &minimal); err != nil {
		t.Fatalf("the minimal-capabilities alternative does not decode: %v\n%s", err, alt)
	}
	if minimal.Privileged == nil || *minimal.Privileged {
		t.Error("the alternative is still privileged")
	}
	if minimal.Capabilities == nil || !slices.Equal(minimal.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Error("the alternative does not drop ALL capabilities first")
	} else {
		got := slices.Clone(minimal.Capabilities.Add)
		want := slices.Clone(wantCaps)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("the alternative adds %v, want %v", got, want)
		}
	}
	if minimal.SeccompProfile == nil || minimal.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Error("the alternative keeps the default seccomp profile, which refuses bpf(2)")
	}
}

// commentedBlock returns the YAML commented out after the marker line: the
// following comment lines at the marker's indentation, uncommented.
func commentedBlock(t *testing.T, raw []byte, marker string) []byte {
	t.Helper()
	var out bytes.Buffer
	indent := -1
	for line := range strings.Lines(string(raw)) {
		trimmed := strings.TrimLeft(line, " ")
		if indent < 0 {
			if strings.TrimSpace(line) == marker {
				indent = len(line) - len(trimmed)
			}
			continue
		}
		if len(line)-len(trimmed) != indent || !strings.HasPrefix(trimmed, "# ") {
			break
		}
		out.WriteString(strings.TrimPrefix(trimmed, "# "))
	}
	if indent < 0 {
		t.Fatalf("no %q block in the file", marker)
	}
	return out.Bytes()
}

func TestDaemonSetMounts(t *testing.T) {
	m := loadManifest(t, "daemonset.yaml")
	pod := one(t, "DaemonSet", m.daemonSets).Spec.Template.Spec
	c := agentContainer(t, one(t, "DaemonSet", m.daemonSets))

	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mounted := map[string]corev1.VolumeMount{} // by path in the container
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			t.Errorf("mount %s names no volume", vm.Name)
			continue
		}
		if v.HostPath == nil {
			t.Errorf("volume %s is not a host path", vm.Name)
			continue
		}
		// Each host directory appears at the same path inside, where the
		// agent looks for it.
		if v.HostPath.Path != vm.MountPath {
			t.Errorf("host %s mounted at %s", v.HostPath.Path, vm.MountPath)
		}
		mounted[vm.MountPath] = vm
		delete(volumes, vm.Name)
	}
	for name := range volumes {
		t.Errorf("volume %s is never mounted", name)
	}

	if _, ok := mounted["/sys/kernel/tracing"]; !ok {
		t.Error("tracefs (/sys/kernel/tracing) is not mounted")
	}
	if btf, ok := mounted["/sys/kernel/btf"]; !ok || !btf.ReadOnly {
		t.Error("/sys/kernel/btf is not mounted read-only")
	}
	// hostPID already makes /proc the host's; a second view of it, or the
	// host's root, would only widen what a compromise reaches.
	for path := range mounted {
		if path == "/" || path == "/proc" || strings.HasPrefix(path, "/proc/") {
			t.Errorf("mounts host %s, which hostPID makes unnecessary", path)
		}
	}
}

func envByName(c corev1.Container) map[string]corev1.EnvVar {
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	return env
}

func TestDaemonSetEnv(t *testing.T) {
	m := loadManifest(t, "daemonset.yaml")
	ds := one(t, "DaemonSet", m.daemonSets)
	c := agentContainer(t, ds)
	env := envByName(c)

	for name, field := range map[string]string{"K8S_NODE_NAME": "spec.nodeName", "K8S_HOST_IP": "status.hostIP"} {
		e, ok := env[name]
		if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("%s is not taken from the downward API field %s: %+v", name, field, e)
		}
	}

	cm := one(t, "ConfigMap", m.configMaps)
	if cm.Namespace != ds.Namespace {
		t.Errorf("ConfigMap in %q, DaemonSet in %q", cm.Namespace, ds.Namespace)
	}
	if !slices.ContainsFunc(c.EnvFrom, func(s corev1.EnvFromSource) bool {
		return s.ConfigMapRef != nil && s.ConfigMapRef.Name == cm.Name
	}) {
		t.Errorf("the container does not take its settings from ConfigMap %s", cm.Name)
	}
	for k := range cm.Data {
		if !strings.HasPrefix(k, "OTEL_") && !strings.HasPrefix(k, "LLM_OBSERVER_") {
			t.Errorf("ConfigMap key %s is neither an OTEL_ nor an LLM_OBSERVER_ setting", k)
		}
		if _, ok := env[k]; ok {
			t.Errorf("%s is set both in the ConfigMap and in the pod; the pod's value would win unseen", k)
		}
	}
	if p := cm.Data["OTEL_EXPORTER_OTLP_PROTOCOL"]; p != "grpc" {
		t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q, want grpc for port 4317", p)
	}
}

func TestDaemonSetProbesReachHealthServer(t *testing.T) {
	m := loadManifest(t, "daemonset.yaml")
	c := agentContainer(t, one(t, "DaemonSet", m.daemonSets))

	addr := envByName(c)["LLM_OBSERVER_HEALTH_ADDR"].Value
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("LLM_OBSERVER_HEALTH_ADDR %q: %v", addr, err)
	}
	// The kubelet probes the pod IP; loopback would fail every probe.
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		t.Errorf("health server listens on %q: the kubelet cannot reach it there", host)
	}
	if port != strconv.Itoa(healthPort) {
		t.Errorf("health port %s, want %d", port, healthPort)
	}

	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET", name)
			continue
		}
		if p.HTTPGet.Path != want {
			t.Errorf("%s probe path %s, want %s", name, p.HTTPGet.Path, want)
		}
		if got := containerPort(t, c, p.HTTPGet.Port); got != healthPort {
			t.Errorf("%s probe port %v resolves to %d, want %d", name, p.HTTPGet.Port.String(), got, healthPort)
		}
	}
}

// containerPort resolves a port given by number or by name.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func TestDaemonSetRBACIsMinimal(t *testing.T) {
	m := loadManifest(t, "daemonset.yaml")
	role := one(t, "ClusterRole", m.clusterRoles)
	rule := one(t, "rule in the ClusterRole", role.Rules)
	if !slices.Equal(rule.APIGroups, []string{""}) || !slices.Equal(rule.Resources, []string{"pods"}) {
		t.Errorf("rule covers groups %q resources %q, want only core pods", rule.APIGroups, rule.Resources)
	}
	verbs := slices.Clone(rule.Verbs)
	slices.Sort(verbs)
	// The agent lists and watches; it never gets a pod by name.
	if !slices.Equal(verbs, []string{"list", "watch"}) {
		t.Errorf("verbs %q, want list and watch only", rule.Verbs)
	}
	if len(rule.ResourceNames) != 0 || len(rule.NonResourceURLs) != 0 {
		t.Error("the rule has resourceNames or nonResourceURLs")
	}

	b := one(t, "ClusterRoleBinding", m.bindings)
	sa := one(t, "ServiceAccount", m.serviceAccounts)
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != role.Name {
		t.Errorf("binding refers to %s %s", b.RoleRef.Kind, b.RoleRef.Name)
	}
	subj := one(t, "subject of the binding", b.Subjects)
	if subj.Kind != rbacv1.ServiceAccountKind || subj.Name != sa.Name || subj.Namespace != sa.Namespace {
		t.Errorf("binding subject %+v, want ServiceAccount %s/%s", subj, sa.Namespace, sa.Name)
	}
}

func TestOTLPEndpointIsTheCollectorService(t *testing.T) {
	agent := loadManifest(t, "daemonset.yaml")
	gw := loadManifest(t, "collector.yaml")
	endpoint := one(t, "ConfigMap", agent.configMaps).Data["OTEL_EXPORTER_OTLP_ENDPOINT"]
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT %q: want http://<service>.<namespace>.svc:<port> (%v)", endpoint, err)
	}
	// <service>.<namespace>.svc, optionally followed by the cluster domain.
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) < 3 || parts[2] != "svc" {
		t.Fatalf("endpoint host %q is not a Service DNS name", u.Hostname())
	}
	svcName, svcNS := parts[0], parts[1]

	svc := one(t, "Service", gw.services)
	if svc.Name != svcName || svc.Namespace != svcNS {
		t.Fatalf("endpoint names Service %s/%s, collector.yaml defines %s/%s", svcNS, svcName, svc.Namespace, svc.Name)
	}
	port, _ := strconv.Atoi(u.Port())
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port })
	if i < 0 {
		t.Fatalf("Service %s has no port %d", svc.Name, port)
	}
	sp := svc.Spec.Ports[i]
	if sp.AppProtocol == nil || *sp.AppProtocol != "grpc" {
		t.Errorf("Service port %d is not marked grpc, which the agent speaks to it", port)
	}

	// The Service port leads to the collector's OTLP gRPC receiver.
	dep := one(t, "Deployment", gw.deployments)
	c := one(t, "collector container", dep.Spec.Template.Spec.Containers)
	target := containerPort(t, c, sp.TargetPort)
	cfg := collectorConfig(t, gw)
	grpcEndpoint, _ := dig(cfg, "receivers", "otlp", "protocols", "grpc", "endpoint").(string)
	if _, p, err := net.SplitHostPort(grpcEndpoint); err != nil || p != strconv.Itoa(int(target)) {
		t.Errorf("Service port %d → container port %d, but the OTLP gRPC receiver listens on %q", port, target, grpcEndpoint)
	}
}
