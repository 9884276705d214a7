package deploy

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/llm-observer/llm-observer/internal/config"
)

const (
	chartDir         = "helm/llm-observer"
	releaseName      = "obs"
	releaseNamespace = "monitoring"
)

// rendered is the chart rendered for one set of values: the agent's
// objects and, when the gateway is on, the collector's, each decoded
// strictly by the manifest tests' loader.
type rendered struct {
	values  chartutil.Values
	agent   manifest
	gateway *manifest
}

// renderChart renders the chart as `helm install` would (Helm's own loader
// and template engine, strict about missing values) with the values of
// valuesFile over the chart's defaults ("" for the defaults alone).
func renderChart(t *testing.T, valuesFile string) rendered {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	user := chartutil.Values{}
	if valuesFile != "" {
		if user, err = chartutil.ReadValuesFile(valuesFile); err != nil {
			t.Fatal(err)
		}
	}
	vals, err := chartutil.ToRenderValues(ch, user,
		chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, IsInstall: true, Revision: 1},
		chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	out, err := engine.Engine{Strict: true}.Render(ch, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}

	// The loader reads files; each set goes to its own, so that
	// collectorConfig finds the gateway's one ConfigMap and Deployment.
	dir := t.TempDir()
	var agent, gateway strings.Builder
	for _, name := range slices.Sorted(maps.Keys(out)) {
		switch base := filepath.Base(name); {
		case strings.HasPrefix(base, "_") || base == "NOTES.txt":
		case base == "collector.yaml":
			gateway.WriteString(out[name])
		default:
			fmt.Fprintf(&agent, "---\n# %s\n%s\n", name, out[name])
		}
	}
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	r := rendered{values: vals["Values"].(chartutil.Values), agent: loadManifest(t, write("agent.yaml", agent.String()))}
	if strings.TrimSpace(gateway.String()) != "" {
		g := loadManifest(t, write("gateway.yaml", gateway.String()))
		r.gateway = &g
	}
	return r
}

// value reads a rendered value by its dotted path.
func (r rendered) value(t *testing.T, path string) any {
	t.Helper()
	v, err := r.values.PathValue(path)
	if err != nil {
		v, err = r.values.Table(path)
		if err != nil {
			t.Fatalf("value %s: %v", path, err)
		}
	}
	return v
}

var chartCases = []struct {
	name, values string
}{
	{"defaults", ""},
	{"custom", "testdata/helm-values-custom.yaml"},
}

func TestChartObjects(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			r := renderChart(t, tc.values)
			m := r.agent
			ds := one(t, "DaemonSet", m.daemonSets)
			sa := one(t, "ServiceAccount", m.serviceAccounts)
			cm := one(t, "ConfigMap", m.configMaps)
			if len(m.namespaces) != 0 || len(m.services) != 0 || len(m.deployments) != 0 {
				t.Errorf("unexpected objects: %d namespaces, %d services, %d deployments", len(m.namespaces), len(m.services), len(m.deployments))
			}
			for what, ns := range map[string]string{"DaemonSet": ds.Namespace, "ServiceAccount": sa.Namespace, "ConfigMap": cm.Namespace} {
				if ns != releaseNamespace {
					t.Errorf("%s in namespace %q, want the release's %q", what, ns, releaseNamespace)
				}
			}
			if want, _ := r.value(t, "serviceAccount.name").(string); want != "" && sa.Name != want {
				t.Errorf("ServiceAccount %q, values name %q", sa.Name, want)
			}
			sel, err := metav1LabelSelector(ds)
			if err != nil || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
				t.Errorf("selector %v does not match the template's labels %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
			}
			if r.gateway != nil {
				gw := one(t, "Deployment", r.gateway.deployments).Spec.Template.Labels
				if sel.Matches(labels.Set(gw)) {
					t.Errorf("the DaemonSet's selector %v also selects the gateway's pods %v", ds.Spec.Selector, gw)
				}
			}
		})
	}
}

