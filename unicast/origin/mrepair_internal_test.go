package origin

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// TestMulticastRepairCounting: a range is scheduled for a multicast repair
// when Threshold distinct receivers ask for it within Window — not when one
// asks twice, not when the asks are a Window apart, and not again within
// Window of its repair; other ranges and representations count apart.
func TestMulticastRepairCounting(t *testing.T) {
	// Gather of an hour: nothing is pushed during the test; what is
	// scheduled stays in pending.
	m := NewMulticastRepair(MulticastRepairConfig{Threshold: 3, Window: time.Second, Gather: time.Hour}, http.NotFoundHandler())
	t0 := time.Unix(1000, 0)
	a := []byteRange{{0, 99}, {200, 299}}
	pending := func() []rangeKey {
		m.mu.Lock()
		defer m.mu.Unlock()
		return slices.Clone(m.pending)
	}
	m.note("/f", `"e1"`, a, "r1", t0)
	m.note("/f", `"e1"`, a, "r1", t0.Add(10*time.Millisecond)) // the same receiver again
	m.note("/f", `"e2"`, a, "r2", t0.Add(20*time.Millisecond)) // another representation
	m.note("/f", `"e1"`, a[:1], "r2", t0.Add(30*time.Millisecond))
	if p := pending(); len(p) != 0 {
		t.Fatalf("scheduled before the threshold: %v", p)
	}
	m.note("/f", `"e1"`, a, "r3", t0.Add(40*time.Millisecond))
	if p := pending(); len(p) != 1 || p[0] != (rangeKey{"/f", `"e1"`, 0, 99}) {
		t.Fatalf("pending %v, want the first range only (the second was asked by two)", p)
	}
	// More receivers within Window: not pushed again.
	m.note("/f", `"e1"`, a[:1], "r4", t0.Add(500*time.Millisecond))
	// The second range: its asks are over a Window apart, counted anew.
	m.note("/f", `"e1"`, a[1:], "r4", t0.Add(1500*time.Millisecond))
	m.note("/f", `"e1"`, a[1:], "r5", t0.Add(1600*time.Millisecond))
	if p := pending(); len(p) != 1 {
		t.Fatalf("pending %v", p)
	}
	// The first range, lost again by three receivers past Window: pushed
	// again.
	for i, who := range []string{"r6", "r7", "r8"} {
		m.note("/f", `"e1"`, a[:1], who, t0.Add(2*time.Second+time.Duration(i)*time.Millisecond))
	}
	if p := pending(); len(p) != 2 || p[1] != p[0] {
		t.Fatalf("pending %v, want the first range twice", p)
	}
	if st := m.Stats(); st.RangeRequests != 11 {
		t.Errorf("%d range requests counted, want 11", st.RangeRequests)
	}
}

// TestMulticastRepairServes: every request is served by the next handler,
// counted or not, and a flush with no publisher pushes nothing.
func TestMulticastRepairServes(t *testing.T) {
	served := 0
	m := NewMulticastRepair(MulticastRepairConfig{Threshold: 1, Gather: time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
	}))
	for _, v := range []string{"bytes=0-9", "bytes=-5", "", "bytes=9-0"} {
		r := httptest.NewRequest("GET", "/f", nil)
		if v != "" {
			r.Header.Set("Range", v)
		}
		m.ServeHTTP(httptest.NewRecorder(), r)
	}
	m.flush()
	if served != 4 {
		t.Errorf("served %d of 4", served)
	}
	if st := m.Stats(); st.RangeRequests != 1 || st.Pushes != 0 {
		t.Errorf("stats %+v: want one counted request and no push", st)
	}
}

// FuzzParseExplicitRanges: any Range value gives explicit, ordered-pair
// ranges, at most maxCountedRanges of them, or none.
func FuzzParseExplicitRanges(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=0-99,200-299", "bytes=-10", "bytes=5-", "bytes=9-0", "BYTES= 1-2 ,", "items=0-1", "bytes=99999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		rs := parseExplicitRanges(v, maxCountedRanges)
		if len(rs) > maxCountedRanges {
			t.Fatalf("%q: %d ranges", v, len(rs))
		}
		for _, r := range rs {
			if r.first < 0 || r.last < r.first {
				t.Fatalf("%q: range %+v", v, r)
			}
		}
	})
}
