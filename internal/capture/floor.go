package capture

import (
	"fmt"
	"strconv"
	"strings"
)

// MinKernel is the oldest Linux the kernel programs load on: they use BPF
// atomic fetch-and-add with its result (5.12) and typed pointer arguments
// in global functions (5.12); ring buffers (5.8) and BTF come before.
var MinKernel = [2]int{5, 12}

// kernelFloor says whether a kernel release ("6.18.44-fc", "5.10.0-21-amd64")
// is at least MinKernel.
func kernelFloor(release string) error {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return fmt.Errorf("kernel release %q: cannot tell its version; Linux %d.%d or later is needed", release, MinKernel[0], MinKernel[1])
	}
	minorText := parts[1]
	if i := strings.IndexFunc(minorText, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorText = minorText[:i]
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(minorText)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("kernel release %q: cannot tell its version; Linux %d.%d or later is needed", release, MinKernel[0], MinKernel[1])
	}
	if major < MinKernel[0] || (major == MinKernel[0] && minor < MinKernel[1]) {
		return fmt.Errorf("Linux %s is older than %d.%d, the oldest the observer's programs load on (BPF atomic fetch-and-add with its result, typed global-function arguments)",
			release, MinKernel[0], MinKernel[1])
	}
	return nil
}
