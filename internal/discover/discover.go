// Package discover identifies the processes behind captured traffic through
// /proc: executable, command line, start time, the service name the process
// gives itself, and its cgroup (for container identity). It caches what it
// learns per process and tells which processes have exited, so that state
// kept for them elsewhere can be freed.
package discover

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// Process is what is known of one observed process.
type Process struct {
	PID        int
	StartTicks uint64    // start time in clock ticks since boot; tells a reused pid apart
	StartTime  time.Time // start time as wall clock; zero when unknown
	Exe        string    // absolute path of the executable, as the process's mount namespace sees it
	ExeName    string    // base name of Exe, or the kernel's comm when Exe is unreadable
	Cmdline    []string
	// ServiceName is OTEL_SERVICE_NAME from the process's own environment,
	// or the service.name in its OTEL_RESOURCE_ATTRIBUTES; empty when neither.
	ServiceName string
	// Cgroup is the raw content of /proc/<pid>/cgroup, for container identity.
	Cgroup []byte
	// Gone is set when the process had exited before it could be inspected;
	// only PID and ExeName (the kernel's comm) are then known.
	Gone bool
}

// Table caches processes by pid.
type Table struct {
	fs   procfs.FS
	root string

	mu    sync.Mutex
	procs map[int]*Process
}

// NewTable reads processes under procRoot (normally /proc; the host's /proc
// when running in a container with hostPID).
func NewTable(procRoot string) (*Table, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", procRoot, err)
	}
	return &Table{fs: fs, root: procRoot, procs: map[int]*Process{}}, nil
}

// Lookup returns the process with pid, inspecting it the first time. comm is
// the kernel's name for it, used when the process has already exited.
func (t *Table) Lookup(pid int, comm string) *Process {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.procs[pid]; ok {
		return p
	}
	p := t.inspect(pid, comm)
	t.procs[pid] = p
	return p
}

func (t *Table) inspect(pid int, comm string) *Process {
	p := &Process{PID: pid, ExeName: comm}
	proc, err := t.fs.Proc(pid)
	if err != nil {
		p.Gone = true
		return p
	}
	if st, err := proc.Stat(); err == nil {
		p.StartTicks = st.Starttime
		if sec, err := st.StartTime(); err == nil {
			p.StartTime = time.Unix(0, int64(sec*1e9))
		}
		if comm == "" {
			p.ExeName = st.Comm
		}
	} else {
		p.Gone = true
		return p
	}
	if exe, err := proc.Executable(); err == nil && exe != "" {
		p.Exe = exe
		p.ExeName = filepath.Base(exe)
	}
	if cmd, err := proc.CmdLine(); err == nil {
		p.Cmdline = cmd
	}
	if env, err := proc.Environ(); err == nil {
		p.ServiceName = serviceNameFromEnv(env)
	}
	if cg, err := os.ReadFile(filepath.Join(t.root, fmt.Sprint(pid), "cgroup")); err == nil {
		p.Cgroup = cg
	}
	return p
}

// serviceNameFromEnv finds the service name an OpenTelemetry-aware process
// would give itself, so the agent reports under the same name as its SDK.
func serviceNameFromEnv(env []string) string {
	var fromAttrs string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "OTEL_SERVICE_NAME="); ok && v != "" {
			return v
		}
		if v, ok := strings.CutPrefix(kv, "OTEL_RESOURCE_ATTRIBUTES="); ok {
			for _, pair := range strings.Split(v, ",") {
				if name, ok := strings.CutPrefix(strings.TrimSpace(pair), "service.name="); ok {
					fromAttrs = name
				}
			}
		}
	}
	return fromAttrs
}

// Alive reports whether pid still names the process that was cached for it.
func (t *Table) Alive(pid int) bool {
	proc, err := t.fs.Proc(pid)
	if err != nil {
		return false
	}
	st, err := proc.Stat()
	if err != nil {
		return false
	}
	t.mu.Lock()
	cached, ok := t.procs[pid]
	t.mu.Unlock()
	return !ok || cached.StartTicks == 0 || cached.StartTicks == st.Starttime
}

// Forget drops a process from the cache.
func (t *Table) Forget(pid int) {
	t.mu.Lock()
	delete(t.procs, pid)
	t.mu.Unlock()
}

// Len is the number of cached processes.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.procs)
}
