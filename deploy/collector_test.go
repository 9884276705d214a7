package deploy

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// collectorConfig is the collector's own configuration, from the ConfigMap
// that the Deployment mounts and names in --config.
func collectorConfig(t *testing.T, m manifest) map[string]any {
	t.Helper()
	cm := one(t, "ConfigMap", m.configMaps)
	dep := one(t, "Deployment", m.deployments)
	pod := dep.Spec.Template.Spec
	c := one(t, "collector container", pod.Containers)

	vol := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.ConfigMap != nil && v.ConfigMap.Name == cm.Name
	})
	if vol < 0 {
		t.Fatalf("the Deployment does not mount ConfigMap %s", cm.Name)
	}
	mount := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == pod.Volumes[vol].Name })
	if mount < 0 {
		t.Fatalf("volume %s is not mounted", pod.Volumes[vol].Name)
	}
	var file string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			file = v
		}
	}
	dir, key, ok := strings.Cut(strings.TrimPrefix(file, c.VolumeMounts[mount].MountPath), "/")
	if !ok || dir != "" || cm.Data[key] == "" {
		t.Fatalf("--config=%s is not a key of ConfigMap %s mounted at %s", file, cm.Name, c.VolumeMounts[mount].MountPath)
	}
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(cm.Data[key]), &cfg); err != nil {
		t.Fatalf("collector config: %v", err)
	}
	return cfg
}

// dig walks nested maps by key and returns nil where the path ends.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestCollectorObjects(t *testing.T) {
	m := loadManifest(t, "collector.yaml")
	ns := one(t, "Namespace", m.namespaces)
	dep := one(t, "Deployment", m.deployments)
	svc := one(t, "Service", m.services)
	cm := one(t, "ConfigMap", m.configMaps)
	for what, got := range map[string]string{"Deployment": dep.Namespace, "Service": svc.Namespace, "ConfigMap": cm.Namespace} {
		if got != ns.Name {
			t.Errorf("%s in namespace %q, the file creates %q", what, got, ns.Name)
		}
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the collector pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	c := one(t, "collector container", dep.Spec.Template.Spec.Containers)
	if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("collector image %q is not pinned to a version", c.Image)
	}
	for _, sp := range svc.Spec.Ports {
		if containerPort(t, c, sp.TargetPort) == 0 {
			t.Errorf("Service port %s leads nowhere", sp.Name)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit: memory_limiter's percentages are of the memory limit", r)
		}
	}
	cfg := collectorConfig(t, m)

	// The health_check extension answers the probes.
	hc, _ := dig(cfg, "extensions", "health_check", "endpoint").(string)
	_, hcPort, _ := net.SplitHostPort(hc)
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || strconv.Itoa(int(containerPort(t, c, p.HTTPGet.Port))) != hcPort {
			t.Errorf("%s probe does not reach the health_check extension on %q", name, hc)
		}
	}
	// Prometheus scrapes the exporter through a container port.
	prom, _ := dig(cfg, "exporters", "prometheus", "endpoint").(string)
	_, promPort, _ := net.SplitHostPort(prom)
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return strconv.Itoa(int(p.ContainerPort)) == promPort }) {
		t.Errorf("the prometheus exporter's port %q is not a container port", promPort)
	}
}

func TestCollectorPipelines(t *testing.T) {
	cfg := collectorConfig(t, loadManifest(t, "collector.yaml"))

	for proto, port := range map[string]string{"grpc": "4317", "http": "4318"} {
		ep, _ := dig(cfg, "receivers", "otlp", "protocols", proto, "endpoint").(string)
		if _, p, err := net.SplitHostPort(ep); err != nil || p != port {
			t.Errorf("OTLP %s receiver on %q, want port %s", proto, ep, port)
		}
	}
	if dig(cfg, "processors", "memory_limiter") == nil || dig(cfg, "processors", "batch") == nil {
		t.Error("memory_limiter or batch processor not defined")
	}

	used := map[string]map[string]bool{"receivers": {}, "processors": {}, "exporters": {}}
	wantExporter := map[string]string{"traces": "otlp_grpc", "metrics": "prometheus", "logs": "otlp_http"}
	for _, signal := range []string{"traces", "metrics", "logs"} {
		p := dig(cfg, "service", "pipelines", signal)
		if p == nil {
			t.Errorf("no %s pipeline", signal)
			continue
		}
		if r := stringList(dig(p, "receivers")); !slices.Contains(r, "otlp") {
			t.Errorf("%s pipeline receivers %q lack otlp", signal, r)
		}
		// memory_limiter first, so data is refused before memory runs out;
		// batch last, so batches hold what the other processors kept.
		procs := stringList(dig(p, "processors"))
		if len(procs) < 2 || procs[0] != "memory_limiter" || procs[len(procs)-1] != "batch" {
			t.Errorf("%s pipeline processors %q: want memory_limiter first and batch last", signal, procs)
		}
		exps := stringList(dig(p, "exporters"))
		if !slices.ContainsFunc(exps, func(e string) bool { return strings.Split(e, "/")[0] == wantExporter[signal] }) {
			t.Errorf("%s pipeline exporters %q: want a %s exporter", signal, exps, wantExporter[signal])
		}
		for kind, names := range map[string][]string{"receivers": stringList(dig(p, "receivers")), "processors": procs, "exporters": exps} {
			for _, n := range names {
				if _, defined := dig(cfg, kind).(map[string]any)[n]; !defined {
					t.Errorf("%s pipeline uses %s %q, which is not defined", signal, kind, n)
				}
				used[kind][n] = true
			}
		}
	}
	for kind, names := range used {
		for n := range dig(cfg, kind).(map[string]any) {
			if !names[n] {
				t.Errorf("%s %q is defined but in no pipeline", kind, n)
			}
		}
	}
	for _, ext := range stringList(dig(cfg, "service", "extensions")) {
		if dig(cfg, "extensions", ext) == nil {
			t.Errorf("extension %q is enabled but not defined", ext)
		}
	}
}
