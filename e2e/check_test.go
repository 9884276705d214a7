package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCheck runs `llm-observer check` as root, where every requirement is
// met, and as an unprivileged user, where it must fail with plain reasons.
func TestCheck(t *testing.T) {
	out, err := exec.Command(observerBin, "check").CombinedOutput()
	if err != nil {
		t.Fatalf("check as root: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "all requirements met") {
		t.Errorf("check as root:\n%s", out)
	}

	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", observerBin, "check")
	out, err = cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("check as nobody succeeded:\n%s", out)
	}
	text := string(out)
	for _, want := range []string{"FAIL privileges", "run as root", "cannot run on this machine"} {
		if !strings.Contains(text, want) {
			t.Errorf("check as nobody lacks %q:\n%s", want, text)
		}
	}
	// A plain reason, never the verifier's instruction dump.
	if strings.Contains(text, "R1=") || strings.Count(text, "\n") > 15 {
		t.Errorf("check printed a verifier dump:\n%s", text)
	}
}
