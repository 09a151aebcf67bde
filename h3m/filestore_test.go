package h3m_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/h3m-project/h3m/h3m"
)

func TestDirStorage(t *testing.T) {
	dir := t.TempDir()
	st := h3m.DirStorage{Dir: dir, MaxSize: 1000}
	if _, err := st.NewBody(nil, 2000); !errors.Is(err, h3m.ErrTooLarge) {
		t.Fatalf("over the cap: %v", err)
	}
	b, err := st.NewBody(nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	fb := b.(*h3m.FileBody)
	fb.WriteAt([]byte("world"), 5)
	fb.WriteAt([]byte("hello"), 0)
	final := filepath.Join(dir, "a", "b.txt")
	if _, err := os.Stat(final); err == nil {
		t.Fatal("final name exists before commit")
	}
	if err := fb.Commit(final); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(final)
	if !bytes.Equal(got, []byte("helloworld")) {
		t.Fatalf("%q", got)
	}
	b2, _ := st.NewBody(nil, 5)
	name := b2.(*h3m.FileBody).Name()
	b2.Discard()
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatal("discarded body left its file")
	}
	if _, err := fb.WriteAt(make([]byte, 10), 995); !errors.Is(err, h3m.ErrTooLarge) {
		t.Fatalf("write over the cap: %v", err)
	}
}

// TestFileBodyKeepsEveryWrite writes a body in packet-sized pieces — in
// order, with gaps filled later, overwrites and reads in between — through
// a small write buffer, and compares every read and the committed file
// with what was written.
func TestFileBodyKeepsEveryWrite(t *testing.T) {
	const size = 300_000
	for _, buf := range []int{-1, 1, 5000, 64 << 10, h3m.DefaultWriteBuffer} {
		dir := t.TempDir()
		b, err := h3m.DirStorage{Dir: dir, WriteBuffer: buf}.NewBody(nil, size)
		if err != nil {
			t.Fatal(err)
		}
		fb := b.(*h3m.FileBody)
		rng := rand.New(rand.NewPCG(uint64(buf+2), 7))
		want := make([]byte, size)
		write := func(off, n int) {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if k, err := fb.WriteAt(p, int64(off)); err != nil || k != n {
				t.Fatalf("buffer %d: write %d at %d: %d %v", buf, n, off, k, err)
			}
			copy(want[off:], p)
		}
		check := func() {
			off, n := rng.IntN(size-1000), 1+rng.IntN(1000)
			got := make([]byte, n)
			if _, err := fb.ReadAt(got, int64(off)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[off:off+n]) {
				t.Fatalf("buffer %d: read %d at %d differs", buf, n, off)
			}
		}
		var gaps [][2]int
		for off := 0; off < size; {
			n := min(1100+rng.IntN(60), size-off)
			switch r := rng.IntN(100); {
			case r < 5:
				gaps = append(gaps, [2]int{off, n}) // lost: repaired later
			case r < 8:
				write(off, n)
				write(off+n/2, n/2) // overwritten at once
			default:
				write(off, n)
			}
			if rng.IntN(50) == 0 {
				check()
			}
			off += n
		}
		for _, g := range gaps {
			write(g[0], g[1])
			check()
		}
		final := filepath.Join(dir, "out")
		if err := fb.Commit(final); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(final)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("buffer %d: committed file differs (%v)", buf, err)
		}
	}
}

// TestFileBodyWritesWholePages: contiguous packet-sized writes reach the
// file in page-aligned pieces, the rest held until a read or commit needs
// it; Discard drops it and removes the file.
func TestFileBodyWritesWholePages(t *testing.T) {
	dir := t.TempDir()
	const size = 100_000
	b, err := h3m.DirStorage{Dir: dir, WriteBuffer: 10_000}.NewBody(nil, size)
	if err != nil {
		t.Fatal(err)
	}
	fb := b.(*h3m.FileBody)
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	onDisk := func() []byte {
		got, err := os.ReadFile(fb.Name())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	written := 0
	for written+1100 <= 50_000 {
		fb.WriteAt(body[written:written+1100], int64(written))
		written += 1100
	}
	disk := onDisk()
	held := 0
	for held < written && disk[written-1-held] == 0 {
		held++
	}
	flushed := written - held
	if flushed == 0 || flushed%4096 != 0 || held >= 10_000 || !bytes.Equal(disk[:flushed], body[:flushed]) {
		t.Fatalf("after %d bytes: %d on disk (want whole pages), %d held", written, flushed, held)
	}
	got := make([]byte, written)
	if _, err := fb.ReadAt(got, 0); err != nil || !bytes.Equal(got, body[:written]) {
		t.Fatalf("read back: %v", err)
	}
	if !bytes.Equal(onDisk()[:written], body[:written]) {
		t.Fatal("a read did not write the bytes held")
	}
	fb.WriteAt(body[written:written+500], int64(written))
	if err := fb.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fb.Name()); !os.IsNotExist(err) {
		t.Fatalf("discarded body left its file: %v", err)
	}
	if _, err := fb.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("write after discard accepted")
	}
}

// TestFileBodyHoldsAcrossLostPackets: packet-sized writes with one packet
// in ten lost (written later, as a repair) reach the file in about as few
// calls as with nothing lost, and the file ends exact; a gap over bytes
// already in the file is not held as zeros over them.
func TestFileBodyHoldsAcrossLostPackets(t *testing.T) {
	const size, pkt = 1 << 20, 1300
	body := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(body)
	b, err := h3m.DirStorage{Dir: t.TempDir()}.NewBody(nil, size)
	if err != nil {
		t.Fatal(err)
	}
	fb := b.(*h3m.FileBody)
	var lost [][2]int
	for i, off := 0, 0; off < size; i, off = i+1, off+pkt {
		end := min(off+pkt, size)
		if i%10 == 3 {
			lost = append(lost, [2]int{off, end})
			continue
		}
		if _, err := fb.WriteAt(body[off:end], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	multicast := h3m.FileWrites(fb)
	// The whole body through a 256 KiB buffer takes about five calls; one
	// per run between losses would be 80.
	if multicast > 8 {
		t.Errorf("%d write calls for %d bytes with %d gaps", multicast, size, len(lost))
	}
	got := make([]byte, 4000)
	if _, err := fb.ReadAt(got, int64(lost[0][0])-1000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:1000], body[lost[0][0]-1000:lost[0][0]]) || !bytes.Equal(got[1000:1000+pkt], make([]byte, pkt)) {
		t.Error("a read around a lost packet: want the bytes written and zeros for the gap")
	}
	for _, g := range lost {
		if _, err := fb.WriteAt(body[g[0]:g[1]], int64(g[0])); err != nil {
			t.Fatal(err)
		}
	}
	// Bytes already in the file (the first repairs, flushed by the next
	// ones) lie in the gap between two later writes: they stay.
	if _, err := fb.WriteAt(body[0:100], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := fb.WriteAt(body[lost[0][1]+10:lost[0][1]+20], int64(lost[0][1]+10)); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(t.TempDir(), "out")
	if err := fb.Commit(final); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(final); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("committed file differs (%v)", err)
	}
}
