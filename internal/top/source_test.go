package top

import (
	"bufio"
	"bytes"
	"os"
	"testing"

	"github.com/llm-observer/llm-observer/internal/feed"
)

// feedFixture is a feed as the observer wrote it: one frame of each type.
const feedFixture = "testdata/feed_frames.ndjson"

func TestReadFrames(t *testing.T) {
	data, err := os.ReadFile(feedFixture)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(bytes.NewReader(data), 16) // frames longer than the buffer
	var types []string
	for {
		fr, err := readFrame(r)
		if err != nil {
			break
		}
		types = append(types, fr.Type)
		agg := NewAggregator(MaxWindow, 1, t0)
		agg.Add(fr)
	}
	want := []string{feed.TypeHello, feed.TypeStart, feed.TypeCall, feed.TypeHealth, feed.TypeDropped}
	if len(types) != len(want) {
		t.Fatalf("frames %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Errorf("frame %d is %s, want %s", i, types[i], want[i])
		}
	}
}

// FuzzReadFrame: whatever comes down the socket, reading and aggregating
// it returns errors, never panics.
func FuzzReadFrame(f *testing.F) {
	if data, err := os.ReadFile(feedFixture); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		agg := NewAggregator(MaxWindow, 4, t0)
		for range 1000 {
			fr, err := readFrame(r)
			if err != nil {
				break
			}
			agg.Add(fr)
		}
		snap := agg.Snapshot(t0)
		Render(snap, Layout{Width: 80, Height: 20, Styled: true})
	})
}