func TestChartDaemonSetPod(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			r := renderChart(t, tc.values)
			ds := one(t, "DaemonSet", r.agent.daemonSets)
			pod := ds.Spec.Template.Spec
			c := agentContainer(t, ds)

			if !pod.HostPID {
				t.Error("hostPID is off: the agent would see only its own processes")
			}
			if pod.HostNetwork {
				t.Error("hostNetwork is on")
			}
			if pod.ServiceAccountName != one(t, "ServiceAccount", r.agent.serviceAccounts).Name {
				t.Errorf("pod runs as %q, not the chart's ServiceAccount", pod.ServiceAccountName)
			}
			if pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken {
				t.Error("the service account token is not mounted; the pod watch needs it")
			}
			if pod.PriorityClassName != r.value(t, "priorityClassName") {
				t.Errorf("priorityClassName %q, values %q", pod.PriorityClassName, r.value(t, "priorityClassName"))
			}
			if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.MaxSurge == nil || ru.MaxSurge.IntValue() != 0 {
				t.Error("maxSurge is not 0: two agents on a node would report every call twice")
			}

			// Tolerations and node selector are the values', typed.
			var wantTol []corev1.Toleration
			convert(t, r.value(t, "tolerations"), &wantTol)
			if !reflect.DeepEqual(pod.Tolerations, wantTol) {
				t.Errorf("tolerations %+v, values %+v", pod.Tolerations, wantTol)
			}
			var wantSel map[string]string
			convert(t, r.value(t, "nodeSelector"), &wantSel)
			if !maps.Equal(pod.NodeSelector, wantSel) {
				t.Errorf("nodeSelector %v, values %v", pod.NodeSelector, wantSel)
			}
			if tc.values == "" && !slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
				return tl.Key == "" && tl.Operator == corev1.TolerationOpExists && tl.Effect == ""
			}) {
				t.Errorf("default tolerations %+v do not cover every node", pod.Tolerations)
			}

			wantImage := fmt.Sprintf("%s:%s", r.value(t, "image.repository"), r.value(t, "image.tag"))
			if r.value(t, "image.tag") == "" {
				wantImage = fmt.Sprintf("%s:%s", r.value(t, "image.repository"), "latest") // the chart's appVersion
			}
			if c.Image != wantImage {
				t.Errorf("image %q, want %q", c.Image, wantImage)
			}
			var wantRes corev1.ResourceRequirements
			convert(t, r.value(t, "resources"), &wantRes)
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okReq := c.Resources.Requests[res]
				lim, okLim := c.Resources.Limits[res]
				if !okReq || !okLim {
					t.Errorf("%s: request or limit missing", res)
					continue
				}
				if req.Cmp(lim) > 0 {
					t.Errorf("%s: request %s above limit %s", res, req.String(), lim.String())
				}
				if req.Cmp(wantRes.Requests[res]) != 0 || lim.Cmp(wantRes.Limits[res]) != 0 {
					t.Errorf("%s: %s/%s, values %s/%s", res, req.String(), lim.String(), wantRes.Requests.Name(res, ""), wantRes.Limits.Name(res, ""))
				}
			}
		})
	}
}

// convert turns a values subtree into a typed API value, strictly.
func convert(t *testing.T, v any, into any) {
	t.Helper()
	raw, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
}

func TestChartPrivileges(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			r := renderChart(t, tc.values)
			sc := agentContainer(t, one(t, "DaemonSet", r.agent.daemonSets)).SecurityContext
			if sc == nil {
				t.Fatal("no securityContext")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("root filesystem is writable; the agent writes nothing there")
			}
			if r.value(t, "securityContext.privileged") == true {
				if sc.Privileged == nil || !*sc.Privileged {
					t.Error("securityContext.privileged is set, the container is not privileged")
				}
				return
			}
			if sc.Privileged == nil || *sc.Privileged {
				t.Error("the default container is privileged; it should hold only the capabilities")
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Fatal("capabilities: ALL is not dropped first")
			}
			got, want := slices.Clone(sc.Capabilities.Add), slices.Clone(wantCaps)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("capabilities added %v, want %v", got, want)
			}
			if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
				t.Error("the default seccomp profile refuses bpf(2)")
			}
			if sc.AppArmorProfile == nil || sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeUnconfined {
				t.Error("the default AppArmor profile refuses bpf(2) and perf_event_open(2)")
			}
		})
	}
}

