package fec

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseFrame: the parser never panics, a frame it accepts re-encodes
// (in the shortest varints) to a frame that parses the same, and the decoder takes any accepted frame (with any
// payloads around it) without panicking.
func FuzzParseFrame(f *testing.F) {
	f.Add(AppendFrame(nil, &Repair{BlockID: 654360564, SourceCount: 3, RepairCount: 2, Index: 1, Symbol: []byte{0, 1, 2, 3}}))
	f.Add(AppendFrame(nil, &Repair{BlockID: 0, SourceCount: 255, RepairCount: 1, Symbol: make([]byte, 1202)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Repair
		n, err := ParseFrame(b, &r)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			return
		}
		if n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		var again Repair
		if m, err := ParseFrame(AppendFrame(nil, &r), &again); err != nil || m > n ||
			again.BlockID != r.BlockID || again.SourceCount != r.SourceCount || again.RepairCount != r.RepairCount ||
			again.Index != r.Index || !bytes.Equal(again.Symbol, r.Symbol) {
			t.Fatalf("re-encoded frame of %x parses as %+v (%v)", b[:n], again, err)
		}
		p := Params{Scheme: SchemeReedSolomon8, MaxSourceCount: 255, MaxRepairCount: 1, BlockTime: time.Second}
		d, err := NewDecoder(DecoderConfig{Params: p})
		if err != nil {
			t.Fatal(err)
		}
		for i := range r.SourceCount {
			if i%3 != 0 {
				d.Source(r.BlockID+uint64(i), b[:min(len(b), i)])
			}
		}
		d.Repair(&r, r.BlockID+uint64(r.SourceCount+r.Index), time.Unix(0, 0))
		for {
			if _, _, ok := d.Next(); !ok {
				break
			}
		}
		d.Expire(time.Unix(10, 0))
	})
}

// FuzzParseParams: the parser never panics, and accepted parameters
// re-encode to the bytes read.
func FuzzParseParams(f *testing.F) {
	p, _ := NewParams(0.05, 0, 0)
	f.Add(p.Value())
	f.Add([]byte{2, 255, 1, 255, 255})
	f.Add([]byte{1, 200, 10, 0, 50}) // scheme 1: no longer known
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseParams(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Value(), b) {
			t.Fatalf("re-encoded %x, read %x", p.Value(), b)
		}
	})
}
