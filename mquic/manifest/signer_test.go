package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// testProfile is the profile of the tests written for 32-byte digests
// (DigestSHA256); saltedProfile that of the default, DigestSalted128.
func testProfile(t testing.TB) *Profile {
	t.Helper()
	p := saltedProfile(t)
	p.Digest = DigestSHA256
	return p
}

func saltedProfile(t testing.TB) *Profile {
	t.Helper()
	p, err := NewProfile(testKey(t).Public(), 42)
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest != DigestSalted128 {
		t.Fatalf("NewProfile's digest algorithm is %v", p.Digest)
	}
	return p
}

func newTestSigner(t testing.TB, cfg SignerConfig, frameLen int) *Signer {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = ed25519.NewKeyFromSeed(unhex(t, rfc8032Seed))
	}
	s, err := NewSigner(testProfile(t), cfg, frameLen)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain takes every frame Next has at now and parses it.
func drain(t testing.TB, s *Signer, now time.Time, force bool) []Manifest {
	t.Helper()
	var out []Manifest
	for {
		f, err := s.Next(now, force)
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			return out
		}
		m, n, err := ParseFrame(append([]byte(nil), f...), s.prof.Digest)
		if err != nil || n != len(f) {
			t.Fatalf("signer frame: %v", err)
		}
		if err := s.prof.Key.Verify(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
		if len(out) > 1000 {
			t.Fatal("Next never returns nil")
		}
	}
}

// A DigestSalted128 signer fills a 1200-byte packet's frame with 65
// digests, draws a salt for each manifest, and lists each packet as the
// salt says.
func TestSignerSalted(t *testing.T) {
	prof := saltedProfile(t)
	s, err := NewSigner(prof, SignerConfig{Key: ed25519.NewKeyFromSeed(unhex(t, rfc8032Seed))}, 1171)
	if err != nil {
		t.Fatal(err)
	}
	if s.PacketsPerManifest() != 65 {
		t.Fatalf("%d digests per manifest, want 65", s.PacketsPerManifest())
	}
	now := time.Unix(1000, 0)
	salts := map[string]bool{}
	for pn := range uint64(130) {
		s.Add(pn, pkt(pn), true, now)
		for _, m := range drain(t, s, now, false) {
			if len(m.SignedBytes())+len(m.Signature) > 1171-6 {
				t.Fatalf("manifest of %d bytes", len(m.SignedBytes())+len(m.Signature))
			}
			if m.Count() != 65 {
				t.Fatalf("manifest %d lists %d packets", m.Seq, m.Count())
			}
			for i := range m.Count() {
				if d := Sum(pkt(m.FirstPN + uint64(i))); !m.Lists(i, &d) {
					t.Fatalf("manifest %d digest %d is not that of packet %d", m.Seq, i, m.FirstPN+uint64(i))
				}
			}
			salts[string(m.Salt)] = true
		}
	}
	if len(salts) != 2 {
		t.Fatalf("%d salts for 2 manifests", len(salts))
	}
}

func pkt(pn uint64) []byte { return []byte{0x40, byte(pn), byte(pn >> 8), 0xaa} }

