package h3frame

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ContentRange is a Content-Range field that carries a byte range (RFC 9110
// §14.4): bytes First to Last, inclusive, of a representation of Complete
// bytes.
type ContentRange struct {
	First, Last int64
	// Complete is the representation's size, -1 when the field says "*"
	// (not known yet, e.g. a file still growing).
	Complete int64
}

// ErrContentRange is wrapped by every error of ParseContentRange.
var ErrContentRange = errors.New("h3frame: malformed content-range")

// maxPositionDigits keeps a byte position within int64.
const maxPositionDigits = 18

// ParseContentRange parses a Content-Range field value of the form
// "bytes first-last/complete", complete being a number or "*". The range
// unit is case-insensitive; positions are digits only (no sign, no space)
// and at most 18 of them. Last must not be below first nor, when complete is
// known, reach it. The unsatisfied-range form "bytes */complete" carries no
// part and is refused.
func ParseContentRange(v string) (ContentRange, error) {
	s := strings.Trim(v, " \t")
	unit, rest, ok := strings.Cut(s, " ")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return ContentRange{}, fmt.Errorf("%w: %q is not a byte range", ErrContentRange, shorten(v))
	}
	span, total, ok := strings.Cut(rest, "/")
	a, b, ok2 := strings.Cut(span, "-")
	if !ok || !ok2 {
		return ContentRange{}, fmt.Errorf("%w: %q: want bytes first-last/complete", ErrContentRange, shorten(v))
	}
	cr := ContentRange{Complete: -1}
	var okA, okB, okC bool
	cr.First, okA = parsePosition(a)
	cr.Last, okB = parsePosition(b)
	okC = total == "*"
	if !okC {
		cr.Complete, okC = parsePosition(total)
	}
	if !okA || !okB || !okC {
		return ContentRange{}, fmt.Errorf("%w: %q: positions must be 1 to %d digits", ErrContentRange, shorten(v), maxPositionDigits)
	}
	if cr.Last < cr.First || (cr.Complete >= 0 && cr.Last >= cr.Complete) {
		return ContentRange{}, fmt.Errorf("%w: %q: invalid span", ErrContentRange, shorten(v))
	}
	return cr, nil
}

// Len returns the number of bytes the range covers.
func (c ContentRange) Len() int64 { return c.Last - c.First + 1 }

// String returns the field value of c.
func (c ContentRange) String() string {
	b := make([]byte, 0, 64)
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, c.First, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, c.Last, 10)
	b = append(b, '/')
	if c.Complete < 0 {
		b = append(b, '*')
	} else {
		b = strconv.AppendInt(b, c.Complete, 10)
	}
	return string(b)
}

// parsePosition parses 1*DIGIT that fits an int64.
func parsePosition(s string) (int64, bool) {
	if s == "" || len(s) > maxPositionDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// shorten keeps error messages about hostile field values short.
func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
