package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"
)

// authHarness drives an Authenticator as a receiver would.
type authHarness struct {
	t        testing.TB
	a        *Authenticator
	key      *SigningKey
	released []uint64
	payloads map[uint64]string
	alg      DigestAlg
}

func newAuthHarness(t testing.TB, cfg AuthConfig) *authHarness {
	return newAlgHarness(t, cfg, testProfile(t))
}

func newAlgHarness(t testing.TB, cfg AuthConfig, prof *Profile) *authHarness {
	t.Helper()
	h := &authHarness{t: t, key: testKey(t), payloads: map[uint64]string{}, alg: prof.Digest}
	a, err := NewAuthenticator(prof, cfg, func(pn uint64, p []byte, wireLen int, manifestOnly bool) {
		h.released = append(h.released, pn)
		h.payloads[pn] = string(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	return h
}

// packet is a fake protected packet: its bytes depend on pn and salt.
func packet(pn uint64, salt string) []byte { return []byte(fmt.Sprintf("pkt %d %s", pn, salt)) }

// manifest signs a manifest for packets [first, first+n) of salt.
func (h *authHarness) manifest(seq uint32, first uint64, n int, salt string) *Manifest {
	h.t.Helper()
	m := Manifest{DigestAlg: h.alg, StreamID: 42, Seq: seq, FirstPN: first}
	if h.alg == DigestSalted128 {
		m.Salt = make([]byte, SaltLen)
		rand.Read(m.Salt)
	}
	for i := range n {
		m.Digests = h.alg.list(m.Digests, m.Salt, new(Sum(packet(first+uint64(i), salt))))
	}
	b, err := m.Append(nil, h.key, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	p, _, err := Parse(b, m.DigestAlg)
	if err != nil {
		h.t.Fatal(err)
	}
	return &p
}

// arrive handles a packet as a receiver does: authenticated at once, or held.
func (h *authHarness) arrive(pn uint64, salt string, now time.Time) (authenticated, held bool) {
	p := packet(pn, salt)
	d := Sum(p)
	if h.a.Authenticate(&d, pn, now) {
		return true, false
	}
	return false, h.a.Hold(&d, pn, p, len(p), false, now)
}

func TestAuthenticatorHoldThenRelease(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{})
	now := time.Now()
	for pn := uint64(100); pn < 110; pn++ {
		if auth, held := h.arrive(pn, "real", now); auth || !held {
			t.Fatalf("packet %d: authenticated %v held %v before any manifest", pn, auth, held)
		}
	}
	// A forged packet with the same number as a real one is held too, and
	// a copy of a held packet is a duplicate.
	if _, held := h.arrive(105, "forged", now); !held {
		t.Fatal("forged packet not held")
	}
	if _, held := h.arrive(105, "real", now); held {
		t.Fatal("a duplicate was held twice")
	}
	// Manifest for 100..114: the ten held real packets are released, in
	// order; 110..114 wait for their packets.
	if err := h.a.HandleManifest(h.manifest(0, 100, 15, "real"), now); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h.released) != "[100 101 102 103 104 105 106 107 108 109]" {
		t.Fatalf("released %v", h.released)
	}
	if h.payloads[105] != string(packet(105, "real")) {
		t.Fatalf("released the wrong copy of 105: %q", h.payloads[105])
	}
	st := h.a.Stats()
	if st.Held != 1 || st.WaitingDigests != 5 || st.Authenticated != 10 || st.Released != 10 {
		t.Fatalf("stats %+v", st)
	}
	// Packets after their manifest are authenticated at once, once.
	if auth, _ := h.arrive(112, "real", now); !auth {
		t.Fatal("packet 112 not authenticated")
	}
	if auth, held := h.arrive(112, "real", now); auth || !held {
		t.Fatal("a digest authenticated twice")
	}
	if auth, _ := h.arrive(113, "forged", now); auth {
		t.Fatal("forged packet authenticated")
	}
	// The forged packets expire after DataHoldTime; the digests of 110,
	// 111, 113 and 114 after DigestHoldTime.
	h.a.Expire(now.Add(DefaultDataHoldTime - time.Millisecond))
	if st := h.a.Stats(); st.Held != 3 || st.Expired != 0 {
		t.Fatalf("expired early: %+v", st)
	}
	if d, ok := h.a.Deadline(); !ok || d.Sub(now) < DefaultDataHoldTime-time.Millisecond || d.Sub(now) > DefaultDataHoldTime+10*time.Millisecond {
		t.Fatalf("deadline %v after now", d.Sub(now))
	}
	h.a.Expire(now.Add(DefaultDataHoldTime + time.Millisecond))
	if st := h.a.Stats(); st.Held != 0 || st.Expired != 3 || st.HeldBytes != 0 {
		t.Fatalf("after data hold time: %+v", st)
	}
	h.a.Expire(now.Add(DefaultDigestHoldTime + time.Millisecond))
	if st := h.a.Stats(); st.WaitingDigests != 0 || st.DigestsExpired != 4 {
		t.Fatalf("after digest hold time: %+v", st)
	}
	if _, ok := h.a.Deadline(); ok {
		t.Fatal("deadline with nothing waiting")
	}
}

func TestAuthenticatorRejectsManifests(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{Window: 1000, MaxAhead: 10000})
	now := time.Now()
	good := h.manifest(0, 5000, 4, "real")
	if err := h.a.HandleManifest(good, now); err != nil {
		t.Fatal(err)
	}
	h.arrive(5000, "real", now) // largest authenticated: 5000

	bad := h.manifest(1, 5004, 4, "real")
	bad.Signature[3] ^= 1

	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := NewSigningKey(otherPriv, nil)
	other := Manifest{StreamID: 42, Seq: 1, FirstPN: 5004, Digests: make([]byte, DigestLen)}
	ob, _ := other.Append(nil, otherKey, nil)
	otherM, _, _ := Parse(ob, DigestSHA256)

	// Same key ID and algorithm as the session's, signed by another key.
	claim := Manifest{StreamID: 42, Seq: 1, FirstPN: 5004, Digests: make([]byte, DigestLen)}
	cb, _ := claim.Append(nil, otherKey, nil)
	id := h.key.Public().ID()
	copy(cb[HeaderLen+DigestLen+2:], id[:])
	claimM, _, _ := Parse(cb, DigestSHA256)

	wrongStream := h.manifest(1, 5004, 4, "real")
	wrongStream.StreamID = 43

	conflict := h.manifest(0, 5000, 4, "forged") // seq 0 is verified already

	for _, tc := range []struct {
		name    string
		m       *Manifest
		err     error
		counter func(AuthStats) uint64
	}{
		{"bad signature", bad, ErrBadSignature, func(s AuthStats) uint64 { return s.BadSignature }},
		{"claimed key ID", &claimM, ErrBadSignature, func(s AuthStats) uint64 { return s.BadSignature }},
		{"other key", &otherM, ErrWrongKey, func(s AuthStats) uint64 { return s.WrongKey }},
		{"other stream", wrongStream, ErrWrongStream, func(s AuthStats) uint64 { return s.WrongStream }},
		{"repeat", good, ErrRepeat, func(s AuthStats) uint64 { return s.Repeats }},
		{"conflicting", conflict, ErrConflict, func(s AuthStats) uint64 { return s.Conflicting }},
		{"all stale", h.manifest(2, 3000, 10, "real"), ErrImplausible, func(s AuthStats) uint64 { return s.Implausible }},
		{"far ahead", h.manifest(3, 5000+10002, 10, "real"), ErrImplausible, func(s AuthStats) uint64 { return s.Implausible }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter(h.a.Stats())
			verified := h.a.Stats().Verified
			if err := h.a.HandleManifest(tc.m, now); !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if tc.counter(h.a.Stats()) != before+1 {
				t.Fatal("not counted")
			}
			cheap := !errors.Is(tc.err, ErrBadSignature)
			if cheap && h.a.Stats().Verified != verified {
				t.Fatal("a signature was verified for a manifest the cheap checks reject")
			}
		})
	}
	if st := h.a.Stats(); st.Manifests != 1 || st.WaitingDigests != 3 {
		t.Fatalf("a rejected manifest registered digests: %+v", st)
	}
	// Manifests listing packets never sent are verified (the sender signed
	// them) but their digests authenticate nothing and expire.
	never := h.manifest(4, 6000, 5, "never sent")
	if err := h.a.HandleManifest(never, now); err != nil {
		t.Fatal(err)
	}
	h.a.Expire(now.Add(DefaultDigestHoldTime))
	if st := h.a.Stats(); st.WaitingDigests != 0 || st.DigestsExpired != 8 {
		t.Fatalf("%+v", st)
	}
	// Far ahead is accepted once nothing was authenticated for
	// DigestHoldTime: the receiver may have missed that much.
	later := now.Add(DefaultDigestHoldTime + time.Second)
	if err := h.a.HandleManifest(h.manifest(5, 5000+20000, 2, "real"), later); err != nil {
		t.Fatal(err)
	}
}

