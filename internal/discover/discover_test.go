package discover

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestLookupRealProcess(t *testing.T) {
	tab, err := NewTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	cmd.Env = []string{"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=dev,service.name=from-attrs", "OTEL_SERVICE_NAME=checkout"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Wait for the exec to finish: before it, /proc shows the forked test
	// binary, and the new executable's link appears before its arguments
	// (an empty cmdline for a moment; the observer only looks up a process
	// once it made a system call, long after).
	for i := 0; i < 200; i++ {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if filepath.Base(exe) == "sleep" && len(args) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p := tab.Lookup(pid, "sleep")
	if p.Gone || p.ExeName != "sleep" || p.ServiceName != "checkout" || len(p.Cmdline) != 2 || p.StartTicks == 0 || len(p.Cgroup) == 0 {
		t.Errorf("lookup: %+v", p)
	}
	if !tab.Alive(pid) {
		t.Error("running process reported dead")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if tab.Alive(pid) {
		t.Error("reaped process reported alive")
	}
	tab.Forget(pid)
	if g := tab.Lookup(pid, "sleep"); !g.Gone || g.ExeName != "sleep" {
		t.Errorf("exited process: %+v", g)
	}
}

func TestServiceNameFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, ""},
		{[]string{"OTEL_SERVICE_NAME=a"}, "a"},
		{[]string{"OTEL_RESOURCE_ATTRIBUTES=service.name=b, x=y"}, "b"},
		{[]string{"OTEL_RESOURCE_ATTRIBUTES=service.name=b", "OTEL_SERVICE_NAME=a"}, "a"},
		{[]string{"OTEL_SERVICE_NAME="}, ""},
	} {
		if got := serviceNameFromEnv(tc.env); got != tc.want {
			t.Errorf("%q: got %q want %q", tc.env, got, tc.want)
		}
	}
}
