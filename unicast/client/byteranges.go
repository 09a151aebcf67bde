package client

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic/ranges"
)

// Errors of range repair. Each one makes the client fetch the resource
// whole instead.
var (
	// ErrRangeMismatch: a 206 response does not carry the ranges asked
	// for (a part outside them, missing bytes, another representation
	// size).
	ErrRangeMismatch = errors.New("client: response ranges do not match the request")
	// ErrMalformedResponse: a response cannot be parsed (Content-Range,
	// multipart body, length).
	ErrMalformedResponse = errors.New("client: malformed response")
)

// mergeRanges returns rs (sorted, disjoint) with neighbours separated by at
// most gap bytes merged: fetching the few bytes between two holes again
// costs less than a range (a multipart part) of its own.
func mergeRanges(rs []ranges.Range, gap uint64) []ranges.Range {
	var out []ranges.Range
	for _, r := range rs {
		if r.Len() == 0 {
			continue
		}
		if n := len(out); n > 0 && r.Start <= out[n-1].End+gap {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// rangeHeader renders rs as a Range field value: "bytes=0-99,200-299".
func rangeHeader(rs []ranges.Range) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(r.Start, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(r.End-1, 10))
	}
	return b.String()
}

// parseContentRange parses the Content-Range field value of a 206 part
// (h3frame.ParseContentRange); errors wrap ErrMalformedResponse.
func parseContentRange(v string) (h3frame.ContentRange, error) {
	cr, err := h3frame.ParseContentRange(v)
	if err != nil {
		return h3frame.ContentRange{}, fmt.Errorf("%w: %w", ErrMalformedResponse, err)
	}
	return cr, nil
}

// rangePart is one part of a 206 response.
type rangePart struct {
	cr   h3frame.ContentRange
	body io.Reader
}

// partialParts iterates over the parts of a 206 response: the response
// itself for a single range, or each part of a multipart/byteranges body.
// fn consumes each part's body.
func partialParts(resp *http.Response, fn func(rangePart) error) error {
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "multipart/byteranges" {
		boundary := params["boundary"]
		if boundary == "" {
			return fmt.Errorf("%w: multipart/byteranges without a boundary", ErrMalformedResponse)
		}
		mr := multipart.NewReader(resp.Body, boundary)
		n := 0
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%w: multipart part %d: %v", ErrMalformedResponse, n, err)
			}
			cr, err := parseContentRange(part.Header.Get("Content-Range"))
			if err != nil {
				return fmt.Errorf("part %d: %w", n, err)
			}
			if err := fn(rangePart{cr: cr, body: part}); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("%w: multipart/byteranges with no part", ErrMalformedResponse)
		}
		return nil
	}
	cr, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return err
	}
	return fn(rangePart{cr: cr, body: resp.Body})
}

// partBuffer is the size of the buffer a part is read through: a part of
// any size (a range request may ask for hundreds of megabytes) costs no
// more memory than this.
const partBuffer = 32 << 10

// copyPart reads exactly the bytes a part's Content-Range announces,
// through buf, handing each piece read to fn with its representation
// offset, and checks that no more follow.
func copyPart(p rangePart, buf []byte, fn func(off int64, b []byte) error) error {
	off, end := p.cr.First, p.cr.Last+1
	for off < end {
		n, err := io.ReadFull(p.body, buf[:min(int64(len(buf)), end-off)])
		if n > 0 {
			if ferr := fn(off, buf[:n]); ferr != nil {
				return ferr
			}
			off += int64(n)
		}
		if err != nil {
			return fmt.Errorf("%w: part bytes %d-%d: body shorter than its range: %v", ErrMalformedResponse, p.cr.First, p.cr.Last, err)
		}
	}
	var one [1]byte
	if n, _ := io.ReadFull(p.body, one[:]); n > 0 {
		return fmt.Errorf("%w: part bytes %d-%d: body longer than its range", ErrMalformedResponse, p.cr.First, p.cr.Last)
	}
	return nil
}
