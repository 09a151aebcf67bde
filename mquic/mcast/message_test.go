package mcast

import (
	"bytes"
	"testing"
)

func TestDatagrams(t *testing.T) {
	buf := make([]byte, 100)
	for i := range buf {
		buf[i] = byte(i)
	}
	for _, tc := range []struct {
		n, seg int
		want   []int // datagram lengths
	}{
		{100, 0, []int{100}},
		{100, 25, []int{25, 25, 25, 25}},
		{100, 30, []int{30, 30, 30, 10}},
		{100, 100, []int{100}},
		{100, 150, []int{100}},
		{0, 0, []int{0}},
		{1, 0, []int{1}},
	} {
		m := Message{Buf: buf, N: tc.n, SegSize: tc.seg}
		var got []int
		off := 0
		m.Datagrams(func(p []byte) {
			got = append(got, len(p))
			if !bytes.Equal(p, buf[off:off+len(p)]) {
				t.Errorf("n=%d seg=%d: datagram at %d has wrong bytes", tc.n, tc.seg, off)
			}
			if cap(p) != len(p) {
				t.Errorf("n=%d seg=%d: datagram cap %d > len %d lets appends overwrite the next one", tc.n, tc.seg, cap(p), len(p))
			}
			off += len(p)
		})
		if len(got) != len(tc.want) || m.Count() != len(tc.want) {
			t.Errorf("n=%d seg=%d: %v (Count %d), want %v", tc.n, tc.seg, got, m.Count(), tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("n=%d seg=%d: %v, want %v", tc.n, tc.seg, got, tc.want)
				break
			}
		}
	}
	m := Message{Buf: buf, N: 100, SegSize: 7}
	total := 0
	if a := testing.AllocsPerRun(100, func() { m.Datagrams(func(p []byte) { total += len(p) }) }); a != 0 {
		t.Errorf("Datagrams: %v allocs", a)
	}
}
