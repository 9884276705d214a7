package k8s

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Container names the container and pod a process runs in, as its cgroup
// path tells them. Either field may be empty: a process on the host has
// neither, a static pod's process has a pod UID that the API server does not
// know, and a plain Docker container has no pod.
type Container struct {
	// ID is the runtime's container ID (64 hex digits), without the
	// runtime prefix that Kubernetes puts in front of it in pod status.
	ID string
	// PodUID is the pod's UID in its usual dashed form.
	PodUID string
}

// Every runtime and cgroup driver spells the same two facts differently:
//
//	systemd driver:  …/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
//	                 …/kubepods-pod<uid>.slice/crio-<id>.scope            (guaranteed QoS)
//	                 /system.slice/docker-<id>.scope                      (Docker without Kubernetes)
//	cgroupfs driver: /kubepods/besteffort/pod<uid>/<id>
//	                 /kubepods/burstable/pod<uid>/crio-<id>
//	                 /docker/<id>
//
// Matching path components one at a time, instead of whole paths, keeps
// working when the path has a prefix (kind's "/kubelet.slice/…", a cgroup
// namespace's "/../..") or a suffix (a container that makes its own
// sub-cgroups, such as systemd's "init.scope").
var (
	// The UID is a dashed UUID for API pods; for static pods it is the
	// kubelet's 32-hex-digit hash of the manifest, with no dashes.
	podComponent = regexp.MustCompile(`^(?:[a-z]+-)*pod([0-9a-f]{8}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{12})(?:\.slice)?$`)
	// conmon, CRI-O's and Podman's per-container monitor, lives in a
	// sibling "crio-conmon-<id>.scope"; "conmon" is not hex, so the monitor
	// is not mistaken for the container it watches.
	containerComponent = regexp.MustCompile(`^(?:(?:cri-containerd|crio|docker|libpod)-)?([0-9a-f]{64})(?:\.scope)?$`)
)

// ReadContainer reads /proc/<pid>/cgroup. With the host's PID namespace (a
// DaemonSet with hostPID) that is the cgroup of any process on the node.
func ReadContainer(pid int) (Container, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/cgroup"
	f, err := os.Open(path)
	if err != nil {
		return Container{}, fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	defer f.Close()
	c, err := ParseCgroup(f)
	if err != nil {
		return Container{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseCgroup reads a /proc/<pid>/cgroup file, cgroup v1, v2 or both
// (hybrid), and returns the container and pod it names. A process outside
// any container gives an empty Container and no error; only a line that is
// not "hierarchy:controllers:path" is an error.
func ParseCgroup(r io.Reader) (Container, error) {
	var best Container
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		// The path may itself hold colons, so split off only the first two
		// fields.
		fields := strings.SplitN(line, ":", 3)
		if len(fields) != 3 {
			return Container{}, fmt.Errorf("line %d: want hierarchy:controllers:path, got %q", n, line)
		}
		c := parseCgroupPath(fields[2])
		// v1 hierarchies normally agree; where they do not (a runtime that
		// placed the process in only some controllers), the line naming
		// both container and pod wins, then one naming the container.
		if score(c) > score(best) {
			best = c
		}
	}
	if err := sc.Err(); err != nil {
		return Container{}, err
	}
	return best, nil
}

func score(c Container) int {
	s := 0
	if c.ID != "" {
		s += 2
	}
	if c.PodUID != "" {
		s++
	}
	return s
}

func parseCgroupPath(path string) Container {
	var c Container
	for comp := range strings.SplitSeq(path, "/") {
		if m := podComponent.FindStringSubmatch(comp); m != nil {
			c.PodUID = strings.ReplaceAll(m[1], "_", "-")
			continue
		}
		// The innermost container component wins: it is the one the
		// process belongs to, whatever sub-cgroups follow.
		if m := containerComponent.FindStringSubmatch(comp); m != nil {
			c.ID = m[1]
		}
	}
	return c
}