// A flood of manifests with fresh sequence numbers and bad signatures:
// verification is capped by MaxVerifyRate, the rest is dropped unverified,
// memory does not grow, and a real manifest still gets through once the
// flood stops.
func TestAuthenticatorManifestFlood(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{MaxVerifyRate: 1000})
	now := time.Now()
	// A forger holds the session key, not the signing key: it signs with
	// its own key under the session's key ID.
	_, forgerPriv, _ := ed25519.GenerateKey(rand.Reader)
	forgerKey, _ := NewSigningKey(forgerPriv, nil)
	const n = 4000
	for i := range n {
		m := Manifest{StreamID: 42, Seq: uint32(i + 1000), FirstPN: uint64(i), Digests: testDigests(33, byte(i))}
		b, _ := m.Append(nil, forgerKey, nil)
		id := h.key.Public().ID()
		copy(b[HeaderLen+33*DigestLen+2:], id[:])
		forged, _, err := Parse(b, DigestSHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.a.HandleManifest(&forged, now); err == nil {
			t.Fatal("forged manifest accepted")
		}
	}
	st := h.a.Stats()
	burst := uint64(1000 / 4)
	if st.Verified != burst || st.BadSignature != burst || st.RateLimited != n-burst {
		t.Fatalf("flood of %d: verified %d, bad %d, rate-limited %d; want the burst of %d verified", n, st.Verified, st.BadSignature, st.RateLimited, burst)
	}
	if st.WaitingDigests != 0 || st.Held != 0 {
		t.Fatalf("the flood left state behind: %+v", st)
	}
	// A second later the budget is back.
	now = now.Add(time.Second)
	for pn := uint64(0); pn < 4; pn++ {
		h.arrive(pn, "real", now)
	}
	if err := h.a.HandleManifest(h.manifest(1, 0, 4, "real"), now); err != nil {
		t.Fatal(err)
	}
	if len(h.released) != 4 {
		t.Fatalf("released %v", h.released)
	}
}

