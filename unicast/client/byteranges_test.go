package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic/ranges"
)

func rg(start, end uint64) ranges.Range { return ranges.Range{Start: start, End: end} }

func TestMergeRanges(t *testing.T) {
	rs := []ranges.Range{rg(0, 10), rg(10, 10), rg(15, 20), rg(300, 400), rg(401, 500), rg(1000, 1001)}
	for _, c := range []struct {
		gap  uint64
		want []ranges.Range
	}{
		{0, []ranges.Range{rg(0, 10), rg(15, 20), rg(300, 400), rg(401, 500), rg(1000, 1001)}},
		{1, []ranges.Range{rg(0, 10), rg(15, 20), rg(300, 500), rg(1000, 1001)}},
		{5, []ranges.Range{rg(0, 20), rg(300, 500), rg(1000, 1001)}},
		{499, []ranges.Range{rg(0, 500), rg(1000, 1001)}},
		{500, []ranges.Range{rg(0, 1001)}},
		{2048, []ranges.Range{rg(0, 1001)}},
	} {
		if got := mergeRanges(rs, c.gap); !reflect.DeepEqual(got, c.want) {
			t.Errorf("gap %d: %v, want %v", c.gap, got, c.want)
		}
	}
	if got := mergeRanges(nil, 10); got != nil {
		t.Errorf("nil: %v", got)
	}
}

func TestRangeHeader(t *testing.T) {
	if got := rangeHeader([]ranges.Range{rg(0, 100), rg(200, 201)}); got != "bytes=0-99,200-200" {
		t.Errorf("got %q", got)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want h3frame.ContentRange
	}{
		// RFC 9110 §14.4 examples.
		{"bytes 42-1233/1234", h3frame.ContentRange{First: 42, Last: 1233, Complete: 1234}},
		{"bytes 42-1233/*", h3frame.ContentRange{First: 42, Last: 1233, Complete: -1}},
		{"bytes 0-0/1", h3frame.ContentRange{First: 0, Last: 0, Complete: 1}},
	} {
		got, err := parseContentRange(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v", c.in, got, err)
		}
	}
	for _, bad := range []string{
		"", "bytes", "bytes */1234", "bytes 42-1233", "bytes 5-4/10", "bytes 0-10/10",
		"bytes -1-5/10", "bytes +1-5/10", "items 0-1/2", "bytes 0-1/2x", "bytes 0-99999999999999999999/1",
	} {
		if _, err := parseContentRange(bad); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestPartialParts reads 206 responses that net/http's ServeContent writes
// (single part and multipart/byteranges).
func TestPartialParts(t *testing.T) {
	content := make([]byte, 5000)
	for i := range content {
		content[i] = byte(i * 7)
	}
	for _, rng := range []string{"bytes=10-19", "bytes=0-0,100-199,4990-4999"} {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Range", rng)
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "x.bin", time.Time{}, bytes.NewReader(content))
		resp := rec.Result()
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("%s: status %d", rng, resp.StatusCode)
		}
		var got []string
		err := partialParts(resp, func(p rangePart) error {
			buf := make([]byte, p.cr.Last-p.cr.First+1)
			if err := readPart(p, buf); err != nil {
				return err
			}
			if !bytes.Equal(buf, content[p.cr.First:p.cr.Last+1]) {
				return fmt.Errorf("part %d-%d: wrong bytes", p.cr.First, p.cr.Last)
			}
			if p.cr.Complete != int64(len(content)) {
				return fmt.Errorf("complete %d", p.cr.Complete)
			}
			got = append(got, fmt.Sprintf("%d-%d", p.cr.First, p.cr.Last))
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", rng, err)
		}
		if want := strings.TrimPrefix(rng, "bytes="); strings.Join(got, ",") != want {
			t.Errorf("parts %v, want %s", got, want)
		}
	}
}

func TestPartialPartsMalformed(t *testing.T) {
	mk := func(ct, cr, body string) *http.Response {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if cr != "" {
			h.Set("Content-Range", cr)
		}
		return &http.Response{StatusCode: 206, Header: h, Body: io.NopCloser(strings.NewReader(body))}
	}
	read := func(p rangePart) error { return readPart(p, make([]byte, p.cr.Last-p.cr.First+1)) }
	for name, resp := range map[string]*http.Response{
		"no content-range":   mk("application/octet-stream", "", "abc"),
		"short body":         mk("", "bytes 0-9/100", "abc"),
		"long body":          mk("", "bytes 0-1/100", "abc"),
		"no boundary":        mk("multipart/byteranges", "", ""),
		"no parts":           mk("multipart/byteranges; boundary=XX", "", "--XX--\r\n"),
		"part without range": mk("multipart/byteranges; boundary=XX", "", "--XX\r\nContent-Type: a/b\r\n\r\nabc\r\n--XX--\r\n"),
		"truncated":          mk("multipart/byteranges; boundary=XX", "", "--XX\r\nContent-Range: bytes 0-2/9\r\n\r\nab"),
	} {
		if err := partialParts(resp, read); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// readPart reads a whole part into dst (len == Last-First+1).
func readPart(p rangePart, dst []byte) error {
	return copyPart(p, make([]byte, 7), func(off int64, b []byte) error {
		copy(dst[off-p.cr.First:], b)
		return nil
	})
}