func TestChartMounts(t *testing.T) {
	plain := one(t, "DaemonSet", loadManifest(t, "daemonset.yaml").daemonSets)
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			ds := one(t, "DaemonSet", renderChart(t, tc.values).agent.daemonSets)
			c := agentContainer(t, ds)
			volumes := map[string]corev1.Volume{}
			for _, v := range ds.Spec.Template.Spec.Volumes {
				volumes[v.Name] = v
			}
			mounted := map[string]bool{}
			for _, vm := range c.VolumeMounts {
				v, ok := volumes[vm.Name]
				if !ok || v.HostPath == nil || v.HostPath.Path != vm.MountPath {
					t.Errorf("mount %s at %s is not the host's same path", vm.Name, vm.MountPath)
				}
				if vm.MountPath == "/" || vm.MountPath == "/proc" || strings.HasPrefix(vm.MountPath, "/proc/") {
					t.Errorf("mounts host %s, which hostPID makes unnecessary", vm.MountPath)
				}
				mounted[vm.MountPath] = true
				delete(volumes, vm.Name)
			}
			for name := range volumes {
				t.Errorf("volume %s is never mounted", name)
			}
			// What the plain manifest mounts, the chart mounts alike.
			for _, pm := range agentContainer(t, plain).VolumeMounts {
				i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == pm.MountPath })
				if i < 0 || c.VolumeMounts[i].ReadOnly != pm.ReadOnly {
					t.Errorf("the plain manifest mounts %s (read-only %v), the chart does not alike", pm.MountPath, pm.ReadOnly)
				}
			}
			if tc.values != "" && !mounted["/sys/kernel/debug"] {
				t.Error("debugfs: true does not mount /sys/kernel/debug")
			}
		})
	}
}

// acceptedEnv is every variable the agent's configuration reads.
func acceptedEnv() map[string]bool {
	out := map[string]bool{}
	for _, s := range config.Settings() {
		out[s.Env] = true
	}
	return out
}

// envProblems checks the container's settings: every name one the agent
// reads, none both in the ConfigMap and in the pod, and the OTLP headers
// never in the ConfigMap, where anyone who reads ConfigMaps sees them.
func envProblems(c corev1.Container, cm *corev1.ConfigMap) []string {
	accepted := acceptedEnv()
	var out []string
	for k := range cm.Data {
		if !accepted[k] {
			out = append(out, fmt.Sprintf("ConfigMap key %s is no setting of the agent", k))
		}
		if strings.Contains(k, "HEADERS") || strings.Contains(k, "CLIENT_KEY") {
			out = append(out, fmt.Sprintf("ConfigMap holds %s: credentials belong in a Secret", k))
		}
	}
	for _, e := range c.Env {
		if !accepted[e.Name] {
			out = append(out, fmt.Sprintf("env %s is no setting of the agent", e.Name))
		}
		if _, dup := cm.Data[e.Name]; dup {
			out = append(out, fmt.Sprintf("%s is set both in the ConfigMap and in the pod", e.Name))
		}
	}
	slices.Sort(out)
	return out
}