func TestAuthenticatorMemoryBounds(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{MaxHeldPackets: 100, MaxHeldBytes: 64 * heldBufSize, MaxDigests: 50})
	now := time.Now()
	// 1000 forged packets: at most 64 held (the byte cap), the oldest
	// dropped first and counted.
	for pn := uint64(0); pn < 1000; pn++ {
		h.arrive(pn, "forged", now)
		if st := h.a.Stats(); st.Held > 64 || st.HeldBytes > 64*heldBufSize {
			t.Fatalf("held %d packets, %d bytes", st.Held, st.HeldBytes)
		}
	}
	st := h.a.Stats()
	if st.Held != 64 || st.Evicted != 1000-64 {
		t.Fatalf("%+v", st)
	}
	// Manifest-only packets keep no payload: the packet cap applies.
	for pn := uint64(1000); pn < 1200; pn++ {
		d := Sum(packet(pn, "m"))
		h.a.Hold(&d, pn, nil, 100, true, now)
	}
	if st := h.a.Stats(); st.Held != 100 || st.HeldBytes != 0 || st.UnconfirmedManifests != 100 {
		t.Fatalf("%+v", st)
	}
	// Digests beyond MaxDigests push out the oldest.
	for i := range 10 {
		if err := h.a.HandleManifest(h.manifest(uint32(i), 2000+uint64(i)*20, 20, "lost"), now); err != nil {
			t.Fatal(err)
		}
	}
	if st := h.a.Stats(); st.WaitingDigests != 50 || st.DigestsEvicted != 150 {
		t.Fatalf("%+v", st)
	}
}

