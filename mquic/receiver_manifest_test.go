package mquic_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/ranges"
)

// TestHandleManifestFromOutside drops every packet that carries a MANIFEST
// frame, so that nothing in-band authenticates the session, and hands the
// receiver the manifests the sender signed (SignerConfig.OnManifest) as a
// unicast client would. Every packet that arrived is then authenticated and
// its data delivered; the only gaps are the bytes of the dropped packets.
// The manifest status shows the packets waiting and, afterwards, that every
// manifest came from outside.
func TestHandleManifestFromOutside(t *testing.T) {
	params, sc := asymParams(t, mcasttest.Group())
	var mu sync.Mutex
	var signed [][]byte
	sc.OnManifest = func(m []byte) {
		mu.Lock()
		signed = append(signed, bytes.Clone(m))
		mu.Unlock()
	}
	pat := newPattern()
	pkts := capturedAsymSession(t, params, sc, pat, 400_000)
	prot, _ := params.Protector()
	col := newCollector(pat)
	r := newTestReceiver(t, params, col)
	var lost ranges.Set
	var kept []uint64
	for _, p := range pkts {
		sp := decodePacket(t, prot, len(params.SessionID), p)
		if len(sp.manifests) > 0 {
			for _, s := range sp.streams {
				for _, rg := range s.Ranges() {
					lost.Add(rg.Start, rg.End)
				}
			}
			continue
		}
		kept = append(kept, sp.pn)
		r.HandlePacket(append([]byte(nil), p...), src)
	}
	if len(signed) < 5 {
		t.Fatalf("only %d manifests signed", len(signed))
	}
	st, ok := r.ManifestStatus(time.Now().Add(time.Second), 0)
	if !ok || st.Held != len(kept) || st.HaveTop || st.InBand != 0 {
		t.Fatalf("before: %d packets kept, status %+v", len(kept), st)
	}
	var waiting ranges.Set
	for _, rg := range st.Waiting {
		waiting.Add(rg.Start, rg.End)
	}
	for _, pn := range kept {
		if !waiting.Contains(pn, pn+1) {
			t.Fatalf("held packet %d not listed as waiting: %v", pn, st.Waiting)
		}
	}
	if st, _ := r.ManifestStatus(time.Now().Add(-time.Hour), 0); len(st.Waiting) != 0 {
		t.Fatalf("packets held for an hour: %v", st.Waiting)
	}
	if got := r.Stats().Packets; got != 0 {
		t.Fatalf("%d packets accepted without a manifest", got)
	}

	for i, m := range signed {
		if err := r.HandleManifest(m); err != nil {
			t.Fatalf("manifest %d: %v", i, err)
		}
	}
	if err := r.HandleManifest(signed[1]); !errors.Is(err, manifest.ErrRepeat) {
		t.Fatalf("a copy: %v, want ErrRepeat", err)
	}
	if err := r.HandleManifest(append(bytes.Clone(signed[2]), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	bad := bytes.Clone(signed[len(signed)-1])
	bad[len(bad)-1] ^= 1
	if err := r.HandleManifest(bad); !errors.Is(err, manifest.ErrConflict) {
		t.Fatalf("altered signature: %v", err)
	}
	r.Flush()
	rs := r.Stats()
	if rs.Packets != uint64(len(kept)) || rs.Auth.Held != 0 || rs.Auth.Released != uint64(len(kept)) {
		t.Fatalf("%d packets kept, %d accepted, %d released, %d held", len(kept), rs.Packets, rs.Auth.Released, rs.Auth.Held)
	}
	accounted(t, rs)
	l := col.streams[3]
	if l == nil || !l.finished || l.gaps.String() != lost.String() {
		t.Fatalf("gaps %v, want the dropped packets' bytes %v", l.gaps.String(), lost.String())
	}
	for _, err := range col.errs {
		t.Error(err)
	}
	st, _ = r.ManifestStatus(time.Now(), 0)
	if st.Unicast != uint64(len(signed)) || st.InBand != 0 || st.UnicastRepeats != 1 || st.Rejected != 2 ||
		!st.HaveTop || st.Top != uint32(len(signed)-1) || st.RecentInBand != 0 || st.Recent != min(len(signed)-4, mquic.RecentSpan) {
		t.Fatalf("after: %+v", st)
	}

	// The same session received whole: every manifest arrives in-band.
	r2 := newTestReceiver(t, params, newCollector(pat))
	for _, p := range pkts {
		r2.HandlePacket(append([]byte(nil), p...), src)
	}
	for _, m := range signed {
		if err := r2.HandleManifest(m); !errors.Is(err, manifest.ErrRepeat) {
			t.Fatalf("unicast copy of an in-band manifest: %v", err)
		}
	}
	st, _ = r2.ManifestStatus(time.Now(), 0)
	if st.InBand != uint64(len(signed)) || st.Unicast != 0 || st.Recent == 0 || st.RecentInBand != st.Recent {
		t.Fatalf("in-band: %+v", st)
	}

	// A symmetric session has no manifests.
	r3 := newTestReceiver(t, testParams(t, mcasttest.Group()), newCollector(pat))
	if err := r3.HandleManifest(signed[0]); !errors.Is(err, mquic.ErrSymmetric) {
		t.Fatalf("symmetric: %v", err)
	}
	if _, ok := r3.ManifestStatus(time.Now(), 0); ok {
		t.Fatal("symmetric session has a manifest status")
	}
}

// TestAuthReorderDelay drops every in-band copy of one manifest. With
// AuthReorderDelay, the stream hole before the data of the packets it
// lists waits for them, and when the manifest comes from outside 100 ms
// later the data arrives whole, without a gap; without it, the hole is
// reported as a gap at once and the late data is left for repair.
func TestAuthReorderDelay(t *testing.T) {
	params, sc := asymParams(t, mcasttest.Group())
	var signed [][]byte
	sc.OnManifest = func(m []byte) { signed = append(signed, bytes.Clone(m)) }
	pat := newPattern()
	pkts := capturedAsymSession(t, params, sc, pat, 300_000)
	prot, _ := params.Protector()
	const lost = 3
	for _, delay := range []time.Duration{time.Second, 0} {
		col := newCollector(pat)
		r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: col, AuthReorderDelay: delay})
		if err != nil {
			t.Fatal(err)
		}
		clk := newTestClock()
		r.SetClock(clk.Now)
		for _, p := range pkts {
			sp := decodePacket(t, prot, len(params.SessionID), p)
			if len(sp.manifests) > 0 && sp.manifests[0].Seq == lost {
				continue
			}
			r.HandlePacket(append([]byte(nil), p...), src)
		}
		clk.Advance(100 * time.Millisecond) // past ReorderDelay, short of AuthReorderDelay
		r.Tick()
		st, _ := r.ManifestStatus(clk.Now(), 0)
		if st.Held == 0 {
			t.Fatal("nothing held although a manifest was lost")
		}
		if err := r.HandleManifest(signed[lost]); err != nil {
			t.Fatal(err)
		}
		r.Flush()
		l := col.streams[3]
		switch {
		case delay > 0 && (!l.gaps.Empty() || !l.got.Contains(0, 300_000)):
			t.Fatalf("AuthReorderDelay %v: gaps %v", delay, l.gaps.String())
		case delay == 0 && l.gaps.Empty():
			t.Fatal("no gap without AuthReorderDelay: the test does not test anything")
		}
		if st, _ := r.ManifestStatus(clk.Now(), 0); st.Held != 0 || st.Unicast != 1 {
			t.Fatalf("AuthReorderDelay %v: %+v", delay, st)
		}
		for _, err := range col.errs {
			t.Error(err)
		}
	}
}

