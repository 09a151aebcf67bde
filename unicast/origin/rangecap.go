package origin

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// DefaultMaxRanges caps the ranges of one request that a FileServer serves
// as ranges: twice what the h3m client asks in one request
// (client.DefaultMaxRanges). A request with more is answered with the whole
// representation (200), as RFC 9110 §14.2 allows: 60,000 one-byte ranges
// of a 200 kB file would otherwise cost a multipart part each.
const DefaultMaxRanges = 128

// byteRange is a satisfiable range of a representation: [first, last].
type byteRange struct{ first, last int64 }

// planRanges decides how a Range field value v is served for a
// representation of size bytes: "" and ok to serve the whole
// representation (too many ranges), or the value to hand to
// http.ServeContent: v itself when it cannot be read (ServeContent then
// answers as HTTP says, 416 included) or names no satisfiable range, and
// otherwise the satisfiable ranges sorted and with overlapping or touching
// ones coalesced into one (RFC 9110 §14.2 allows both). count is the number
// of ranges v names.
func planRanges(v string, size int64, maxRanges int) (plan string, count int, whole bool) {
	plan, count, whole, _ = planRangeList(v, size, maxRanges)
	return plan, count, whole
}

// planRangeList is planRanges, with the ranges of plan when it is made of
// satisfiable ones (nil when plan is v as given).
func planRangeList(v string, size int64, maxRanges int) (plan string, count int, whole bool, list []byteRange) {
	spec, ok := cutPrefixFold(strings.TrimSpace(v), "bytes=")
	if !ok {
		return v, 0, false, nil
	}
	count = strings.Count(spec, ",") + 1
	if count > maxRanges {
		return "", count, true, nil
	}
	rs := make([]byteRange, 0, count)
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue // empty list elements are allowed (RFC 9110 §5.6.1)
		}
		a, b, ok := strings.Cut(part, "-")
		if !ok {
			return v, count, false, nil
		}
		var r byteRange
		switch {
		case a == "": // suffix: the last b bytes
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil || n < 0 {
				return v, count, false, nil
			}
			if n == 0 || size == 0 {
				continue
			}
			r = byteRange{max(size-n, 0), size - 1}
		default:
			first, err := strconv.ParseInt(a, 10, 64)
			if err != nil || first < 0 {
				return v, count, false, nil
			}
			last := size - 1
			if b != "" {
				if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
					return v, count, false, nil
				}
			}
			if first >= size {
				continue // unsatisfiable
			}
			r = byteRange{first, min(last, size-1)}
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return v, count, false, nil
	}
	slices.SortFunc(rs, func(x, y byteRange) int { return cmp.Compare(x.first, y.first) })
	merged := rs[:1]
	for _, r := range rs[1:] {
		if cur := &merged[len(merged)-1]; r.first <= cur.last+1 {
			cur.last = max(cur.last, r.last)
			continue
		}
		merged = append(merged, r)
	}
	var sb strings.Builder
	sb.WriteString("bytes=")
	for i, r := range merged {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatInt(r.first, 10))
		sb.WriteByte('-')
		sb.WriteString(strconv.FormatInt(r.last, 10))
	}
	return sb.String(), count, false, merged
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