func TestAuthenticatorPNMismatch(t *testing.T) {
	for _, prof := range []*Profile{testProfile(t), saltedProfile(t)} {
		t.Run(prof.Digest.String(), func(t *testing.T) {
			h := newAlgHarness(t, AuthConfig{}, prof)
			now := time.Now()
			if err := h.a.HandleManifest(h.manifest(0, 10, 1, "real"), now); err != nil {
				t.Fatal(err)
			}
			d := Sum(packet(10, "real"))
			if h.a.Authenticate(&d, 11, now) {
				t.Fatal("digest accepted for another packet number")
			}
			forged := Sum(packet(10, "forged"))
			if h.a.Authenticate(&forged, 10, now) {
				t.Fatal("another packet accepted under the listed packet number")
			}
			if !h.a.Authenticate(&d, 10, now) {
				t.Fatal("digest lost after a mismatch")
			}
			if h.a.Stats().PNMismatch != 1 {
				t.Fatal("mismatch not counted")
			}
		})
	}
}

// In a DigestSalted128 session: each manifest has its own salt; packets
// held before their manifest are released by it, packets after it are
// authenticated on arrival, and forged packets under the same packet
// numbers (held before and after the real ones) are never released and do
// not keep the real ones from being released.
func TestAuthenticatorSalted(t *testing.T) {
	h := newAlgHarness(t, AuthConfig{}, saltedProfile(t))
	now := time.Now()
	forge := func(pn uint64, n int) {
		t.Helper()
		for i := range n {
			p := packet(pn, fmt.Sprint("forged", i))
			d := Sum(p)
			if h.a.Authenticate(&d, pn, now) || !h.a.Hold(&d, pn, p, len(p), false, now) {
				t.Fatalf("forged packet %d accepted, or not held", pn)
			}
		}
	}
	forge(0, 2)
	for pn := range uint64(10) {
		if auth, held := h.arrive(pn, "real", now); auth || !held {
			t.Fatalf("packet %d before its manifest: authenticated %v, held %v", pn, auth, held)
		}
	}
	forge(5, 3)
	m0, m1 := h.manifest(0, 0, 10, "real"), h.manifest(1, 10, 10, "real")
	if len(m0.Digests) != 10*16 || bytes.Equal(m0.Salt, m1.Salt) {
		t.Fatalf("manifests of %d bytes of digests, salts %x and %x", len(m0.Digests), m0.Salt, m1.Salt)
	}
	if err := h.a.HandleManifest(m0, now); err != nil {
		t.Fatal(err)
	}
	if len(h.released) != 10 {
		t.Fatalf("released %v, want packets 0 to 9", h.released)
	}
	for pn, p := range h.payloads {
		if p != string(packet(pn, "real")) {
			t.Fatalf("released %q as packet %d", p, pn)
		}
	}
	if err := h.a.HandleManifest(m1, now); err != nil {
		t.Fatal(err)
	}
	forge(12, 1)
	for pn := uint64(10); pn < 20; pn++ {
		if auth, _ := h.arrive(pn, "real", now); !auth {
			t.Fatalf("packet %d after its manifest not authenticated", pn)
		}
	}
	st := h.a.Stats()
	if st.Held != 6 || st.Authenticated != 20 || st.PNMismatch != 1 {
		t.Fatalf("%+v", st)
	}
	h.a.Expire(now.Add(time.Hour))
	if st := h.a.Stats(); st.Held != 0 || st.Expired != 6 {
		t.Fatalf("after expiry: %+v", st)
	}
}

// A manifest parsed for another digest algorithm than the profile's is
// refused before its signature is checked.
func TestAuthenticatorOtherDigestAlgorithm(t *testing.T) {
	salted := newAlgHarness(t, AuthConfig{}, saltedProfile(t))
	plain := newAuthHarness(t, AuthConfig{})
	now := time.Now()
	for _, tc := range []struct {
		h *authHarness
		m *Manifest
	}{
		{salted, plain.manifest(0, 0, 4, "real")},
		{plain, salted.manifest(0, 0, 4, "real")},
	} {
		if err := tc.h.a.HandleManifest(tc.m, now); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("%v manifest in a %v session: %v", tc.m.DigestAlg, tc.h.alg, err)
		}
		// Its bytes do not parse as the session's (or name another key).
		b := append(append([]byte(nil), tc.m.SignedBytes()...), tc.m.Signature...)
		if p, _, err := Parse(b, tc.h.alg); err == nil {
			if err := tc.h.a.HandleManifest(&p, now); err == nil {
				t.Fatalf("%v manifest accepted as %v", tc.m.DigestAlg, tc.h.alg)
			}
		}
	}
	if st := salted.a.Stats(); st.Verified != 0 {
		t.Fatalf("verified %d signatures", st.Verified)
	}
}

