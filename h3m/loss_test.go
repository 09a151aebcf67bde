package h3m_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
)

// oracle knows, from every packet the sender wrote, what each push was
// and which of its body bytes a set of dropped packets carried.
type oracle struct {
	streams map[uint64][]byte      // complete stream contents
	dropped map[uint64]*ranges.Set // stream ranges in dropped packets
}

func newOracle(t testing.TB, params mquic.Params, all, dropped [][]byte) *oracle {
	t.Helper()
	o := &oracle{streams: map[uint64][]byte{}, dropped: map[uint64]*ranges.Set{}}
	decode := func(pkts [][]byte, f func(sf wire.StreamFrame)) {
		for _, p := range pkts {
			streamFrames(t, params, p, f)
		}
	}
	decode(all, func(sf wire.StreamFrame) {
		b := o.streams[sf.StreamID]
		if need := int(sf.Offset) + len(sf.Data); need > len(b) {
			b = append(b, make([]byte, need-len(b))...)
		}
		copy(b[sf.Offset:], sf.Data)
		o.streams[sf.StreamID] = b
	})
	decode(dropped, func(sf wire.StreamFrame) {
		s := o.dropped[sf.StreamID]
		if s == nil {
			s = &ranges.Set{}
			o.dropped[sf.StreamID] = s
		}
		s.Add(sf.Offset, sf.Offset+uint64(len(sf.Data))+boolInt(sf.Fin))
	})
	// A range that went again in a packet that arrived (the sender repeats
	// promises and push stream heads) is not lost.
	isDropped := map[string]bool{}
	for _, p := range dropped {
		isDropped[string(p)] = true
	}
	var kept [][]byte
	for _, p := range all {
		if !isDropped[string(p)] {
			kept = append(kept, p)
		}
	}
	decode(kept, func(sf wire.StreamFrame) {
		if s := o.dropped[sf.StreamID]; s != nil {
			s.Remove(sf.Offset, sf.Offset+uint64(len(sf.Data))+boolInt(sf.Fin))
		}
	})
	return o
}

func boolInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (o *oracle) droppedIn(stream uint64) []ranges.Range {
	if s := o.dropped[stream]; s != nil {
		return s.Ranges()
	}
	return nil
}

func (o *oracle) lost(stream, from, to uint64) bool {
	s := o.dropped[stream]
	return s != nil && s.Overlaps(from, to)
}

// expectation is what the receiver should conclude about one push.
type expectation struct {
	path    string
	state   h3m.State
	reason  error
	missing ranges.Set
	unknown bool // neither the promise nor the push ID arrived
}

// expect walks stream 0 and every push stream sequentially.
func (o *oracle) expect(t testing.TB) map[uint64]*expectation {
	t.Helper()
	out := map[uint64]*expectation{}
	s0 := o.streams[0]
	for off := 0; off < len(s0); {
		typ, length, n, err := h3frame.ParseFrameHeader(s0[off:])
		if err != nil || typ != h3frame.TypePushPromise {
			t.Fatalf("stream 0 at %d: %v %v", off, typ, err)
		}
		end := off + n + int(length)
		pushID, block, err := h3frame.ParsePushPromisePayload(s0[off+n : end])
		if err != nil {
			t.Fatal(err)
		}
		fields, _ := h3frame.ParseFieldSection(block, 1<<20)
		req, _ := h3frame.ParseRequest(fields)
		e := &expectation{path: req.Path, state: h3m.StateComplete}
		if o.lost(0, uint64(off), uint64(end)) {
			e.path, e.state, e.reason = "", h3m.StateFailed, h3m.ErrPromiseLost
		}
		out[pushID] = e
		off = end
	}
	for id, b := range o.streams {
		if id == 0 {
			continue
		}
		pushID, n, err := h3frame.ParsePushStreamHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		e := out[pushID]
		if e.reason != nil {
			// Promise lost: the receiver knows the push only if its push
			// stream header arrived.
			e.unknown = o.lost(id, 0, uint64(n))
			continue
		}
		if o.lost(id, 0, uint64(n)) {
			e.state, e.reason = h3m.StateFailed, h3m.ErrPushLost
			continue
		}
		off := n
		var body uint64
		first := true
		for off < len(b) {
			typ, length, hn, err := h3frame.ParseFrameHeader(b[off:])
			if err != nil {
				t.Fatal(err)
			}
			end := off + hn + int(length)
			switch {
			case first:
				if typ != h3frame.TypeHeaders {
					t.Fatalf("push %d starts with %v", pushID, typ)
				}
				if o.lost(id, uint64(off), uint64(end)) {
					e.state, e.reason = h3m.StateFailed, h3m.ErrHeadersLost
				}
				first = false
			case typ == h3frame.TypeData:
				for _, r := range o.droppedIn(id) {
					lo, hi := max(r.Start, uint64(off+hn)), min(r.End, uint64(end))
					if hi > lo {
						e.missing.Add(body+lo-uint64(off+hn), body+hi-uint64(off+hn))
					}
				}
				body += length
			case typ == h3frame.TypeDataWithOffset:
				boff, data, _ := h3frame.ParseDataWithOffsetPayload(b[off+hn : end])
				dstart := uint64(end - len(data))
				for _, r := range o.droppedIn(id) {
					lo, hi := max(r.Start, dstart), min(r.End, uint64(end))
					if hi > lo {
						e.missing.Add(boff+lo-dstart, boff+hi-dstart)
					}
				}
			}
			off = end
		}
		if e.reason == nil && !e.missing.Empty() {
			e.state = h3m.StateIncomplete
		}
	}
	return out
}

