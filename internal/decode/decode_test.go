package decode

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files and fuzz seed corpora")

func TestFixtures(t *testing.T) {
	for _, path := range fixturePaths(t) {
		f := loadFixture(t, path)
		t.Run(f.name, func(t *testing.T) {
			whole, wholeTL, _ := runFixture(t, f, runOpts{split: wholeFeeds})
			checkGolden(t, f, itemTimes(f, whole))

			// On a clean conversation every byte belongs to some message.
			if whole.Stats == (Stats{}) && !strings.Contains(f.name, "100_continue") {
				var fed, wire [2]int64
				for _, op := range f.ops {
					fed[op.dir] += int64(len(op.data))
				}
				for _, r := range whole.Records {
					if r.Request != nil {
						wire[Egress] += r.Request.Wire
					}
					if r.Response != nil {
						wire[Ingress] += r.Response.Wire
					}
				}
				if fed != wire {
					t.Errorf("fed %v bytes, messages hold %v", fed, wire)
				}
			}

			// One byte per Feed: the reference for when each thing completed.
			single, singleTL, _ := runFixture(t, f, runOpts{split: singleBytes})
			sameResult(t, "single bytes", expectTimes(single, singleTL), single)
			sameResult(t, "whole vs single bytes", expectTimes(single, wholeTL), whole)

			// Every feed cut in two at every byte boundary.
			cuts := 0
			for i, op := range f.ops {
				for k := 1; k < len(op.data); k++ {
					split := func(j int, _ []byte) []int {
						if j == i {
							return []int{k}
						}
						return nil
					}
					res, tl, _ := runFixture(t, f, runOpts{split: split})
					if !sameResult(t, "cut", expectTimes(single, tl), res) {
						t.Fatalf("feed %d cut at %d", i, k)
					}
					cuts++
				}
			}
			t.Logf("%d cuts", cuts)
			if cuts == 0 {
				t.Fatal("fixture has no bytes")
			}

			// Random cuts everywhere at once.
			r := rand.New(rand.NewPCG(uint64(len(f.name)), 7))
			for trial := 0; trial < 30; trial++ {
				split := func(_ int, data []byte) []int {
					var c []int
					for p := r.IntN(8) + 1; p < len(data); p += r.IntN(40) + 1 {
						c = append(c, p)
					}
					return c
				}
				res, tl, _ := runFixture(t, f, runOpts{split: split})
				if !sameResult(t, "random cuts", expectTimes(single, tl), res) {
					t.Fatalf("trial %d", trial)
				}
			}

			// The same conversation seen from the server: directions swap,
			// only ClientSide changes.
			swapped, _, _ := runFixture(t, f, runOpts{split: wholeFeeds, swap: true})
			want := result{Stats: whole.Stats}
			for _, rec := range whole.Records {
				if rec.Call != "event" {
					rec.ClientSide = !rec.ClientSide
				}
				want.Records = append(want.Records, rec)
			}
			sameResult(t, "swapped directions", want, swapped)
		})
	}
}

func sameResult(t *testing.T, what string, want, got result) bool {
	t.Helper()
	if reflect.DeepEqual(want, got) {
		return true
	}
	w, _ := json.MarshalIndent(want, "", "  ")
	g, _ := json.MarshalIndent(got, "", "  ")
	t.Errorf("%s: results differ\n%s", what, lineDiff(string(w), string(g)))
	return false
}

// lineDiff shows the first differing lines with some context.
func lineDiff(want, got string) string {
	wl, gl := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			lo := max(0, i-6)
			var b bytes.Buffer
			for j := lo; j < i; j++ {
				b.WriteString("   " + string(wl[j]) + "\n")
			}
			b.WriteString("-  " + string(w) + "\n+  " + string(g) + "\n")
			return b.String()
		}
	}
	return "(no line differs)"
}

func checkGolden(t *testing.T, f *fixture, res result) {
	t.Helper()
	path := filepath.Join("testdata", "golden", f.name+".json")
	got, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("golden %s differs (run with -update after checking):\n%s", path, lineDiff(string(want), string(got)))
	}
}
