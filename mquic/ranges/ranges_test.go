package ranges

import (
	"math/rand/v2"
	"testing"
)

// model is a naive byte bitmap the Set is checked against.
type model map[uint64]bool

func (m model) add(a, b uint64) (added uint64) {
	for i := a; i < b; i++ {
		if !m[i] {
			added++
		}
		m[i] = true
	}
	return added
}

func (m model) remove(a, b uint64) {
	for i := a; i < b; i++ {
		delete(m, i)
	}
}

func checkAgainst(t *testing.T, s *Set, m model, limit uint64) {
	t.Helper()
	var prev *Range
	for i := range s.r {
		r := s.r[i]
		if r.End <= r.Start {
			t.Fatalf("empty range %v in %v", r, s)
		}
		if prev != nil && prev.End >= r.Start {
			t.Fatalf("ranges not disjoint and non-adjacent: %v", s)
		}
		prev = &s.r[i]
	}
	for i := uint64(0); i < limit; i++ {
		if got := s.Contains(i, i+1); got != m[i] {
			t.Fatalf("byte %d: set says %v, model %v; set %v", i, got, m[i], s)
		}
	}
	if s.Len() != uint64(len(m)) {
		t.Fatalf("Len %d, model %d", s.Len(), len(m))
	}
}

func TestSetRandomAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const limit = 300
	for round := 0; round < 200; round++ {
		var s Set
		m := model{}
		for op := 0; op < 60; op++ {
			a := rng.Uint64N(limit)
			b := a + rng.Uint64N(40)
			if rng.IntN(4) == 0 {
				s.Remove(a, b)
				m.remove(a, b)
			} else if got, want := s.Add(a, b), m.add(a, b); got != want {
				t.Fatalf("Add(%d,%d) added %d, want %d", a, b, got, want)
			}
			checkAgainst(t, &s, m, limit+50)
			// Missing must be exactly the complement.
			lo := rng.Uint64N(limit)
			hi := lo + rng.Uint64N(100)
			var miss Set
			for _, r := range s.Missing(nil, lo, hi) {
				miss.Add(r.Start, r.End)
			}
			for i := lo; i < hi; i++ {
				if miss.Contains(i, i+1) == m[i] {
					t.Fatalf("Missing(%d,%d) wrong at %d: %v vs set %v", lo, hi, i, miss.String(), s.String())
				}
			}
			if ov := s.Overlaps(lo, hi); ov != (miss.Len() < hi-lo) {
				t.Fatalf("Overlaps(%d,%d)=%v but missing %d of %d", lo, hi, ov, miss.Len(), hi-lo)
			}
		}
	}
}

func TestSetExamples(t *testing.T) {
	var s Set
	s.Add(10, 20)
	s.Add(30, 40)
	s.Add(20, 30) // bridges both
	if s.String() != "[10,40)" {
		t.Fatalf("got %v", s.String())
	}
	s.Remove(15, 25)
	if s.String() != "[10,15) [25,40)" {
		t.Fatalf("got %v", s.String())
	}
	got := s.Missing(nil, 0, 50)
	want := []Range{{0, 10}, {15, 25}, {40, 50}}
	if len(got) != len(want) {
		t.Fatalf("Missing %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Missing %v, want %v", got, want)
		}
	}
}

func TestAppendInOrderAllocatesNothing(t *testing.T) {
	var s Set
	s.Add(0, 1)
	off := uint64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		s.Add(off, off+1200)
		off += 1200
	})
	if allocs != 0 {
		t.Fatalf("in-order Add allocates %v per call", allocs)
	}
}

func BenchmarkAddInOrder(b *testing.B) {
	b.ReportAllocs()
	var s Set
	for i := 0; i < b.N; i++ {
		off := uint64(i) * 1200
		s.Add(off, off+1200)
	}
}