// TestLossReportsMissingBodyRanges drops 5% of the packets and checks,
// push by push, that the receiver reports exactly the body ranges the
// dropped packets carried, and fails (for unicast recovery) the pushes
// whose promise or headers were lost.
func TestLossReportsMissingBodyRanges(t *testing.T) {
	for _, dataOffset := range []bool{false, true} {
		t.Run(fmt.Sprintf("data-offset=%v", dataOffset), func(t *testing.T) {
			s := newSession(t, sessionOpts{
				dataOffset: dataOffset, loss: 0.05, record: true, rate: 300_000_000,
				receiver: h3m.ReceiverConfig{PushTimeout: time.Hour}, // settled by stop

			})
			var pushes []*h3m.Push
			for i := range 60 {
				body := make([]byte, 1000+i*37000)
				rand.Read(body)
				pushes = append(pushes, bytesPush(fmt.Sprintf("/r/%02d", i), body))
			}
			s.pushAll(pushes)
			s.lossy.SetRate(0) // the end of the session must get through
			s.stop()
			s.mu.Lock()
			all := s.wrote
			s.mu.Unlock()
			o := newOracle(t, s.params, all, s.lossy.Dropped())
			exp := o.expect(t)
			byID := map[uint64]*h3m.Resource{}
			for _, r := range s.rcv.Resources() {
				byID[r.PushID] = r
			}
			counts := map[h3m.State]int{}
			for pushID, e := range exp {
				if e.path == h3m.EndPath {
					continue
				}
				res := byID[pushID]
				if res == nil && e.unknown {
					continue
				}
				if res == nil {
					t.Errorf("push %d (%s): unknown to the receiver; expected %v %v", pushID, e.path, e.state, e.reason)
					continue
				}
				st, err := res.State()
				counts[st]++
				if st != e.state || (e.reason != nil && !errors.Is(err, e.reason)) {
					t.Errorf("push %d (%s): %v %v, expected %v %v", pushID, e.path, st, err, e.state, e.reason)
					continue
				}
				if st == h3m.StateIncomplete {
					var got ranges.Set
					for _, r := range res.Missing() {
						got.Add(r.Start, r.End)
					}
					if got.String() != e.missing.String() {
						t.Errorf("push %d (%s): missing %v, dropped %v", pushID, e.path, got.String(), e.missing.String())
					}
				}
			}
			t.Logf("%s; outcomes %v; receiver %+v", s.lossy, counts, s.rcv.Stats())
			if counts[h3m.StateIncomplete] == 0 {
				t.Error("no push lost body bytes: the test proves nothing")
			}
		})
	}
}
