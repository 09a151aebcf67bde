//go:build unix

package h3m_test

import (
	"bytes"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
)

// BenchmarkReceiveToFiles measures the receiver's CPU per GB of body for a
// push that arrives whole into files (DirStorage) with a SHA-256 digest, as
// `h3m receive` stores them: transport, parsing, digests, writes and the
// commit. It compares writing each packet's bytes through at its offset
// with buffered writes at page boundaries, in the same run, and reports
// cpu-s/GB (user and system time of the process). The digest is in the
// response header, as the pusher sends it for a file.
func BenchmarkReceiveToFiles(b *testing.B) {
	const size = 64 << 20
	c := capture(b, h3m.Profile{}, h3m.PusherConfig{Digests: []string{"SHA-256"}},
		&h3m.Push{Request: h3frame.Request{Path: "/big"}, Body: bytes.NewReader(make([]byte, size)), ContentLength: size})
	pkts := c.pkts
	for _, mode := range []struct {
		name string
		buf  int
	}{{"write-through", -1}, {"buffered", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(size)
			var cpu time.Duration
			for b.Loop() {
				r := c.receiver(b, h3m.ReceiverConfig{Storage: h3m.DirStorage{Dir: dir, WriteBuffer: mode.buf},
					Verifier: &h3m.Verifier{RequireDigest: true}}, nil)
				before := processCPU(b)
				c.feed(r, pkts, nil)
				res := r.Resources()[0]
				if st, err := res.State(); st != h3m.StateComplete {
					b.Fatalf("%v %v", st, err)
				}
				if err := res.Body().(*h3m.FileBody).Commit(filepath.Join(dir, "big")); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU(b) - before
			}
			b.ReportMetric(cpu.Seconds()/(float64(b.N)*size/1e9), "cpu-s/GB")
		})
	}
}

// processCPU is the user and system time the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFileBodyLoss measures the CPU per GB of writing a body into a
// file as `h3m receive` does at 10 % loss: 1300-byte packets in order with
// one in ten lost, then the lost ones (repairs), then the commit.
func BenchmarkFileBodyLoss(b *testing.B) {
	const size, pkt = 64 << 20, 1300
	body := make([]byte, size)
	dir := b.TempDir()
	b.SetBytes(size)
	var cpu time.Duration
	for b.Loop() {
		before := processCPU(b)
		fb, err := h3m.DirStorage{Dir: dir}.NewBody(nil, size)
		if err != nil {
			b.Fatal(err)
		}
		for pass := range 2 {
			for i, off := 0, 0; off < size; i, off = i+1, off+pkt {
				if (i%10 == 3) == (pass == 1) {
					fb.WriteAt(body[off:min(off+pkt, size)], int64(off))
				}
			}
		}
		if err := fb.(*h3m.FileBody).Commit(filepath.Join(dir, "big")); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU(b) - before
	}
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*size/1e9), "cpu-s/GB")
}