// TestHeldPacketsOutliveTheReadBuffer feeds an asymmetric session to
// HandlePacket through one buffer, overwritten by each packet as a socket's
// read buffer is: a packet held for its manifest keeps its own bytes (the
// authenticator copies what it still holds after each read, Keep), and every
// packet is delivered whole and right. Every packet arrives before its
// manifest, so each is held, across many reads.
func TestHeldPacketsOutliveTheReadBuffer(t *testing.T) {
	params, sc := asymParams(t, mcasttest.Group())
	pat := newPattern()
	pkts := capturedAsymSession(t, params, sc, pat, 300_000)
	col := newCollector(pat)
	r := newTestReceiver(t, params, col)
	buf := make([]byte, 2048)
	for _, p := range pkts {
		r.HandlePacket(buf[:copy(buf, p)], src)
		for i := range buf {
			buf[i] = 0xa5 // the buffer reused for something else
		}
	}
	r.Flush()
	st := r.Stats()
	if st.Auth.Released < uint64(len(pkts))/2 {
		t.Fatalf("%d packets: %+v", len(pkts), st.Auth)
	}
	for _, err := range col.errs {
		t.Fatal(err)
	}
	l := col.streams[3]
	if l == nil || !l.finished || len(l.gaps.Ranges()) != 0 || !l.got.Contains(0, 300_000) {
		t.Fatalf("stream: %+v", l)
	}
	accounted(t, st)
}