func TestChartEnv(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			r := renderChart(t, tc.values)
			ds := one(t, "DaemonSet", r.agent.daemonSets)
			c := agentContainer(t, ds)
			cm := one(t, "ConfigMap", r.agent.configMaps)
			for _, p := range envProblems(c, cm) {
				t.Error(p)
			}
			if !slices.ContainsFunc(c.EnvFrom, func(s corev1.EnvFromSource) bool {
				return s.ConfigMapRef != nil && s.ConfigMapRef.Name == cm.Name
			}) {
				t.Errorf("the container does not take its settings from ConfigMap %s", cm.Name)
			}
			env := envByName(c)
			if e := env["K8S_NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
				t.Errorf("K8S_NODE_NAME is not from the downward API: %+v", e)
			}

			// Headers come from the Secret the values name, or not at all.
			secret, _ := r.value(t, "otlp.headersSecret.name").(string)
			h, ok := env["OTEL_EXPORTER_OTLP_HEADERS"]
			switch {
			case secret == "" && ok:
				t.Errorf("OTLP headers set without a Secret: %+v", h)
			case secret != "" && (h.Value != "" || h.ValueFrom == nil || h.ValueFrom.SecretKeyRef == nil ||
				h.ValueFrom.SecretKeyRef.Name != secret || h.ValueFrom.SecretKeyRef.Key != r.value(t, "otlp.headersSecret.key")):
				t.Errorf("OTLP headers %+v, want Secret %s key %v", h, secret, r.value(t, "otlp.headersSecret.key"))
			}

			// The agent's configuration accepts what the chart sets: the
			// ConfigMap and the literal env, with the Downward API and the
			// Secret standing in for by examples.
			settings := maps.Clone(cm.Data)
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					settings[e.Name] = e.Value
				case e.ValueFrom.FieldRef != nil:
					settings[e.Name] = "node-1"
				case e.ValueFrom.SecretKeyRef != nil:
					settings[e.Name] = "api-key=secret"
				}
			}
			fs := flag.NewFlagSet("llm-observer", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, err := config.Load(fs, nil, func(k string) (string, bool) { v, ok := settings[k]; return v, ok })
			if err != nil {
				t.Fatalf("the agent refuses the chart's settings: %v", err)
			}
			if got, want := cfg.Export.CaptureContent.String(), r.value(t, "contentCapture"); got != want {
				t.Errorf("content capture %s, values %v", got, want)
			}
			if tc.values == "" && cm.Data["LLM_OBSERVER_CAPTURE_CONTENT"] != "none" {
				t.Error("content capture is on by default")
			}
			var extra map[string]any
			convert(t, r.value(t, "extraEnv"), &extra)
			for k, v := range extra {
				want := fmt.Sprint(v)
				if f, ok := v.(float64); ok {
					want = strconv.FormatFloat(f, 'f', -1, 64)
				}
				if cm.Data[k] != want {
					t.Errorf("extraEnv %s=%v is %q in the ConfigMap", k, v, cm.Data[k])
				}
			}

			// The probes reach the health server on the values' port.
			port := int32(r.value(t, "healthPort").(float64))
			if env["LLM_OBSERVER_HEALTH_ADDR"].Value != "0.0.0.0:"+strconv.Itoa(int(port)) {
				t.Errorf("LLM_OBSERVER_HEALTH_ADDR %q, want 0.0.0.0:%d", env["LLM_OBSERVER_HEALTH_ADDR"].Value, port)
			}
			for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || containerPort(t, c, p.HTTPGet.Port) != port {
					t.Errorf("probe of %s does not reach the health server on %d", name, port)
				}
			}
		})
	}
}

func TestChartEnvCheckCatchesUnknownNames(t *testing.T) {
	// The check above must fail on what it is for, or it proves nothing.
	c := corev1.Container{Env: []corev1.EnvVar{{Name: "LLM_OBSERVER_PORT", Value: "1"}, {Name: "LLM_OBSERVER_PORTS", Value: "2"}}}
	cm := &corev1.ConfigMap{Data: map[string]string{"LLM_OBSERVER_PORTS": "3", "OTEL_EXPORTER_OTLP_HEADERS": "k=v", "LLM_OBSERVER_CAPTURE": "all"}}
	want := []string{
		"ConfigMap holds OTEL_EXPORTER_OTLP_HEADERS: credentials belong in a Secret",
		"ConfigMap key LLM_OBSERVER_CAPTURE is no setting of the agent",
		"LLM_OBSERVER_PORTS is set both in the ConfigMap and in the pod",
		"env LLM_OBSERVER_PORT is no setting of the agent",
	}
	if got := envProblems(c, cm); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestChartRBACIsMinimal(t *testing.T) {
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			m := renderChart(t, tc.values).agent
			role := one(t, "ClusterRole", m.clusterRoles)
			rule := one(t, "rule in the ClusterRole", role.Rules)
			verbs := slices.Sorted(slices.Values(rule.Verbs))
			if !slices.Equal(rule.APIGroups, []string{""}) || !slices.Equal(rule.Resources, []string{"pods"}) ||
				!slices.Equal(verbs, []string{"list", "watch"}) || len(rule.ResourceNames) != 0 || len(rule.NonResourceURLs) != 0 {
				t.Errorf("rule %+v, want list and watch of core pods only", rule)
			}
			b := one(t, "ClusterRoleBinding", m.bindings)
			sa := one(t, "ServiceAccount", m.serviceAccounts)
			subj := one(t, "subject of the binding", b.Subjects)
			if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != role.Name ||
				subj.Kind != "ServiceAccount" || subj.Name != sa.Name || subj.Namespace != sa.Namespace {
				t.Errorf("binding %+v does not give the ClusterRole to ServiceAccount %s/%s", b, sa.Namespace, sa.Name)
			}
		})
	}
}