// The per-packet path of a steady session (hold, then release by manifest)
// allocates nothing, with payloads copied or lent (a Keep after each
// manifest).
func TestAuthenticatorAllocations(t *testing.T) {
	for _, prof := range []*Profile{testProfile(t), saltedProfile(t)} {
		for _, lent := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/lent=%v", prof.Digest, lent), func(t *testing.T) { testAuthenticatorAllocations(t, prof, lent) })
		}
	}
}

func testAuthenticatorAllocations(t *testing.T, prof *Profile, lent bool) {
	h := newAlgHarness(t, AuthConfig{}, prof)
	h.a.release = func(uint64, []byte, int, bool) {}
	now := time.Now()
	const per = 32
	pkts, _, mans := steadySession(h, 64, per, 1100)
	step := func(k int) {
		for j := range per {
			pn := uint64(k*per + j)
			d := Sum(pkts[pn])
			switch {
			case h.a.Authenticate(&d, pn, now):
			case lent:
				h.a.HoldLent(&d, pn, pkts[pn], len(pkts[pn]), false, now)
			default:
				h.a.Hold(&d, pn, pkts[pn], len(pkts[pn]), false, now)
			}
		}
		if k%2 == 1 {
			h.a.Keep() // lent payloads copied before their manifest comes
		}
		if err := h.a.HandleManifest(mans[k], now); err != nil {
			t.Fatal(err)
		}
		h.a.Keep()
	}
	for k := range 8 {
		step(k)
	}
	k := 8
	if a := testing.AllocsPerRun(50, func() { step(k); k++ }); a != 0 {
		t.Fatalf("%v allocations per manifest of %d packets", a, per)
	}
	if st := h.a.Stats(); st.Authenticated != uint64(k*per) || st.Held != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestSeqWindow(t *testing.T) {
	var w seqWindow
	if w.check(5) != seqNew {
		t.Fatal("empty window")
	}
	w.mark(0xfffffffe) // near the wrap
	w.mark(1)
	var one uint32 = 1
	for seq, want := range map[uint32]int{0xfffffffe: seqSeen, 0xffffffff: seqNew, 0: seqNew, 1: seqSeen, 2: seqNew, one - seqWindowSize: seqStale, one + 1 - seqWindowSize: seqNew} {
		if got := w.check(seq); got != want {
			t.Errorf("check(%#x) = %d, want %d", seq, got, want)
		}
	}
	w.mark(1 + seqWindowSize)
	if w.check(1) != seqStale || w.check(1+seqWindowSize) != seqSeen || w.check(seqWindowSize) != seqNew || w.check(2) != seqNew {
		t.Fatal("after a jump")
	}
}

// A salted manifest matches the packets held under its packet numbers two
// at a time: with numbers held by nothing, by a forger only, by a forger
// after or before the real packet, and an odd count, only the real packets
// are released, each once.
func TestAuthenticatorSaltedPairs(t *testing.T) {
	h := newAlgHarness(t, AuthConfig{}, saltedProfile(t))
	now := time.Now()
	hold := func(pn uint64, salt string) {
		t.Helper()
		if auth, held := h.arrive(pn, salt, now); auth || !held {
			t.Fatalf("packet %d %s: authenticated %v, held %v", pn, salt, auth, held)
		}
	}
	for pn := range uint64(11) {
		switch pn {
		case 3: // arrives after the manifest
		case 7:
			hold(pn, "forged")
		case 8:
			hold(pn, "real")
			hold(pn, "forged")
		case 9:
			hold(pn, "forged")
			hold(pn, "real")
		default:
			hold(pn, "real")
		}
	}
	if err := h.a.HandleManifest(h.manifest(0, 0, 11, "real"), now); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h.released) != "[0 1 2 4 5 6 8 9 10]" {
		t.Fatalf("released %v", h.released)
	}
	for pn, p := range h.payloads {
		if p != string(packet(pn, "real")) {
			t.Fatalf("released %q as packet %d", p, pn)
		}
	}
	for _, pn := range []uint64{3, 7} {
		if auth, _ := h.arrive(pn, "real", now); !auth {
			t.Fatalf("packet %d after its manifest not authenticated", pn)
		}
	}
	if st := h.a.Stats(); st.Held != 3 || st.Authenticated != 11 || st.Released != 9 {
		t.Fatalf("%+v", st)
	}
}