func TestSignerFullManifestsAndCopies(t *testing.T) {
	s := newTestSigner(t, SignerConfig{PacketsPerManifest: 4}, 1171)
	now := time.Unix(1000, 0)
	var frames []Manifest
	for pn := uint64(10); pn < 22; pn++ {
		s.Add(pn, pkt(pn), true, now)
		if s.Ready() != ((pn-10)%4 == 3) {
			t.Fatalf("after packet %d: Ready %v", pn, s.Ready())
		}
		frames = append(frames, drain(t, s, now, false)...)
		if s.Ready() {
			t.Fatal("Ready after drain")
		}
	}
	// Three full manifests (10-13, 14-17, 18-21); after the second and the
	// third, a copy of the one before.
	var got []string
	for _, m := range frames {
		got = append(got, string(rune('0'+m.Seq)))
		if m.Count() != 4 || m.FirstPN != 10+4*uint64(m.Seq) || m.StreamID != 42 {
			t.Fatalf("manifest %d: %d digests from %d", m.Seq, m.Count(), m.FirstPN)
		}
		for i := range m.Count() {
			if d := Sum(pkt(m.FirstPN + uint64(i))); !m.Lists(i, &d) {
				t.Fatalf("manifest %d digest %d is not that of packet %d", m.Seq, i, m.FirstPN+uint64(i))
			}
		}
	}
	if strings.Join(got, "") != "01021" {
		t.Fatalf("frames in order %v, want 0 1 0 2 1", got)
	}
	// The last copy goes out RepeatDelay (= MaxDelay) later, or at once
	// with force.
	if f := drain(t, s, now.Add(DefaultMaxDelay-1), false); len(f) != 0 {
		t.Fatalf("copy sent early: %d frames", len(f))
	}
	if due, ok := s.Deadline(); !ok || !due.Equal(now.Add(DefaultMaxDelay)) {
		t.Fatalf("deadline %v %v", due, ok)
	}
	if f := drain(t, s, now.Add(DefaultMaxDelay), false); len(f) != 1 || f[0].Seq != 2 {
		t.Fatalf("late copy: %+v", f)
	}
	if _, ok := s.Deadline(); ok {
		t.Fatal("deadline with nothing left")
	}
	st := s.Stats()
	if st.Manifests != 3 || st.Frames != 6 || st.Digests != 12 || st.Hashed != 12 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSignerTimerAndManifestOnlyPackets(t *testing.T) {
	s := newTestSigner(t, SignerConfig{MaxDelay: 10 * time.Millisecond, Redundancy: 3}, 1171)
	now := time.Unix(1000, 0)
	s.Add(1, pkt(1), true, now)
	s.Add(2, pkt(2), true, now.Add(time.Millisecond))
	if f := drain(t, s, now.Add(9*time.Millisecond), false); len(f) != 0 {
		t.Fatal("manifest before MaxDelay")
	}
	f := drain(t, s, now.Add(10*time.Millisecond), false)
	if len(f) != 1 || f[0].FirstPN != 1 || f[0].Count() != 2 {
		t.Fatalf("timed manifest: %+v", f)
	}
	// The packet carrying it is listed later but does not call for a
	// manifest itself.
	now = now.Add(10 * time.Millisecond)
	s.Add(3, pkt(3), false, now)
	if due, ok := s.Deadline(); !ok || !due.Equal(now.Add(10*time.Millisecond)) {
		t.Fatalf("deadline %v: only the copy should be due", due)
	}
	// Two more copies, 10 ms apart, each in a manifest-only packet.
	for i := range 2 {
		now = now.Add(10 * time.Millisecond)
		f = drain(t, s, now, false)
		if len(f) != 1 || f[0].Seq != 0 {
			t.Fatalf("copy %d: %+v", i, f)
		}
		s.Add(uint64(4+i), pkt(uint64(4+i)), false, now)
	}
	if _, ok := s.Deadline(); ok {
		t.Fatal("manifest-only packets called for a manifest")
	}
	// Data again: the next manifest lists the manifest packets too.
	s.Add(6, pkt(6), true, now)
	f = drain(t, s, now, true)
	if len(f) != 3 || f[0].FirstPN != 3 || f[0].Count() != 4 || f[1].Seq != 1 || f[2].Seq != 1 {
		t.Fatalf("forced: %+v", f)
	}
}

func TestSignerGapEndsManifest(t *testing.T) {
	s := newTestSigner(t, SignerConfig{Redundancy: 1}, 1171)
	now := time.Unix(1000, 0)
	s.Add(1, pkt(1), true, now)
	s.Add(2, pkt(2), true, now)
	s.Add(5, pkt(5), true, now)
	f := drain(t, s, now, true)
	if len(f) != 2 || f[0].FirstPN != 1 || f[0].Count() != 2 || f[1].FirstPN != 5 || f[1].Count() != 1 {
		t.Fatalf("%+v", f)
	}
}

func TestSignerConfigErrors(t *testing.T) {
	prof := testProfile(t)
	key := ed25519.NewKeyFromSeed(unhex(t, rfc8032Seed))
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name     string
		cfg      SignerConfig
		frameLen int
		want     string
	}{
		{"no key", SignerConfig{}, 1171, "no signing key"},
		{"other key", SignerConfig{Key: other}, 1171, "not the advertised one"},
		{"too small", SignerConfig{Key: key}, 100, "cannot list a single digest"},
		{"too many", SignerConfig{Key: key, PacketsPerManifest: 34}, 1171, "at most 33"},
		{"redundancy", SignerConfig{Key: key, Redundancy: 9}, 1171, "redundancy 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSigner(prof, tc.cfg, tc.frameLen)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// The signer's per-packet work (hashing) allocates nothing; signing a
// manifest reuses the record buffers.
func TestSignerAllocations(t *testing.T) {
	s := newTestSigner(t, SignerConfig{}, 1171)
	p := make([]byte, 1200)
	now := time.Unix(1000, 0)
	pn := uint64(0)
	step := func() {
		s.Add(pn, p, true, now)
		pn++
		for {
			f, _ := s.Next(now, false)
			if f == nil {
				break
			}
		}
	}
	for range 200 {
		step()
	}
	// Ed25519 signing through crypto.Signer allocates the 64-byte
	// signature: one allocation per 33 packets.
	if a := testing.AllocsPerRun(3300, step); a > 0.1 {
		t.Fatalf("%.3f allocations per packet", a)
	}
}

// The signer lists each packet as it was when added, though it hashes
// packets two at a time: a sender may reuse a packet's buffer once Add
// returns. Packets of varied lengths (hashed together or not), a gap, a
// deadline and full manifests end manifests between the two of a pair.
func TestSignerListsPacketsAsAdded(t *testing.T) {
	s := newTestSigner(t, SignerConfig{Redundancy: 1, MaxDelay: time.Millisecond}, 1171)
	now := time.Unix(1000, 0)
	buf := make([]byte, 1500)
	want := map[uint64]Digest{}
	var got []Manifest
	lens := []int{1200, 1200, 1199, 700, 1200, 1143, 1144, 64, 55, 56, 0, 0}
	pn := uint64(1)
	for i := range 200 {
		if i == 77 {
			pn += 3 // a gap
		}
		p := buf[:lens[i%len(lens)]]
		for j := range p {
			p[j] = byte(i*7 + j)
		}
		s.Add(pn, p, true, now)
		want[pn] = Sum(p)
		clear(buf) // the sender's slot, reused
		if i%41 == 40 {
			now = now.Add(time.Millisecond) // the deadline of a part-filled manifest
		}
		got = append(got, drain(t, s, now, false)...)
		pn++
	}
	got = append(got, drain(t, s, now, true)...)
	listed := 0
	for _, m := range got {
		for i := range m.Count() {
			d, ok := want[m.FirstPN+uint64(i)]
			if !ok || !m.Lists(i, &d) {
				t.Fatalf("manifest %d lists packet %d wrongly", m.Seq, m.FirstPN+uint64(i))
			}
			listed++
		}
	}
	if listed != len(want) || len(got) < 8 {
		t.Fatalf("%d manifests list %d packets, want all %d", len(got), listed, len(want))
	}
}