func TestChartOTLPEndpoint(t *testing.T) {
	// By default, the collector of collector.yaml, as the plain manifest.
	def := one(t, "ConfigMap", renderChart(t, "").agent.configMaps).Data["OTEL_EXPORTER_OTLP_ENDPOINT"]
	plain := one(t, "ConfigMap", loadManifest(t, "daemonset.yaml").configMaps).Data["OTEL_EXPORTER_OTLP_ENDPOINT"]
	if def != plain {
		t.Errorf("default endpoint %q, the plain manifest's %q", def, plain)
	}

	// With the gateway on, its Service, on a port that leads to its OTLP
	// gRPC receiver.
	r := renderChart(t, "testdata/helm-values-custom.yaml")
	if r.gateway == nil {
		t.Fatal("gateway.enabled rendered no collector")
	}
	u, err := url.Parse(one(t, "ConfigMap", r.agent.configMaps).Data["OTEL_EXPORTER_OTLP_ENDPOINT"])
	if err != nil {
		t.Fatal(err)
	}
	svc := one(t, "Service", r.gateway.services)
	if want := svc.Name + "." + svc.Namespace + ".svc"; u.Hostname() != want {
		t.Fatalf("endpoint host %q, want the gateway Service %s", u.Hostname(), want)
	}
	port, _ := strconv.Atoi(u.Port())
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port })
	if i < 0 || svc.Spec.Ports[i].AppProtocol == nil || *svc.Spec.Ports[i].AppProtocol != "grpc" {
		t.Fatalf("the gateway Service has no gRPC port %d", port)
	}
	dep := one(t, "Deployment", r.gateway.deployments)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the collector pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	c := one(t, "collector container", dep.Spec.Template.Spec.Containers)
	target := containerPort(t, c, svc.Spec.Ports[i].TargetPort)
	cfg := collectorConfig(t, *r.gateway)
	if ep, _ := dig(cfg, "receivers", "otlp", "protocols", "grpc", "endpoint").(string); !strings.HasSuffix(ep, ":"+strconv.Itoa(int(target))) {
		t.Errorf("Service port %d → container port %d, but the OTLP gRPC receiver listens on %q", port, target, ep)
	}
}

func TestChartGatewayIsTheCollectorManifest(t *testing.T) {
	if renderChart(t, "").gateway != nil {
		t.Error("the gateway collector is on by default")
	}
	r := renderChart(t, "testdata/helm-values-custom.yaml")
	plain := loadManifest(t, "collector.yaml")
	if got, want := collectorConfig(t, *r.gateway), collectorConfig(t, plain); !reflect.DeepEqual(got, want) {
		t.Errorf("the chart's collector config drifted from collector.yaml's:\n got %v\nwant %v", got, want)
	}
	got := one(t, "collector container", one(t, "Deployment", r.gateway.deployments).Spec.Template.Spec.Containers)
	want := one(t, "collector container", one(t, "Deployment", plain.deployments).Spec.Template.Spec.Containers)
	if got.Image != want.Image || !reflect.DeepEqual(got.Ports, want.Ports) || !reflect.DeepEqual(got.SecurityContext, want.SecurityContext) ||
		!reflect.DeepEqual(got.Resources, want.Resources) || !reflect.DeepEqual(got.LivenessProbe, want.LivenessProbe) {
		t.Errorf("the chart's collector container differs from collector.yaml's:\n got %+v\nwant %+v", got, want)
	}
}

