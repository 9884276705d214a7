package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const unitFile = "llm-observer.service"

// unit is a systemd unit file: section → key → values, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitFile)
	svc := u["Service"]
	for key, want := range map[string]string{
		"ExecStart":       "/usr/local/bin/llm-observer",
		"EnvironmentFile": "-/etc/default/llm-observer",
		"Restart":         "on-failure",
		"NoNewPrivileges": "yes",
		"LimitMEMLOCK":    "infinity",
	} {
		if got := svc[key]; !slices.Equal(got, []string{want}) {
			t.Errorf("[Service] %s = %q, want %q", key, got, want)
		}
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("[Install] WantedBy = %q", got)
	}

	// The bounding set is exactly the capabilities the agent uses.
	var caps []string
	for _, v := range svc["CapabilityBoundingSet"] {
		caps = append(caps, strings.Fields(v)...)
	}
	var want []string
	for _, c := range wantCaps {
		want = append(want, "CAP_"+string(c))
	}
	slices.Sort(caps)
	slices.Sort(want)
	if !slices.Equal(caps, want) {
		t.Errorf("CapabilityBoundingSet %q, want %q", caps, want)
	}
	// These would stop eBPF or tracefs from working.
	for _, key := range []string{"ProtectKernelTunables", "PrivateNetwork", "DynamicUser"} {
		if v, ok := svc[key]; ok {
			t.Errorf("[Service] %s=%q is set; it would get in the way of loading eBPF or exporting", key, v)
		}
	}
	if u := svc["User"]; len(u) > 0 && u[0] != "root" {
		t.Errorf("User=%s: loading eBPF needs root", u[0])
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (apt-get install systemd): it is what checks the unit's keys")
	}
	// verify also checks that ExecStart exists; point it at a binary that
	// does, since the observer is not installed here.
	raw, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	stand := filepath.Join(t.TempDir(), unitFile)
	text := strings.ReplaceAll(string(raw), "/usr/local/bin/llm-observer", "/bin/true")
	if err := os.WriteFile(stand, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", stand).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
