package capture

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
)

// BenchmarkInFlightStorage compares the two places a system call on a
// followed connection waits for its exit: the thread's task storage, which
// the probe uses where the kernel offers it, and the hash map that older
// kernels fall back to. Two probes are loaded, one of each kind, and only
// one is attached at a time, in alternating batches within one run, so
// that the ratio is not the machine's noise. Only followed connections
// reach the in-flight state, so the workloads are the HTTP ones.
//
// Reported: task/hash (median ratio over batch pairs), and the ns/op of
// each and their difference (negative when task storage is cheaper).
func BenchmarkInFlightStorage(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("BenchmarkInFlightStorage attaches eBPF programs and must run as root")
	}
	if !taskStorageOffered() {
		b.Fatal("this kernel refuses task storage to tracepoint programs: there is nothing to compare")
	}
	load := func(hash bool) *Probe {
		inFlightHash = hash
		defer func() { inFlightHash = false }()
		p, err := Load(Config{ObserveSelf: true})
		if err != nil {
			b.Fatalf("load: %v", err)
		}
		b.Cleanup(func() { p.Close() })
		return p
	}
	task, hash := load(false), load(true)
	if !task.taskStorage || hash.taskStorage {
		b.Fatalf("probes keep calls in task storage: %v and %v, want true and false", task.taskStorage, hash.taskStorage)
	}
	if err := detach(hash); err != nil {
		b.Fatal(err)
	}

	self := uint32(os.Getpid())
	var ours [2]atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for i, p := range []*Probe{hash, task} {
		go func() {
			done <- p.Run(ctx, func(ev *Event) {
				if ev.Conn.PID == self {
					ours[i].Add(1)
				}
			})
		}()
	}
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				b.Errorf("run: %v", err)
			}
		}
	}()

	sw := &storageSwitch{task: task, hash: hash, on: true}
	for _, w := range overheadWorkloads {
		if w.name != "llm-stream" && w.name != "http-other" {
			continue
		}
		b.Run(w.name, func(b *testing.B) {
			b.StopTimer()
			op, fresh := w.setup(b)
			settle()
			ours[0].Store(0)
			ours[1].Store(0)
			r := interleave(b, sw, op, fresh, nil)
			settle()
			if w.tracked && (ours[0].Load() == 0 || ours[1].Load() == 0) {
				b.Fatalf("records with the hash map: %d, with task storage: %d; want both", ours[0].Load(), ours[1].Load())
			}
			b.ReportMetric(r.ratio, "task/hash")
			b.ReportMetric(r.without, "hash-ns/op")
			b.ReportMetric(r.with, "task-ns/op")
			b.ReportMetric(r.added, "task-minus-hash-ns/op")
		})
	}
	for _, p := range []*Probe{task, hash} {
		c, err := p.Counters()
		if err != nil {
			b.Fatal(err)
		}
		if c.RingFull != 0 || c.ActiveMapFull != 0 {
			b.Errorf("the kernel side lost data during the benchmark: %+v", c)
		}
	}
}

// storageSwitch attaches one of two probes: the task-storage one when on,
// the hash one otherwise.
type storageSwitch struct {
	task, hash *Probe
	on         bool
}

func (s *storageSwitch) attached() bool { return s.on }

func (s *storageSwitch) probe() *Probe {
	if s.on {
		return s.task
	}
	return s.hash
}

func (s *storageSwitch) set(b *testing.B, on bool) {
	if s.on == on {
		return
	}
	from, to := s.task, s.hash
	if on {
		from, to = s.hash, s.task
	}
	if err := detach(from); err != nil {
		b.Fatal(err)
	}
	if err := to.attach(); err != nil {
		b.Fatal(err)
	}
	s.on = on
}
