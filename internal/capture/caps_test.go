package capture

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMissingCaps: check names each capability that is missing, never a
// bare "run as root".
func TestMissingCaps(t *testing.T) {
	all := []uint{unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_DAC_READ_SEARCH, unix.CAP_SYS_PTRACE}
	for _, tc := range []struct {
		name string
		have []uint
		want []string
	}{
		{"root", append(all, unix.CAP_SYS_ADMIN), nil},
		{"all but CAP_DAC_READ_SEARCH", []uint{unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYS_PTRACE}, []string{"CAP_DAC_READ_SEARCH"}},
		{"CAP_SYS_ADMIN stands in for BPF and PERFMON", []uint{unix.CAP_SYS_ADMIN, unix.CAP_DAC_READ_SEARCH, unix.CAP_SYS_PTRACE}, nil},
		{"only CAP_BPF", []uint{unix.CAP_BPF}, []string{"CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}},
		{"none", nil, []string{"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			has := func(c uint) bool {
				for _, h := range tc.have {
					if h == c {
						return true
					}
				}
				return false
			}
			got := missingCaps(has)
			if len(got) != len(tc.want) {
				t.Fatalf("missing %q, want %q", got, tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w+" (") {
					t.Errorf("missing[%d] = %q, want %s and what it is for", i, got[i], w)
				}
			}
		})
	}
}
