// Package ranges keeps sets of byte ranges: which parts of a stream or of a
// resource have arrived, which were lost, which still need repair.
package ranges

import (
	"fmt"
	"strings"
)

// Range is the half-open interval [Start, End).
type Range struct {
	Start, End uint64
}

// Len is the number of bytes in the range.
func (r Range) Len() uint64 { return r.End - r.Start }

func (r Range) String() string { return fmt.Sprintf("[%d,%d)", r.Start, r.End) }

// Set is a set of bytes kept as sorted, disjoint, non-adjacent ranges.
// The zero value is an empty set. Adding at or after the end, the common case
// for data arriving in order, allocates nothing once the set has capacity.
type Set struct {
	r []Range
}

// Add inserts [start, end) and returns how many of its bytes were not yet in
// the set.
func (s *Set) Add(start, end uint64) (added uint64) {
	if end <= start {
		return 0
	}
	n := len(s.r)
	// Fast path: extends or follows the last range.
	if n == 0 || start > s.r[n-1].End {
		s.r = append(s.r, Range{start, end})
		return end - start
	}
	if start >= s.r[n-1].Start {
		last := &s.r[n-1]
		if end <= last.End {
			return 0
		}
		if start <= last.End {
			added = end - last.End
			last.End = end
			return added
		}
	}
	// General case: find the first range that ends at or after start
	// (touching counts, so adjacent ranges merge).
	i := s.search(start)
	j := i
	newStart, newEnd := start, end
	covered := uint64(0)
	for j < n && s.r[j].Start <= end {
		lo, hi := max(s.r[j].Start, start), min(s.r[j].End, end)
		if hi > lo {
			covered += hi - lo
		}
		newStart = min(newStart, s.r[j].Start)
		newEnd = max(newEnd, s.r[j].End)
		j++
	}
	added = (end - start) - covered
	switch {
	case j == i: // no overlap: insert
		s.r = append(s.r, Range{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = Range{newStart, newEnd}
	default: // merge s.r[i:j] into one
		s.r[i] = Range{newStart, newEnd}
		s.r = append(s.r[:i+1], s.r[j:]...)
	}
	return added
}

// Remove deletes [start, end) from the set.
func (s *Set) Remove(start, end uint64) {
	if end <= start {
		return
	}
	i := s.search(start)
	for i < len(s.r) && s.r[i].Start < end {
		cur := s.r[i]
		switch {
		case cur.End <= start:
			i++
		case start <= cur.Start && end >= cur.End: // whole range goes
			s.r = append(s.r[:i], s.r[i+1:]...)
		case start > cur.Start && end < cur.End: // split
			s.r = append(s.r, Range{})
			copy(s.r[i+2:], s.r[i+1:])
			s.r[i] = Range{cur.Start, start}
			s.r[i+1] = Range{end, cur.End}
			return
		case start > cur.Start: // trim the tail
			s.r[i].End = start
			i++
		default: // trim the head
			s.r[i].Start = end
			return
		}
	}
}

// search returns the index of the first range whose End >= off.
func (s *Set) search(off uint64) int {
	lo, hi := 0, len(s.r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.r[m].End < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Contains reports whether every byte of [start, end) is in the set.
func (s *Set) Contains(start, end uint64) bool {
	if end <= start {
		return true
	}
	i := s.search(start)
	for i < len(s.r) && s.r[i].End == start { // touches but does not cover start
		i++
	}
	return i < len(s.r) && s.r[i].Start <= start && s.r[i].End >= end
}

// Overlaps reports whether any byte of [start, end) is in the set.
func (s *Set) Overlaps(start, end uint64) bool {
	if end <= start {
		return false
	}
	i := s.search(start)
	for ; i < len(s.r) && s.r[i].Start < end; i++ {
		if s.r[i].End > start {
			return true
		}
	}
	return false
}

// Len is the number of bytes in the set.
func (s *Set) Len() uint64 {
	var n uint64
	for _, r := range s.r {
		n += r.Len()
	}
	return n
}

// Count is the number of disjoint ranges.
func (s *Set) Count() int { return len(s.r) }

// Empty reports whether the set has no bytes.
func (s *Set) Empty() bool { return len(s.r) == 0 }

// Ranges returns the ranges in order. The slice is the set's own storage:
// read it, do not keep it across changes.
func (s *Set) Ranges() []Range { return s.r }

// Clone returns an independent copy.
func (s *Set) Clone() Set { return Set{r: append([]Range(nil), s.r...)} }

// Reset empties the set, keeping its storage.
func (s *Set) Reset() { s.r = s.r[:0] }

// Missing appends to dst the parts of [start, end) that are not in the set.
func (s *Set) Missing(dst []Range, start, end uint64) []Range {
	cur := start
	for i := s.search(start); i < len(s.r) && s.r[i].Start < end && cur < end; i++ {
		if s.r[i].Start > cur {
			dst = append(dst, Range{cur, s.r[i].Start})
		}
		cur = max(cur, s.r[i].End)
	}
	if cur < end {
		dst = append(dst, Range{cur, end})
	}
	return dst
}

// String renders the set as "[a,b) [c,d)".
func (s *Set) String() string {
	var b strings.Builder
	for i, r := range s.r {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.String())
	}
	return b.String()
}
