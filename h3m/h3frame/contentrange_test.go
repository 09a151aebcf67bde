package h3frame

import (
	"errors"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ContentRange
	}{
		// RFC 9110 §14.4 examples.
		{"bytes 42-1233/1234", ContentRange{42, 1233, 1234}},
		{"bytes 42-1233/*", ContentRange{42, 1233, -1}},
		{"bytes 0-0/1", ContentRange{0, 0, 1}},
		{" BYTES 5-9/10\t", ContentRange{5, 9, 10}},
		{"bytes 0-999999999999999998/999999999999999999", ContentRange{0, 999999999999999998, 999999999999999999}},
	} {
		got, err := ParseContentRange(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParseContentRange(got.String()); err != nil || back != got {
			t.Errorf("%q: %q does not parse back: %+v %v", tc.in, got.String(), back, err)
		}
	}
	for _, bad := range []string{
		"", "bytes", "bytes 1-2", "bytes */10", "bits 0-1/2", "bytes 0-1/2/3",
		"bytes +1-5/10", "bytes 1- 5/10", "bytes -1-5/10", "bytes 5-4/10", "bytes 5-10/10",
		"bytes 0-1/x", "bytes 0x1-2/3", "bytes 0-1234567890123456789/*", "bytes 1-2/", "bytes=1-2/3",
	} {
		if cr, err := ParseContentRange(bad); !errors.Is(err, ErrContentRange) {
			t.Errorf("%q: %+v %v, want ErrContentRange", bad, cr, err)
		}
	}
	if n := (ContentRange{First: 10, Last: 19, Complete: -1}).Len(); n != 10 {
		t.Errorf("Len %d", n)
	}
}

// FuzzParseContentRange checks that whatever parses is a valid span that
// formats back to itself.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 42-1233/1234", "bytes 42-1233/*", "bytes */1234", "bytes 1-0/5", "Bytes 0-0/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseContentRange(s)
		if err != nil {
			if !errors.Is(err, ErrContentRange) {
				t.Fatalf("%q: error %v does not wrap ErrContentRange", s, err)
			}
			return
		}
		if cr.First < 0 || cr.Last < cr.First || cr.Complete < -1 || (cr.Complete >= 0 && cr.Last >= cr.Complete) || cr.Len() <= 0 {
			t.Fatalf("%q: invalid %+v", s, cr)
		}
		if back, err := ParseContentRange(cr.String()); err != nil || back != cr {
			t.Fatalf("%q: %q parses to %+v %v", s, cr.String(), back, err)
		}
	})
}
