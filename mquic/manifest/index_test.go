package manifest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// pnIndex against a map, with the numbers a session and a forger produce:
// a band moving up past the ring's size (wrap-around), numbers that share
// a ring entry (pn + k*size), far ahead and far behind, 0 and the largest.
func TestPNIndexAgainstMap(t *testing.T) {
	x := newPNIndex(64)
	size := uint64(len(x.ring))
	if size != 64 {
		t.Fatalf("ring of %d", size)
	}
	model := map[uint64]int32{}
	check := func(pn uint64) {
		t.Helper()
		got, ok := x.get(pn)
		want, wok := model[pn]
		if ok != wok || ok && got != want || !ok && got != -1 {
			t.Fatalf("get(%d) = %d, %v; want %d, %v", pn, got, ok, want, wok)
		}
		if x.has(pn) != wok {
			t.Fatalf("has(%d) = %v", pn, !wok)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base := uint64(0)
	for step := range 200_000 {
		var pn uint64
		switch r := rng.IntN(10); {
		case r < 5: // the band
			pn = base + rng.Uint64N(48)
		case r < 8: // sharing ring entries with the band
			pn = base + rng.Uint64N(48) + size*(1+rng.Uint64N(4))
		case r < 9: // far ahead or behind
			pn = base + 1<<40 + rng.Uint64N(8)
			if rng.IntN(2) == 0 && base > 1000 {
				pn = base - 1000 - rng.Uint64N(8)*size
			}
		default:
			pn = []uint64{0, 1<<62 - 1, ^uint64(0)}[rng.IntN(3)]
		}
		switch rng.IntN(3) {
		case 0, 1:
			s := int32(rng.IntN(1 << 20))
			x.set(pn, s)
			model[pn] = s
		default:
			x.del(pn)
			delete(model, pn)
		}
		check(pn)
		check(pn ^ size) // its neighbour in the ring entry
		if step%1000 == 0 {
			base += 37 // the band moves up, wrapping the ring many times
			if x.len() != len(model) {
				t.Fatalf("step %d: %d numbers indexed, want %d", step, x.len(), len(model))
			}
			for pn := range model {
				check(pn)
			}
		}
	}
}

// A number in the overflow map whose ring entry frees up stays where it
// is: set updates it there, and it is never in both places.
func TestPNIndexOverflowThenFreeRing(t *testing.T) {
	x := newPNIndex(64)
	x.set(5, 1)
	x.set(5+64, 2) // the same ring entry: overflow
	if len(x.over) != 1 {
		t.Fatalf("overflow holds %d", len(x.over))
	}
	x.del(5)
	x.set(5+64, 3) // updated in the overflow, not copied into the free entry
	if s, ok := x.get(5 + 64); !ok || s != 3 || x.len() != 1 {
		t.Fatalf("get = %d, %v; %d indexed", s, ok, x.len())
	}
	x.set(5, 4) // takes the free ring entry
	x.del(5 + 64)
	if x.has(5+64) || x.len() != 1 {
		t.Fatal("deleted number still indexed")
	}
	if s, ok := x.get(5); !ok || s != 4 {
		t.Fatalf("get(5) = %d, %v", s, ok)
	}
}

// digestWithPrefix returns a digest whose first 8 bytes are p and the rest
// from r.
func digestWithPrefix(p uint64, r *rand.Rand) Digest {
	var d Digest
	binary.LittleEndian.PutUint64(d[:8], p)
	for i := 8; i < len(d); i += 8 {
		binary.LittleEndian.PutUint64(d[i:], r.Uint64())
	}
	return d
}

// digestIndex against a map, with the hash keys made public (0 and 1) so
// that the test can pile digests into runs that wrap around the table's
// end, give digests equal first 8 bytes (equal tags), and delete from the
// middle of runs; the table grows from its smallest size.
func TestDigestIndexAgainstMap(t *testing.T) {
	x := newDigestIndex(1)
	x.k0, x.k1 = 0, 1 // tag = first 8 bytes, home = their top bits
	q := newFIFO[heldPacket]()
	model := map[Digest]int32{}
	rng := rand.New(rand.NewPCG(3, 4))
	var pool []Digest // digests used so far, to add again and remove
	for range 1000 {
		var p uint64
		switch rng.IntN(3) {
		case 0:
			p = ^uint64(0) - rng.Uint64N(4)<<58 // homes at the table's end: runs wrap
		case 1:
			p = rng.Uint64N(4) << 58 // homes at its start
		default:
			p = 0x5555 // one tag for all: whole digests tell them apart
		}
		pool = append(pool, digestWithPrefix(p, rng))
	}
	maxLen := 0
	for step := range 100_000 {
		d := pool[rng.IntN(len(pool))]
		s := x.find(&d, &q)
		want, ok := model[d]
		if ok != (s >= 0) || ok && s != want {
			t.Fatalf("step %d: find = %d, want %d, %v", step, s, want, ok)
		}
		switch {
		case !ok && (len(model) < 300 || rng.IntN(2) == 0):
			slot := q.push(heldPacket{d: d})
			x.add(&d, slot)
			model[d] = slot
		case ok:
			x.remove(&d, s)
			q.remove(s)
			delete(model, d)
		}
		if x.n != len(model) || 2*x.n > len(x.e) {
			t.Fatalf("step %d: %d entries in a table of %d, want %d", step, x.n, len(x.e), len(model))
		}
		maxLen = max(maxLen, len(model))
		if step%997 == 0 {
			for d, s := range model {
				if got := x.find(&d, &q); got != s {
					t.Fatalf("step %d: find = %d, want %d", step, got, s)
				}
			}
		}
	}
	if maxLen < 200 || len(x.e) < 2*maxLen {
		t.Fatalf("peak %d entries, table of %d", maxLen, len(x.e))
	}
}

// The secret hash keys differ between authenticators, and a table indexed
// with them spreads digests that share their leading bits (which a forger
// can grind, each bit doubling its work) instead of piling them into one
// run.
func TestDigestIndexSecretKeys(t *testing.T) {
	a, b := newDigestIndex(64), newDigestIndex(64)
	if a.k0 == b.k0 && a.k1 == b.k1 {
		t.Fatal("two indexes with the same keys")
	}
	if a.k1&1 == 0 {
		t.Fatal("even multiplier: the hash is not a bijection")
	}
	q := newFIFO[heldPacket]()
	rng := rand.New(rand.NewPCG(5, 6))
	homes := map[uint64]bool{}
	for range 64 {
		d := digestWithPrefix(rng.Uint64()>>24, rng) // 24 bits ground to zero
		a.add(&d, q.push(heldPacket{d: d}))
		homes[a.tag(&d)>>a.shift] = true
	}
	if len(homes) < 32 { // about 50 expected, of 128
		t.Fatalf("64 digests with 24 leading zero bits in %d homes", len(homes))
	}
}

// Held packets and waiting digests whose packet numbers share ring entries
// (forged numbers a ring's size apart, a band that wraps the ring, numbers
// far ahead) are all found: forged packets under the real numbers'
// entries do not keep the real ones from being released, and digests
// under colliding numbers each authenticate their own packet.
func TestAuthenticatorRingCollisions(t *testing.T) {
	for _, prof := range []*Profile{testProfile(t), saltedProfile(t)} {
		t.Run(prof.Digest.String(), func(t *testing.T) {
			h := newAlgHarness(t, AuthConfig{MaxHeldPackets: 64, MaxDigests: 64, MaxAhead: 1 << 50}, prof)
			heldRing, digestRing := uint64(len(h.a.heldPN.ring)), uint64(len(h.a.digests.ring))
			now := time.Now()
			// Forged packets first, in the ring entries of 1000..1009.
			for k := uint64(1); k <= 3; k++ {
				for pn := uint64(1000); pn < 1010; pn++ {
					p := packet(pn+k*heldRing, "forged")
					d := Sum(p)
					h.a.Hold(&d, pn+k*heldRing, p, len(p), false, now)
				}
			}
			for pn := uint64(1000); pn < 1010; pn++ {
				if auth, held := h.arrive(pn, "real", now); auth || !held {
					t.Fatalf("packet %d: authenticated %v, held %v", pn, auth, held)
				}
			}
			if len(h.a.heldPN.over) == 0 {
				t.Fatal("no number went to the overflow")
			}
			if err := h.a.HandleManifest(h.manifest(0, 1000, 10, "real"), now); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(h.released) != "[1000 1001 1002 1003 1004 1005 1006 1007 1008 1009]" {
				t.Fatalf("released %v", h.released)
			}
			// Digests of numbers a digest ring apart, and far ahead.
			firsts := []uint64{2000, 2000 + digestRing, 2000 + 5*digestRing, 1 << 45}
			for i, first := range firsts {
				if err := h.a.HandleManifest(h.manifest(uint32(1+i), first, 4, "real"), now); err != nil {
					t.Fatal(err)
				}
			}
			if st := h.a.Stats(); st.WaitingDigests != 16 {
				t.Fatalf("%+v", st)
			}
			for _, first := range firsts {
				for pn := first; pn < first+4; pn++ {
					if auth, _ := h.arrive(pn, "forged", now); auth {
						t.Fatalf("forged packet %d authenticated", pn)
					}
					if auth, _ := h.arrive(pn, "real", now); !auth {
						t.Fatalf("packet %d not authenticated", pn)
					}
				}
			}
			st := h.a.Stats()
			if st.WaitingDigests != 0 || st.Authenticated != 26 || st.PNMismatch != 16 || st.Held != 30+16 {
				t.Fatalf("%+v", st)
			}
			h.a.Expire(now.Add(time.Hour))
			if st := h.a.Stats(); st.Held != 0 || st.Expired != 30+16 || h.a.heldPN.len() != 0 || h.a.held.n != 0 {
				t.Fatalf("after expiry: %+v, %d numbers and %d digests indexed", st, h.a.heldPN.len(), h.a.held.n)
			}
		})
	}
}

// A steady session whose packet numbers wrap the rings many times, with
// packets reordered around their manifests and some manifests lost: every
// packet a manifest lists is authenticated once, the others expire or are
// evicted, and the indexes end empty.
func TestAuthenticatorRingWrap(t *testing.T) {
	h := newAlgHarness(t, AuthConfig{MaxHeldPackets: 64, MaxDigests: 64}, saltedProfile(t))
	h.a.release = func(pn uint64, _ []byte, _ int, _ bool) { h.released = append(h.released, pn) }
	ring := uint64(len(h.a.heldPN.ring))
	now := time.Now()
	const per = 10
	auth, lost := 0, 0
	rng := rand.New(rand.NewPCG(7, 8))
	for k := range uint64(200) { // 2000 packets, the ring many times over
		first := k * per
		m := h.manifest(uint32(k), first, per, "real")
		early := rng.IntN(3) == 0 // the manifest overtakes its packets
		dropped := rng.IntN(10) == 0
		if early && !dropped {
			if err := h.a.HandleManifest(m, now); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range rng.Perm(per) {
			if a, _ := h.arrive(first+uint64(i), "real", now); a {
				auth++
			}
		}
		if !early && !dropped {
			if err := h.a.HandleManifest(m, now); err != nil {
				t.Fatal(err)
			}
		}
		if dropped {
			lost += per
		}
		now = now.Add(time.Millisecond)
	}
	st := h.a.Stats()
	if int(st.Authenticated) != 2000-lost || st.Authenticated != uint64(auth)+st.Released || st.PNMismatch != 0 {
		t.Fatalf("ring of %d, %d lost: %+v", ring, lost, st)
	}
	if st.Held > 64 || int(st.Evicted) != lost-st.Held || st.Expired != 0 {
		t.Fatalf("%d lost: %+v", lost, st)
	}
	h.a.Expire(now.Add(time.Hour))
	if h.a.heldPN.len() != 0 || h.a.held.n != 0 || h.a.digests.len() != 0 {
		t.Fatalf("indexes not empty: %d, %d, %d", h.a.heldPN.len(), h.a.held.n, h.a.digests.len())
	}
}
