package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, gcMaxPercent},
		{1 * mb, gcMaxPercent},            // 800 % would do; capped
		{2 * mb, 300},                     // 400 %, capped
		{3 * mb, 275},                     // 267 %, rounded up to a step
		{4 * mb, 200},                     // 200 % of 4 MB is the headroom
		{6 * mb, 150},                     // 133 %, rounded up
		{8 * mb, gcMinPercent},            // the default already gives it
		{200 * mb, gcMinPercent},          // never below the default
		{8*mb + 1, gcMinPercent},          // just past: the default
		{8*mb - 1<<10, gcMinPercent + 25}, // just short: one step up
	}
	for _, tt := range tests {
		if got := gcPercentFor(tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB + %d B) = %d, want %d", tt.live/mb, tt.live%mb, got, tt.want)
		}
		if got := gcPercentFor(tt.live); tt.live > 0 && uint64(got)*tt.live/100 < min(uint64(gcHeadroom), uint64(gcMaxPercent)*tt.live/100) {
			t.Errorf("gcPercentFor(%d) = %d leaves less than the headroom", tt.live, got)
		}
	}
}
