package decode

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

type collectSink struct {
	buf   []byte
	limit int
}

func (c *collectSink) out(p []byte) bool {
	if c.limit > 0 && len(c.buf)+len(p) > c.limit {
		c.buf = append(c.buf, p[:c.limit-len(c.buf)]...)
		return false
	}
	c.buf = append(c.buf, p...)
	return true
}

// sample makes text that compresses like JSON does, with some random bytes
// so dynamic, fixed and stored blocks all appear.
func sample(r *rand.Rand, n int) []byte {
	words := []string{`{"model":"llama3.2",`, `"content":"`, "the ", "token ", `"done":false}`, "\n", "data: ", `{"choices":[{"delta":`}
	var b bytes.Buffer
	for b.Len() < n {
		switch r.IntN(10) {
		case 0:
			for i := 0; i < 40; i++ {
				b.WriteByte(byte(r.Uint32()))
			}
		case 1:
			b.WriteString(fmt.Sprint(r.IntN(100000)))
		default:
			b.WriteString(words[r.IntN(len(words))])
		}
	}
	return b.Bytes()[:n]
}

func inflateSplit(t *testing.T, kind coding, comp []byte, cuts []int, limit int) ([]byte, error) {
	t.Helper()
	s := &collectSink{limit: limit}
	d := newContentDecoder(kind, s)
	defer d.release()
	prev := 0
	for _, c := range append(cuts, len(comp)) {
		if err := d.write(comp[prev:c]); err != nil {
			return s.buf, err
		}
		prev = c
	}
	return s.buf, d.finish()
}

func randomCuts(r *rand.Rand, n, k int) []int {
	var cuts []int
	for i := 0; i < k && n > 0; i++ {
		cuts = append(cuts, r.IntN(n+1))
	}
	// sort
	for i := range cuts {
		for j := i + 1; j < len(cuts); j++ {
			if cuts[j] < cuts[i] {
				cuts[i], cuts[j] = cuts[j], cuts[i]
			}
		}
	}
	return cuts
}

func TestInflateMatchesCompressFlate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 100, 5000, 70000, 300000} {
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, 5, flate.BestCompression, flate.HuffmanOnly} {
			plain := sample(r, size)
			var gz, zl, raw bytes.Buffer
			gw, _ := gzip.NewWriterLevel(&gz, level)
			gw.Write(plain)
			gw.Close()
			zw, _ := zlib.NewWriterLevel(&zl, level)
			zw.Write(plain)
			zw.Close()
			fw, _ := flate.NewWriter(&raw, level)
			fw.Write(plain)
			fw.Close()
			for _, tc := range []struct {
				name string
				kind coding
				comp []byte
			}{{"gzip", gzipCoding, gz.Bytes()}, {"zlib", deflateCoding, zl.Bytes()}, {"raw", deflateCoding, raw.Bytes()}} {
				for trial := 0; trial < 5; trial++ {
					var cuts []int
					switch trial {
					case 0:
					case 1:
						for i := 1; i < len(tc.comp) && i < 3000; i++ {
							cuts = append(cuts, i)
						}
					default:
						cuts = randomCuts(r, len(tc.comp), trial*7)
					}
					got, err := inflateSplit(t, tc.kind, tc.comp, cuts, 0)
					if err != nil {
						t.Fatalf("size %d level %d %s trial %d: %v", size, level, tc.name, trial, err)
					}
					if trial == 1 && len(tc.comp) >= 3000 {
						continue // only a prefix was cut byte by byte; still must match
					}
					if !bytes.Equal(got, plain) {
						t.Fatalf("size %d level %d %s trial %d: got %d bytes, want %d", size, level, tc.name, trial, len(got), len(plain))
					}
				}
			}
		}
	}
}

// FuzzInflate checks the push-based inflater against compress/flate: on
// any stream that flate decodes, fed in any pieces, it must give the same
// bytes and find the same end.
func FuzzInflate(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression, flate.HuffmanOnly} {
		var raw bytes.Buffer
		fw, _ := flate.NewWriter(&raw, level)
		fw.Write(sample(r, 3000))
		fw.Flush()
		fw.Write(sample(r, 500))
		fw.Close()
		f.Add(raw.Bytes(), []byte{1, 7, 200, 3, 90})
	}
	f.Fuzz(func(t *testing.T, comp, cuts []byte) {
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(comp)), 1<<20))
		s := &collectSink{limit: 1 << 22}
		inf := new(inflater)
		inf.reset()
		inf.sink = s
		var err error
		done := false
		rest := comp
		for i := 0; len(rest) > 0 && err == nil && !done; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i])+1)
			}
			_, done, err = inf.write(rest[:n])
			rest = rest[n:]
		}
		if werr != nil || len(want) >= 1<<20 {
			return
		}
		if err != nil || !done {
			t.Fatalf("flate decodes %d bytes; inflater: done=%v err=%v", len(want), done, err)
		}
		if !bytes.Equal(s.buf, want) {
			t.Fatalf("output differs: %d bytes, want %d", len(s.buf), len(want))
		}
	})
}
