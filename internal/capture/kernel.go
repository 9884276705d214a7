package capture

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

const tracefsPath = "/sys/kernel/tracing"

// EnsureTracefs mounts tracefs at /sys/kernel/tracing when neither it nor
// debugfs's tracing directory is there: tracepoints are attached by ids read
// from it, and fresh hosts often boot without it mounted.
func EnsureTracefs() error {
	for _, p := range []string{tracefsPath, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(p + "/events"); err == nil {
			return nil
		} else if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("tracefs at %s is not readable: needs CAP_DAC_READ_SEARCH (or root)", p)
		}
	}
	var fs unix.Statfs_t
	if unix.Statfs(tracefsPath, &fs) == nil && fs.Type == unix.TRACEFS_MAGIC {
		return fmt.Errorf("tracefs is mounted at %s but its events are missing: the kernel needs CONFIG_FTRACE_SYSCALLS=y", tracefsPath)
	}
	if err := unix.Mount("nodev", tracefsPath, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it at %s failed (run as root, or mount it: mount -t tracefs nodev %s): %w", tracefsPath, tracefsPath, err)
	}
	return nil
}

// Requirement is one kernel feature the observer needs, and whether it is there.
type Requirement struct {
	Name   string
	OK     bool
	Detail string // what was found, or what to do about it
}

// Check inspects the running kernel and process for everything Load needs,
// down to loading the programs without attaching them, and explains each
// missing piece in plain words.
func Check() []Requirement {
	var reqs []Requirement
	add := func(name string, err error, ok string) {
		r := Requirement{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			r.Detail = err.Error()
		}
		reqs = append(reqs, r)
	}

	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	add("kernel", kernelFloor(release), release)
	add("privileges", checkCaps(), "root, or CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN), CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE")
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	if err != nil {
		err = fmt.Errorf("no /sys/kernel/btf/vmlinux: the kernel needs CONFIG_DEBUG_INFO_BTF=y (5.8+ distribution kernels have it)")
	}
	add("BTF", err, "/sys/kernel/btf/vmlinux")
	err = EnsureTracefs()
	add("tracefs", err, "mounted")
	if err == nil {
		_, err = os.Stat(tracefsPath + "/events/syscalls/sys_enter_read")
		if err != nil {
			if _, e := os.Stat("/sys/kernel/debug/tracing/events/syscalls/sys_enter_read"); e == nil {
				err = nil
			} else {
				err = errors.New("syscall tracepoints are missing: the kernel needs CONFIG_FTRACE_SYSCALLS=y")
			}
		}
		add("syscall tracepoints", err, "syscalls/sys_enter_* and sys_exit_*")
	}
	err = features.HaveMapType(ebpf.RingBuf)
	switch {
	case errors.Is(err, unix.EPERM):
		err = errors.New("cannot tell: creating BPF maps is not permitted (run as root)")
	case err != nil:
		err = fmt.Errorf("BPF ring buffer unavailable (needs Linux 5.8+; the observer needs 5.12+): %w", err)
	}
	add("ring buffer", err, "BPF_MAP_TYPE_RINGBUF")
	err = features.HaveProgramType(ebpf.TracePoint)
	switch {
	case errors.Is(err, unix.EPERM):
		err = errors.New("cannot tell: loading BPF programs is not permitted (run as root)")
	case err != nil:
		err = fmt.Errorf("tracepoint programs unavailable: %w", err)
	}
	add("tracepoint programs", err, "BPF_PROG_TYPE_TRACEPOINT")
	add("programs load", tryLoad(), "verifier accepted every program")
	return reqs
}

func checkCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if missing := missingCaps(has); len(missing) > 0 {
		return fmt.Errorf("missing %s: grant them, or run as root", strings.Join(missing, ", "))
	}
	return nil
}

// missingCaps names each capability the observer lacks and what it is for.
// CAP_SYS_RESOURCE is left out: only kernels before 5.11 need it, and
// loading says so when they do.
func missingCaps(has func(uint) bool) []string {
	var missing []string
	if !has(unix.CAP_SYS_ADMIN) {
		for _, c := range []struct {
			cap  uint
			name string
		}{{unix.CAP_BPF, "CAP_BPF"}, {unix.CAP_PERFMON, "CAP_PERFMON"}} {
			if !has(c.cap) {
				missing = append(missing, c.name+" (load and attach eBPF programs; CAP_SYS_ADMIN also does)")
			}
		}
	}
	if !has(unix.CAP_DAC_READ_SEARCH) {
		missing = append(missing, "CAP_DAC_READ_SEARCH (read tracefs, and other processes' binaries and libraries)")
	}
	if !has(unix.CAP_SYS_PTRACE) {
		missing = append(missing, "CAP_SYS_PTRACE (read other processes' /proc entries: executable, environment, mappings)")
	}
	return missing
}

func tryLoad() error {
	spec, err := loadObserver()
	if err != nil {
		return fmt.Errorf("read embedded eBPF object: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(os.Getpagesize())
	var objs observerObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return explainLoadError(err)
	}
	return objs.Close()
}

// explainLoadError turns a load failure into one sentence a user can act on;
// the verifier's log goes to the end, cut to its last line, never dumped.
func explainLoadError(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.Is(err, unix.EPERM):
		return errors.New("the kernel refused to load eBPF programs (permission denied): run as root, or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN")
	case errors.As(err, &ve):
		last := ""
		if n := len(ve.Log); n > 0 {
			last = strings.TrimSpace(ve.Log[n-1])
		}
		return fmt.Errorf("the kernel's verifier rejected an eBPF program (this kernel may be too old or lack BTF); verifier said: %s", last)
	}
	return fmt.Errorf("load eBPF programs: %w", err)
}
