package capture

import "testing"

func TestKernelFloor(t *testing.T) {
	for _, tt := range []struct {
		release string
		ok      bool
	}{
		{"6.18.44-fc-v782", true},
		{"5.12.0", true},
		{"5.15.0-91-generic", true},
		{"5.11.22-100.fc32.x86_64", false},
		{"5.10.0-21-amd64", false},
		{"4.19.0", false},
		{"5.8", false},
		{"6.1-rc3", true},
		{"weird", false},
	} {
		if err := kernelFloor(tt.release); (err == nil) != tt.ok {
			t.Errorf("kernelFloor(%q) = %v, want ok=%v", tt.release, err, tt.ok)
		}
	}
}
