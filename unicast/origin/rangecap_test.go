package origin

import (
	"strconv"
	"strings"
	"testing"
)

func TestPlanRanges(t *testing.T) {
	for _, c := range []struct {
		in, plan string
		whole    bool
	}{
		{"bytes=0-99", "bytes=0-99", false},
		{"bytes=150-199, 0-99,50-149", "bytes=0-199", false},
		{"bytes=0-9,10-19", "bytes=0-19", false},
		{"bytes=0-9,11-19", "bytes=0-9,11-19", false},
		{"bytes=-10,0-", "bytes=0-999", false},
		{"bytes=990-2000", "bytes=990-999", false},
		{"BYTES=5-5", "bytes=5-5", false},
		{"bytes=2000-", "bytes=2000-", false}, // unsatisfiable: ServeContent says 416
		{"bytes=5-1", "bytes=5-1", false},     // malformed: as HTTP says
		{"items=0-1", "items=0-1", false},     // not bytes: as HTTP says
		{"bytes=0-0,2-2,4-4,6-6", "", true},   // over the cap of 3
		{"bytes=0-0,,2-2", "bytes=0-0,2-2", false},
	} {
		plan, _, whole := planRanges(c.in, 1000, 3)
		if plan != c.plan || whole != c.whole {
			t.Errorf("%q: %q whole %v, want %q %v", c.in, plan, whole, c.plan, c.whole)
		}
	}
}

// FuzzPlanRanges: Range comes from the network. A plan that rewrites it is
// a list of sorted ranges inside the representation, none touching the
// next, and no more than were asked.
func FuzzPlanRanges(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=150-199, 0-99,50-149", "bytes=-10,0-", "bytes=1-0", "bytes=,", "bytes=-0", "bytes=0-9,10-19,20-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -size
		}
		plan, n, whole := planRanges(v, size, DefaultMaxRanges)
		if whole {
			if n <= DefaultMaxRanges {
				t.Fatalf("%q: whole with %d ranges", v, n)
			}
			return
		}
		if plan == v {
			return
		}
		spec, ok := strings.CutPrefix(plan, "bytes=")
		if !ok {
			t.Fatalf("%q: plan %q", v, plan)
		}
		parts := strings.Split(spec, ",")
		if len(parts) > n {
			t.Fatalf("%q: %d ranges planned of %d", v, len(parts), n)
		}
		prev := int64(-2)
		for _, p := range parts {
			a, b, _ := strings.Cut(p, "-")
			first, err1 := strconv.ParseInt(a, 10, 64)
			last, err2 := strconv.ParseInt(b, 10, 64)
			if err1 != nil || err2 != nil || first < 0 || last < first || last >= size || first <= prev+1 {
				t.Fatalf("%q (size %d): plan %q", v, size, plan)
			}
			prev = last
		}
	})
}