func TestChartLint(t *testing.T) {
	// helm lint: Chart.yaml's fields, the templates' YAML, and Kubernetes
	// API versions that are deprecated or gone.
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			vals := chartutil.Values{}
			if tc.values != "" {
				var err error
				if vals, err = chartutil.ReadValuesFile(tc.values); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range lint.All(chartDir, vals, releaseNamespace, false).Messages {
				// Info is advice such as "icon is recommended".
				if m.Severity > support.InfoSev {
					t.Error(m)
				} else {
					t.Log(m)
				}
			}
		})
	}
}

func TestChartSchema(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	// Values the schema must refuse at install, each with what it is.
	refused := map[string]string{
		"a misspelt value":           "tolerration: []",
		"an unknown capture":         "contentCapture: everything",
		"an unknown protocol":        "otlp: {protocol: http}",
		"inline OTLP headers":        "otlp: {headers: \"api-key=secret\"}",
		"a setting the agent lacks":  "extraEnv: {LLM_OBSERVER_NOPE: 1, PATH: /bin}",
		"headers inline in extraEnv": "extraEnv: {OTEL_EXPORTER_OTLP_HEADERS: \"api-key=secret\"}",
		"a setting the chart owns":   "extraEnv: {LLM_OBSERVER_CAPTURE_CONTENT: all}",
		"a port out of range":        "healthPort: 70000",
	}
	for what, doc := range refused {
		vals, err := chartutil.ReadValues([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		_, err = chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace}, nil)
		if err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s (%s) passes the schema (err = %v)", what, doc, err)
		}
	}

	// Every choice the schema offers is one the agent accepts.
	var schema struct {
		Properties map[string]struct {
			Enum       []string `json:"enum"`
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(ch.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	for env, enum := range map[string][]string{
		"LLM_OBSERVER_CAPTURE_CONTENT":     schema.Properties["contentCapture"].Enum,
		"LLM_OBSERVER_CONTENT_DESTINATION": schema.Properties["contentDestination"].Enum,
		"OTEL_EXPORTER_OTLP_PROTOCOL":      schema.Properties["otlp"].Properties["protocol"].Enum,
	} {
		if len(enum) == 0 {
			t.Errorf("the schema offers no choices for %s", env)
		}
		for _, v := range enum {
			fs := flag.NewFlagSet("llm-observer", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			settings := map[string]string{env: v}
			if _, err := config.Load(fs, nil, func(k string) (string, bool) { s, ok := settings[k]; return s, ok }); err != nil {
				t.Errorf("the schema offers %s=%s, the agent refuses it: %v", env, v, err)
			}
		}
	}
}

func TestChartSchemaExtraEnvIsTheAgentsSettings(t *testing.T) {
	// extraEnv takes every setting of the agent that the chart does not set
	// itself: the chart's own are those of its ConfigMap and its pod.
	owned := map[string]bool{}
	for _, tc := range chartCases {
		r := renderChart(t, tc.values)
		var extra map[string]any
		convert(t, r.value(t, "extraEnv"), &extra)
		for k := range one(t, "ConfigMap", r.agent.configMaps).Data {
			if _, ok := extra[k]; !ok {
				owned[k] = true
			}
		}
		for _, e := range agentContainer(t, one(t, "DaemonSet", r.agent.daemonSets)).Env {
			owned[e.Name] = true
		}
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			ExtraEnv struct {
				PropertyNames struct {
					Enum []string `json:"enum"`
				} `json:"propertyNames"`
			} `json:"extraEnv"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(ch.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	offered := map[string]bool{}
	for _, e := range schema.Properties.ExtraEnv.PropertyNames.Enum {
		offered[e] = true
		if owned[e] {
			t.Errorf("extraEnv offers %s, which the chart sets itself", e)
		}
	}
	accepted := acceptedEnv()
	for e := range accepted {
		if !offered[e] && !owned[e] {
			t.Errorf("setting %s is neither in the schema's extraEnv nor set by the chart", e)
		}
	}
	for e := range offered {
		if !accepted[e] {
			t.Errorf("extraEnv offers %s, which is no setting of the agent", e)
		}
	}
}
