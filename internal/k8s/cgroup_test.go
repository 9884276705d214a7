package k8s

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadContainerOfThisProcess(t *testing.T) {
	// Tests run on a host or VM, not in a container, so the cgroup names
	// neither; what matters is that a real file parses without error.
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("/proc/self/cgroup:\n%s", raw)
	c, err := ReadContainer(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c != (Container{}) {
		t.Fatalf("ReadContainer(self) = %+v, want no container (is the test running inside one?)", c)
	}
}

func TestReadContainerOfGoneProcess(t *testing.T) {
	// PIDs stop well below this (pid_max is at most 2^22).
	if _, err := ReadContainer(1 << 30); err == nil {
		t.Fatal("want an error for a process that does not exist")
	}
}

func TestParseCgroupFixtures(t *testing.T) {
	const (
		uid0 = "2c8c6b4e-0d1f-4a8e-9f3b-6a1d2e3f4a5b"
		uid1 = "7d0e9f1a-2b3c-4d5e-8f6a-7b8c9d0e1f2a"
		uid2 = "a1b2c3d4-e5f6-4789-8abc-def012345678"
		uid3 = "0f1e2d3c-4b5a-4697-a8b9-c0d1e2f3a4b5"
		uid4 = "9e8d7c6b-5a49-4382-b716-05f4e3d2c1b0"
		uid5 = "3a4b5c6d-7e8f-4091-a2b3-c4d5e6f7a8b9"
		uid6 = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
	)
	want := map[string]Container{
		"containerd_systemd_v2_burstable.cgroup":          {ID: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b", PodUID: uid0},
		"containerd_systemd_v2_guaranteed.cgroup":         {ID: "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35", PodUID: uid1},
		"containerd_systemd_v1_besteffort.cgroup":         {ID: "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce", PodUID: uid2},
		"containerd_cgroupfs_v1_burstable.cgroup":         {ID: "4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a", PodUID: uid3},
		"containerd_cgroupfs_v2_besteffort.cgroup":        {ID: "ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d", PodUID: uid4},
		"containerd_cgroupfs_v1_guaranteed.cgroup":        {ID: "e7f6c011776e8db7cd330b54174fd76f7d0216b612387a5ffcfb81e6f0919683", PodUID: uid5},
		"containerd_systemd_v2_cgroupns.cgroup":           {ID: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b", PodUID: uid0},
		"containerd_systemd_v2_nested_init.cgroup":        {ID: "7902699be42c8a8e46fbbb4501726517e86b22c56a189f7625a6da49081b2451", PodUID: uid1},
		"containerd_systemd_v2_static_pod.cgroup":         {ID: "19581e27de7ced00ff1ce50b2047e7a567c76b1cbaebabe5ef03f7c3017bb5b7", PodUID: "6ec3ee1d8bc4ba0a5ec0f0bc4e1d7a9e"},
		"kind_systemd_v2_besteffort.cgroup":               {ID: "2c624232cdd221771294dfbb310aca000a0df6ac8b66b696d90ef06fdefb64a3", PodUID: uid6},
		"crio_systemd_v2_besteffort.cgroup":               {ID: "4a44dc15364204a80fe80e9039455cc1608281820fe2b24f1e5233ade6af1dd5", PodUID: uid2},
		"crio_systemd_v1_guaranteed.cgroup":               {ID: "4fc82b26aecb47d2868c4efbe3581732a3e7cbcc6c2efb32062c08170a05eeb8", PodUID: uid3},
		"crio_cgroupfs_v1_burstable.cgroup":               {ID: "6b51d431df5d7f141cbececcf79edf3dd861c3b4069f0b11661a3eefacbba918", PodUID: uid4},
		"crio_conmon_systemd_v2.cgroup":                   {PodUID: uid5},
		"docker_kubernetes_systemd_v2_burstable.cgroup":   {ID: "8527a891e224136950ff32ca212b45bc93f69fbb801c3b1ebedac52775f99e61", PodUID: uid6},
		"docker_kubernetes_cgroupfs_v1_besteffort.cgroup": {ID: "e629fa6598d732768f7c726b4b621285f9c3b85303900aa912017db7617d8bdb", PodUID: uid0},
		"docker_systemd_v2.cgroup":                        {ID: "b17ef6d19c7a5b1ee83b907c595526dcb1eb06db8227d650d5dda0a9f4ce8cd9"},
		"docker_systemd_v1.cgroup":                        {ID: "4523540f1504cd17100c4835e85b7eefd49911580f8efff0599a8f283be6b9e3"},
		"docker_cgroupfs_v1.cgroup":                       {ID: "4ec9599fc203d176a301536c2e091a19bc852759b255bd6818810a42c5fed14a"},
		"docker_cgroupfs_v2.cgroup":                       {ID: "9400f1b21cb527d7fa3d3eabba93557a18ebe7a2ca4e471cfe5e4c5b4ca7f767"},
		"host_systemd_v2_user_session.cgroup":             {},
		"host_hybrid_v1_v2.cgroup":                        {},
		"host_v2_root.cgroup":                             {},
	}
	files, err := filepath.Glob("testdata/*.cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d fixtures in testdata, %d expectations: every fixture needs one", len(files), len(want))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".cgroup"), func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseCgroup(f)
			if err != nil {
				t.Fatal(err)
			}
			if got != w {
				t.Errorf("got %+v, want %+v", got, w)
			}
		})
	}
}

func TestParseCgroupRejectsMalformedLine(t *testing.T) {
	_, err := ParseCgroup(strings.NewReader("0::/\nnot a cgroup line\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}

func TestParseCgroupEmpty(t *testing.T) {
	c, err := ParseCgroup(strings.NewReader(""))
	if err != nil || c != (Container{}) {
		t.Fatalf("got %+v, %v; want empty and no error", c, err)
	}
}
