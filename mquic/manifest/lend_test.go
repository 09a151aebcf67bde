package manifest

import (
	"bytes"
	"testing"
	"time"
)

// A lent payload is used in place until Keep: a manifest before Keep
// releases the caller's bytes themselves; after Keep, a copy, which the
// caller's reuse of its buffer does not touch.
func TestHoldLentThenKeep(t *testing.T) {
	for _, prof := range []*Profile{testProfile(t), saltedProfile(t)} {
		t.Run(prof.Digest.String(), func(t *testing.T) {
			h := newAlgHarness(t, AuthConfig{}, prof)
			var got [][]byte
			h.a.release = func(pn uint64, p []byte, _ int, _ bool) { got = append(got, p) }
			now := time.Now()
			read := make([][]byte, 4) // a read's buffers
			for pn := range uint64(4) {
				read[pn] = packet(pn, "real")
				d := Sum(read[pn])
				if !h.a.HoldLent(&d, pn, read[pn], len(read[pn]), false, now) {
					t.Fatalf("packet %d not held", pn)
				}
			}
			if dup := Sum(read[1]); h.a.HoldLent(&dup, 1, read[1], len(read[1]), false, now) {
				t.Fatal("a duplicate was held twice")
			}
			// Packets 0 and 1 released in the same read: no copy.
			if err := h.a.HandleManifest(h.manifest(0, 0, 2, "real"), now); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || &got[0][0] != &read[0][0] || &got[1][0] != &read[1][0] {
				t.Fatal("packets released in the read of their loan were copied")
			}
			before := h.a.Stats()
			h.a.Keep()
			if st := h.a.Stats(); st.Held != 2 || st.HeldBytes != before.HeldBytes || st.HeldBytes != 2*heldBufSize {
				t.Fatalf("after Keep: %+v (before %+v)", st, before)
			}
			for _, b := range read {
				for i := range b {
					b[i] = 'X' // the buffers are reused
				}
			}
			got = nil
			if err := h.a.HandleManifest(h.manifest(1, 2, 2, "real"), now); err != nil {
				t.Fatal(err)
			}
			for i, p := range got {
				if want := packet(uint64(2+i), "real"); !bytes.Equal(p, want) {
					t.Fatalf("released %q, want %q", p, want)
				}
			}
			if len(got) != 2 {
				t.Fatalf("released %d packets", len(got))
			}
		})
	}
}

// A lent payload whose packet was dropped before Keep is not copied, and
// its buffer never joins the free buffers (a later copy would write into
// the caller's memory), even when it is exactly a pooled buffer's size. A
// slot freed and taken again by a packet held with a copy is left alone.
func TestHoldLentDroppedBeforeKeep(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{MaxHeldPackets: 2})
	now := time.Now()
	lent := bytes.Repeat([]byte{'L'}, heldBufSize)
	lent = lent[:heldBufSize:heldBufSize]
	d := Sum(lent)
	h.a.HoldLent(&d, 1, lent, len(lent), false, now)
	h.a.Expire(now.Add(time.Hour)) // dropped while lent
	if st := h.a.Stats(); st.Expired != 1 || st.Held != 0 || st.HeldBytes != 0 {
		t.Fatalf("%+v", st)
	}
	for pn := uint64(2); pn < 6; pn++ { // copies into free buffers, evicting each other
		h.arrive(pn, "real", now)
	}
	if !bytes.Equal(lent, bytes.Repeat([]byte{'L'}, heldBufSize)) {
		t.Fatal("a lent buffer was reused as a free buffer")
	}
	h.a.Keep() // the lent slot was freed and taken again: nothing to copy
	if st := h.a.Stats(); st.Held != 2 || st.HeldBytes != 2*heldBufSize || st.Evicted != 2 {
		t.Fatalf("%+v", st)
	}
	if err := h.a.HandleManifest(h.manifest(0, 4, 2, "real"), now); err != nil {
		t.Fatal(err)
	}
	if len(h.released) != 2 || h.payloads[4] != string(packet(4, "real")) || h.payloads[5] != string(packet(5, "real")) {
		t.Fatalf("released %v: %v", h.released, h.payloads)
	}
}

// Lent payloads count towards MaxHeldBytes as their copies will: the cap
// holds with loans as with copies.
func TestHoldLentByteCap(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{MaxHeldBytes: 4 * heldBufSize})
	now := time.Now()
	for pn := range uint64(10) {
		p := packet(pn, "forged")
		d := Sum(p)
		h.a.HoldLent(&d, pn, p, len(p), false, now)
		if pn%3 == 0 {
			h.a.Keep()
		}
		if st := h.a.Stats(); st.HeldBytes > 4*heldBufSize || st.HeldBytes != st.Held*heldBufSize {
			t.Fatalf("%+v", st)
		}
	}
	big := make([]byte, 3*heldBufSize)
	d := Sum(big)
	h.a.HoldLent(&d, 20, big, len(big), false, now)
	h.a.Keep()
	if st := h.a.Stats(); st.Held != 2 || st.HeldBytes != 4*heldBufSize || st.Evicted != 9 {
		t.Fatalf("%+v", st)
	}
}
