package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The fuzz seeds derived from fixtures, by target: each must hold its
// fixture's bytes exactly (TestFuzzSeedsMatchFixtures), so that a changed
// fixture changes what the fuzzer starts from.
var fixtureSeeds = map[string]map[string]string{
	"FuzzReadEvents": {"watch_stream_ollama": "testdata/watch_stream_ollama.ndjson"},
	"FuzzDecodeList": {"podlist_node_a": "testdata/podlist_node_a.json"},
}

// FuzzReadEvents feeds arbitrary watch streams to a cache. Whatever comes,
// nothing panics, the indexes stay consistent, and the resourceVersion to
// resume from is the last one the stream gave.
func FuzzReadEvents(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := &Cache{node: thisNode}
		var lastRV string
		rv, n, err := readEvents(bytes.NewReader(stream), "start", func(ev watchEvent) {
			if ev.rv != "" {
				lastRV = ev.rv
			}
			c.apply(ev)
			checkIndexes(t, c)
		})
		if n == 0 && rv != "start" {
			t.Fatalf("rv %q without an event", rv)
		}
		if lastRV != "" && rv != lastRV {
			t.Fatalf("resume from %q, want the last event's %q", rv, lastRV)
		}
		if errors.Is(err, errGone) && !bytes.Contains(stream, []byte("410")) {
			t.Fatalf("410 from a stream that does not say it: %v", err)
		}
		for uid, p := range c.byUID {
			id, ok := c.Lookup(Container{PodUID: uid})
			if ok != (p.node == thisNode) {
				t.Fatalf("Lookup(%s) = %v for a pod on %q", uid, ok, p.node)
			}
			if ok && (id.PodUID != uid || id.PodName != p.name) {
				t.Fatalf("Lookup(%s) = %+v", uid, id)
			}
		}
	})
}

// checkIndexes holds for the cache after every event: each pod is under
// its own UID, and each container ID leads to a cached pod that has it.
func checkIndexes(t *testing.T, c *Cache) {
	t.Helper()
	for uid, p := range c.byUID {
		if p.uid != uid || uid == "" {
			t.Fatalf("pod %q under UID %q", p.uid, uid)
		}
	}
	for id, p := range c.byContainer {
		if c.byUID[p.uid] != p {
			t.Fatalf("container %s leads to pod %s, which is not cached", id, p.uid)
		}
		found := false
		for _, ct := range p.containers {
			found = found || ct.id == id
		}
		if !found || id == "" {
			t.Fatalf("container %q leads to pod %s, which does not have it", id, p.uid)
		}
	}
}

// FuzzDecodeList checks the streaming list decoder against encoding/json
// decoding the whole document at once: where that succeeds, the streaming
// one must too, with the same pods.
func FuzzDecodeList(f *testing.F) {
	f.Fuzz(func(t *testing.T, doc []byte) {
		pods, meta, err := decodeList(bytes.NewReader(doc))
		// A document encoding/json takes whole, with every value of the
		// type it should have...
		var typed struct {
			Metadata listMeta  `json:"metadata"`
			Items    []wirePod `json:"items"`
		}
		if json.Unmarshal(doc, &typed) != nil {
			return
		}
		// ...and its items taken from the last items key: for a repeated
		// key encoding/json decodes the second array into the first one's
		// elements, so that a null element keeps the pod before it.
		var whole struct {
			Metadata listMeta        `json:"metadata"`
			Items    json.RawMessage `json:"items"`
		}
		var items []wirePod
		if json.Unmarshal(doc, &whole) != nil || (whole.Items != nil && json.Unmarshal(whole.Items, &items) != nil) {
			t.Fatal("encoding/json takes the document with typed items but not with raw ones")
		}
		if err != nil {
			t.Fatalf("encoding/json decodes it, decodeList fails: %v", err)
		}
		var want []*pod
		for _, w := range items {
			if p := w.trim(); p != nil {
				want = append(want, p)
			}
		}
		if meta != whole.Metadata {
			t.Fatalf("meta %+v, want %+v", meta, whole.Metadata)
		}
		if !reflect.DeepEqual(pods, want) {
			t.Fatalf("pods %+v\nwant %+v", pods, want)
		}
	})
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seeds derived from fixtures")

func TestFuzzSeedsMatchFixtures(t *testing.T) {
	for target, seeds := range fixtureSeeds {
		for seed, fixture := range seeds {
			want, err := os.ReadFile(fixture)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata/fuzz", target, seed)
			if *updateSeeds {
				if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (write it with: go test -run TestFuzzSeedsMatchFixtures ./internal/k8s -update-seeds)", err)
			}
			got, err := parseSeed(raw)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s", path, fixture)
			}
		}
	}
}

// parseSeed reads a corpus file of one []byte argument, the format go test
// -fuzz writes.
func parseSeed(raw []byte) ([]byte, error) {
	header, body, ok := strings.Cut(string(raw), "\n")
	if !ok || header != "go test fuzz v1" {
		return nil, errors.New("not a go test fuzz v1 file")
	}
	body = strings.TrimSpace(body)
	inner, ok := strings.CutPrefix(body, "[]byte(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil, errors.New("want one []byte value")
	}
	s, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
	return []byte(s), err
}
