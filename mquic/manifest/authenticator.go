package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of AuthConfig. The hold times are AMBI's defaults.
const (
	DefaultDataHoldTime   = 2 * time.Second
	DefaultDigestHoldTime = 10 * time.Second
	DefaultMaxHeldPackets = 4096
	DefaultMaxHeldBytes   = 8 << 20
	DefaultMaxDigests     = 1 << 16
	DefaultMaxVerifyRate  = 20000
	DefaultWindow         = 4096
	DefaultMaxAhead       = 1 << 22
	DefaultExpectAhead    = 256
)

// maxSeqFailures is how many copies of one sequence number may fail
// verification before others with that number lose their priority.
const maxSeqFailures = 2

// AuthConfig configures an Authenticator. Zero fields take the defaults.
type AuthConfig struct {
	// DataHoldTime is how long an unauthenticated packet waits for a
	// manifest before it is dropped (AMBI's data-hold-time).
	DataHoldTime time.Duration
	// DigestHoldTime is how long a verified digest waits for its packet
	// (AMBI's digest-hold-time).
	DigestHoldTime time.Duration
	// MaxHeldPackets and MaxHeldBytes cap the packets waiting for a
	// manifest; past either the oldest is dropped.
	MaxHeldPackets int
	MaxHeldBytes   int
	// MaxDigests caps the verified digests waiting for their packets; past
	// it the oldest is forgotten.
	MaxDigests int
	// MaxVerifyRate caps signature verifications per second (with a burst
	// of a quarter second's worth) for each source of manifests: those of
	// the session's own packets (MANIFEST frames), and those from outside
	// the session (HandleManifest: over unicast, from the origin). Past it
	// manifests are dropped unverified. It bounds the CPU a flood of forged
	// manifests can take (the default: about 0.6 of a core on amd64), and a
	// flood in the session does not touch the budget of the manifests
	// fetched over unicast. It also bounds a real session's rate: the
	// default covers 1.3 million packets a second at 65 digests per
	// manifest (660 000 at 33, with DigestSHA256). Within the session's
	// budget, expected manifests come first: those with a sequence number
	// after the newest verified one (ExpectAhead of them) or missing below
	// it, of which fewer than two copies failed verification, that list a
	// packet held now (a forger cannot list packets before they are sent);
	// other manifests are verified only while half the burst is left.
	MaxVerifyRate int
	// ExpectAhead is how many sequence numbers after the newest verified
	// one count as expected; 0 means DefaultExpectAhead.
	ExpectAhead int
	// Window is how far below the largest authenticated packet number a
	// packet can still be authenticated: the receiver's replay window.
	// Manifests that list only older packets are dropped unverified.
	Window uint64
	// MaxAhead is how far beyond the largest authenticated packet number a
	// manifest's first packet may be. Manifests further ahead are dropped
	// unverified, unless nothing was authenticated for DigestHoldTime (the
	// receiver may have missed that much).
	MaxAhead uint64
}

// AuthStats are an Authenticator's counters.
type AuthStats struct {
	// Manifests.
	Manifests    uint64        // manifests verified and used
	Repeats      uint64        // copies of a verified manifest, recognized without verifying
	BadSignature uint64        // dropped: the signature does not verify
	WrongKey     uint64        // dropped: another algorithm or key ID than the session's
	WrongStream  uint64        // dropped: another Manifest Stream ID than the session's
	Conflicting  uint64        // dropped: a verified sequence number with other content (forged)
	Implausible  uint64        // dropped: packet numbers all too old, or too far ahead
	RateLimited  uint64        // dropped: over MaxVerifyRate
	Unexpected   uint64        // of the manifests the Authenticator verified or rate-limited, those it did not expect (lower priority)
	Verified     uint64        // signature verifications (good or bad)
	VerifyTime   time.Duration // time spent verifying
	Batched      uint64        // of Verified, signatures verified in batches (Prechecker.VerifyClaimed)

	// Digests.
	Digests        uint64 // digests registered to wait for their packets
	DigestsExpired uint64 // waited DigestHoldTime for a packet that never came
	DigestsEvicted uint64 // forgotten early because of MaxDigests
	StaleDigests   uint64 // listed packets older than the window, ignored
	WaitingDigests int    // registered now

	// Packets.
	Authenticated        uint64 // packets whose digest a verified manifest listed
	Released             uint64 // of those, packets that had been held
	Held                 int    // packets waiting for a manifest now
	HeldBytes            int    // their payload bytes
	Expired              uint64 // dropped: waited DataHoldTime without a manifest
	Evicted              uint64 // dropped early because of MaxHeldPackets or MaxHeldBytes
	UnconfirmedManifests uint64 // packets of only MANIFEST frames that no manifest listed in time (their manifests were used)
	PNMismatch           uint64 // a packet whose packet number has a verified digest that is not the packet's (forged, or decoded with another packet number)
}

// Release receives a held packet that a manifest authenticated: its packet
// number, its decrypted payload (valid only during the call), its length on
// the wire, and whether it carried only MANIFEST frames. It is called from
// HandleManifest and must not call the Authenticator.
type Release func(pn uint64, payload []byte, wireLen int, manifestOnly bool)

// Authenticator is the receiver side of asymmetric authentication. For each
// packet that passed the session checks and decryption, the receiver:
//
//  1. computes its digest (Sum) before decrypting it in place;
//  2. passes every MANIFEST frame in it to HandleManifest at once, as
//     manifests are self-authenticating: packets held for digests the
//     manifest lists are handed to the Release function, in packet-number
//     order;
//  3. asks Authenticate whether a verified manifest listed the packet, and
//     if so processes it; otherwise
//  4. passes it to Hold, which keeps a copy until a manifest lists it or it
//     expires.
//
// A digest authenticates one packet once; a replayed packet finds no digest
// (and the receiver's replay window, which only authenticated packets mark,
// drops it anyway). Memory is bounded by AuthConfig; every dropped manifest,
// digest and packet is counted.
//
// An Authenticator is not safe for concurrent use, but its Prechecker is:
// other goroutines may verify signatures ahead of it.
type Authenticator struct {
	prof    *Profile
	cfg     AuthConfig
	release Release
	epoch   time.Time

	// Digests and packets are matched by packet number: a salted digest
	// (DigestSalted128) cannot be computed before its manifest comes.
	digests   pnIndex // packet number -> verified digest waiting for its packet, slot in waiting
	waiting   fifo[waitingDigest]
	held      digestIndex // unauthenticated packets by SHA-256 -> slot in heldQ
	heldPN    pnIndex     // packet number -> newest held packet with that number, slot in heldQ
	heldQ     fifo[heldPacket]
	heldBytes int
	bufs      [][]byte // free payload buffers
	lent      []int32  // slots in heldQ of the payloads lent since the last Keep

	largest     uint64
	haveLargest bool
	lastAuth    int64

	seen    [64]seenManifest // recently verified manifests, by Seq % 64
	seed    maphash.Seed     // of seenManifest.sum
	seqs    seqWindow        // sequence numbers verified recently
	scratch []byte
	newest  []newestHeld // register's, for each packet number of a manifest

	// The verification budgets (MaxVerifyRate), the session's shared with
	// the Prechecker.
	budgetMu        sync.Mutex
	inBand, unicast budget
	// claims holds, for the sequence numbers whose signature is verified
	// or being verified, Seq+1 at Seq % claimSlots (see Prechecker).
	claims [claimSlots]atomic.Uint64
	// failures holds, for recent sequence numbers of which copies failed
	// verification, (Seq+1)<<8 | count at Seq % claimSlots.
	failures [claimSlots]atomic.Uint64
	// top is the newest verified sequence number plus one (0: none), for
	// the Prechecker.
	top atomic.Uint64
	// lastFailure is when a signature last failed verification, plus one
	// (0: never), for the Prechecker's batches.
	lastFailure atomic.Int64

	stats AuthStats
}

type waitingDigest struct {
	listed [DigestLen]byte // the first DigestAlg.Len() bytes
	salt   [SaltLen]byte   // the manifest's (DigestSalted128)
	pn     uint64
	at     int64
}

type heldPacket struct {
	d            Digest
	pn           uint64
	at           int64
	buf          []byte
	lent         bool // buf is the caller's, until Keep (HoldLent)
	wireLen      int
	manifestOnly bool
	// older and newer link the held packets with the same packet number
	// (a forger's, and the real one), slots in heldQ or -1.
	older, newer int32
}

// newestHeld is the newest packet held under one of the packet numbers a
// verified manifest lists (slot -1: none) and whether the manifest lists it.
type newestHeld struct {
	slot   int32
	listed bool
}

type seenManifest struct {
	valid bool
	seq   uint32
	sum   uint64 // manifestSum
}

// heldBufSize is the size of pooled payload buffers: any packet that fits
// an Ethernet MTU.
const heldBufSize = 1500

// NewAuthenticator creates the authenticator of a session with profile prof.
// release receives the held packets that manifests authenticate.
func NewAuthenticator(prof *Profile, cfg AuthConfig, release Release) (*Authenticator, error) {
	if prof == nil || prof.Key == nil {
		return nil, errors.New("manifest: new authenticator: no profile")
	}
	if release == nil {
		return nil, errors.New("manifest: new authenticator: no release function")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if cfg.DataHoldTime <= 0 {
		cfg.DataHoldTime = DefaultDataHoldTime
	}
	if cfg.DigestHoldTime <= 0 {
		cfg.DigestHoldTime = DefaultDigestHoldTime
	}
	def(&cfg.MaxHeldPackets, DefaultMaxHeldPackets)
	def(&cfg.MaxHeldBytes, DefaultMaxHeldBytes)
	def(&cfg.MaxDigests, DefaultMaxDigests)
	def(&cfg.MaxVerifyRate, DefaultMaxVerifyRate)
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxAhead == 0 {
		cfg.MaxAhead = DefaultMaxAhead
	}
	a := &Authenticator{
		prof:    prof,
		cfg:     cfg,
		release: release,
		epoch:   time.Now(),
		seed:    maphash.MakeSeed(),
		digests: newPNIndex(min(cfg.MaxDigests, 4096)),
		waiting: newFIFO[waitingDigest](),
		held:    newDigestIndex(min(cfg.MaxHeldPackets, 1024)),
		heldPN:  newPNIndex(2 * cfg.MaxHeldPackets),
		heldQ:   newFIFO[heldPacket](),
		scratch: make([]byte, 0, 2048),
	}
	if cfg.ExpectAhead <= 0 {
		cfg.ExpectAhead = DefaultExpectAhead
	}
	a.cfg.ExpectAhead = cfg.ExpectAhead
	a.inBand.tokens, a.unicast.tokens = a.burst(), a.burst()
	return a, nil
}

// budget is a token bucket of signature verifications.
type budget struct {
	tokens float64
	at     int64
}

// Profile returns the session profile the authenticator checks against.
func (a *Authenticator) Profile() *Profile { return a.prof }

func (a *Authenticator) burst() float64 { return max(16, float64(a.cfg.MaxVerifyRate)/4) }

func (a *Authenticator) ticks(now time.Time) int64 { return int64(now.Sub(a.epoch)) }

// Errors of HandleManifest besides parse errors, ErrBadSignature and
// ErrWrongKey.
var (
	// ErrRepeat means the manifest is a copy of one already verified; it is
	// not an error of the sender.
	ErrRepeat = errors.New("manifest: repeat of a verified manifest")
	// ErrWrongStream means the Manifest Stream ID is not the profile's.
	ErrWrongStream = errors.New("manifest: another manifest stream")
	// ErrConflict means the manifest reuses the sequence number of a
	// verified manifest with other content.
	ErrConflict = errors.New("manifest: sequence number of a verified manifest with other content")
	// ErrImplausible means the packet numbers are all too old or too far
	// ahead.
	ErrImplausible = errors.New("manifest: implausible packet numbers")
	// ErrRateLimited means the manifest was dropped unverified because of
	// MaxVerifyRate.
	ErrRateLimited = errors.New("manifest: verification rate exceeded")
)

// HandleManifest checks a manifest from outside the session (over unicast,
// from the origin) and, if its signature verifies, makes its digests
// authenticate their packets: held packets are released at once (in
// packet-number order), other digests wait DigestHoldTime for their
// packets. Each rejected manifest is counted under one reason and returned
// as an error; ErrRepeat means it was a copy of a manifest already used.
//
// The cheap checks come before the signature: Manifest Stream ID, key, a
// copy of a verified manifest, a reused sequence number, implausible packet
// numbers, and the verification rate of manifests from outside the session.
func (a *Authenticator) HandleManifest(m *Manifest, now time.Time) error {
	return a.handle(m, now, Signature{}, &a.unicast)
}

// HandleChecked is HandleManifest for a manifest of the session's own
// packets (a MANIFEST frame), whose signature a Prechecker may have
// verified already (sig.Checked): the checks are the same, the signature
// is not verified again, and the verification counts as the
// Authenticator's own. It draws on the session's verification budget,
// expected manifests first.
func (a *Authenticator) HandleChecked(m *Manifest, now time.Time, sig Signature) error {
	return a.handle(m, now, sig, &a.inBand)
}

func (a *Authenticator) handle(m *Manifest, now time.Time, sig Signature, b *budget) error {
	if sig.Checked {
		a.stats.Verified++
		a.stats.VerifyTime += sig.Time
		if sig.Batched {
			a.stats.Batched++
		}
	}
	t := a.ticks(now)
	if m.StreamID != a.prof.StreamID {
		a.stats.WrongStream++
		return ErrWrongStream
	}
	if m.Alg != a.prof.Key.alg || m.KeyID != a.prof.Key.id || m.alg() != a.prof.Digest {
		a.stats.WrongKey++
		return ErrWrongKey
	}
	slot := &a.seen[m.Seq%uint32(len(a.seen))]
	switch a.seqs.check(m.Seq) {
	case seqSeen:
		// A sender never reuses a sequence number: this is a copy, or a
		// forgery. The last 64 manifests are told apart by content; an
		// older one brings nothing new either way.
		if slot.valid && slot.seq == m.Seq && a.manifestSum(m) != slot.sum {
			a.stats.Conflicting++
			return ErrConflict
		}
		a.stats.Repeats++
		return ErrRepeat
	case seqStale:
		a.stats.Implausible++
		return ErrImplausible
	}
	if a.implausible(m, t) {
		a.stats.Implausible++
		return ErrImplausible
	}
	err := sig.Err
	if !sig.Checked {
		expected := b == &a.unicast || a.expected(m.Seq) && a.listsHeld(m)
		if !expected {
			a.stats.Unexpected++
		}
		if !a.takeToken(b, t, expected) {
			a.stats.RateLimited++
			return ErrRateLimited
		}
		t0 := time.Now()
		a.scratch, err = a.prof.Key.verify(m, a.scratch)
		a.stats.VerifyTime += time.Since(t0)
		a.stats.Verified++
		a.claims[m.Seq%claimSlots].Store(uint64(m.Seq) + 1)
		if err != nil {
			a.failed(m.Seq, t)
		}
	}
	if err != nil {
		a.stats.BadSignature++
		return err
	}
	a.stats.Manifests++
	*slot = seenManifest{valid: true, seq: m.Seq, sum: a.manifestSum(m)}
	a.seqs.mark(m.Seq)
	a.top.Store(uint64(a.seqs.top) + 1)
	a.register(m, t)
	return nil
}

// expected reports whether a manifest of the session with sequence number
// seq is expected (see MaxVerifyRate): nothing was verified yet; or it is
// at most ExpectAhead after the newest verified one, or below it and not
// verified; and fewer than maxSeqFailures copies of it failed
// verification. It is safe for concurrent use.
func (a *Authenticator) expected(seq uint32) bool {
	top := a.top.Load()
	if top == 0 {
		return true
	}
	if d := int64(int32(seq - uint32(top-1))); d > int64(a.cfg.ExpectAhead) || d < -seqWindowSize {
		return false
	}
	f := a.failures[seq%claimSlots].Load()
	return f>>8 != uint64(seq)+1 || f&0xff < maxSeqFailures
}

// listsHeld reports whether one of the first packet numbers m lists is
// that of a packet held now. It does not match the digests: a salted digest
// costs a hash per packet held under the number, and a forger could hold
// thousands under one to make this check expensive, while matching would
// not stop it anyway (it receives the real packets and can list their
// digests, or send packets of its own first).
func (a *Authenticator) listsHeld(m *Manifest) bool {
	for i := range min(m.Count(), 4) {
		if a.heldPN.has(m.FirstPN + uint64(i)) {
			return true
		}
	}
	return false
}

// heldMatch returns the slot of the held packet numbered pn whose digest is
// listed (in a manifest with salt), or -1.
func (a *Authenticator) heldMatch(pn uint64, listed, salt []byte) int32 {
	hi, _ := a.heldPN.get(pn) // -1 if none
	return a.heldMatchFrom(hi, listed, salt)
}

// heldMatchFrom is heldMatch from held packet hi (-1: none) to the oldest
// with its packet number.
func (a *Authenticator) heldMatchFrom(hi int32, listed, salt []byte) int32 {
	for hi >= 0 {
		h := a.heldQ.at(hi)
		if a.prof.Digest.matches(listed, salt, &h.d) {
			return hi
		}
		hi = h.older
	}
	return -1
}

// matchNewest fills a.newest for a verified DigestSalted128 manifest m: for
// each packet number it lists, the newest packet held under it (the real
// one, unless a forger's came after it) and whether m lists it. It hashes
// the salted digests two at a time (saltedPair), where register would hash
// them one by one; register tries the older packets under a number, if
// any, only when the newest is not listed.
func (a *Authenticator) matchNewest(m *Manifest) {
	n := m.Count()
	a.newest = slices.Grow(a.newest[:0], n)[:n]
	var in saltedPair
	in.setSalt(m.Salt)
	var out [2]Digest
	pair := [2]int{-1, -1} // indexes of m waiting to be hashed
	flush := func(k int) {
		if k == 2 {
			in.sum(&out[0], &out[1])
		} else {
			out[0] = in.sum1()
		}
		for j := range k {
			i := pair[j]
			a.newest[i].listed = bytes.Equal(out[j][:16], m.Listed(i))
		}
	}
	k := 0
	for i := range n {
		hi, ok := a.heldPN.get(m.FirstPN + uint64(i))
		if !ok {
			a.newest[i] = newestHeld{slot: -1}
			continue
		}
		a.newest[i] = newestHeld{slot: hi}
		in.set(k, a.heldQ.at(hi).d[:])
		pair[k] = i
		if k++; k == 2 {
			flush(2)
			k = 0
		}
	}
	if k == 1 {
		flush(1)
	}
}

// failed records that a copy of sequence number seq failed verification,
// at t.
func (a *Authenticator) failed(seq uint32, t int64) {
	a.lastFailure.Store(t + 1)
	slot := &a.failures[seq%claimSlots]
	for {
		f := a.failures[seq%claimSlots].Load()
		n := uint64(1)
		if f>>8 == uint64(seq)+1 {
			n = min(f&0xff+1, 0xff)
		}
		if slot.CompareAndSwap(f, (uint64(seq)+1)<<8|n) {
			return
		}
	}
}

// manifestSum digests a whole parsed manifest, signature included, to tell
// a copy of a verified manifest from a forgery under its sequence number.
// The hash is keyed with a secret seed (hash/maphash), which a forger does
// not know: it cannot make another manifest collide but by chance (2^-64),
// and would gain nothing but having it counted as a repeat rather than as
// conflicting; both are dropped. It takes an eighth of the time SHA-256
// takes, for every copy of every manifest.
func (a *Authenticator) manifestSum(m *Manifest) uint64 {
	var h maphash.Hash
	h.SetSeed(a.seed)
	h.Write(m.signed)
	h.Write(m.Signature)
	return h.Sum64()
}

func (a *Authenticator) implausible(m *Manifest, t int64) bool {
	if !a.haveLargest {
		return false
	}
	last := m.LastPN()
	if last < a.largest && a.largest-last >= a.cfg.Window {
		return true
	}
	recent := t-a.lastAuth < int64(a.cfg.DigestHoldTime)
	return recent && m.FirstPN > a.largest && m.FirstPN-a.largest > a.cfg.MaxAhead
}

// takeToken refills budget b and takes one verification from it: an
// expected manifest's while one is left, another's only while half the
// burst is left.
func (a *Authenticator) takeToken(b *budget, t int64, expected bool) bool {
	a.budgetMu.Lock()
	defer a.budgetMu.Unlock()
	b.tokens = min(a.burst(), b.tokens+float64(t-b.at)*float64(a.cfg.MaxVerifyRate)/1e9)
	b.at = t
	need := 1.0
	if !expected {
		need += a.burst() / 2
	}
	if b.tokens < need {
		return false
	}
	b.tokens--
	return true
}

// register makes a verified manifest's digests authenticate their packets.
func (a *Authenticator) register(m *Manifest, t int64) {
	salted := a.prof.Digest == DigestSalted128
	if salted {
		a.matchNewest(m)
	}
	for i := range m.Count() {
		pn := m.FirstPN + uint64(i)
		if a.haveLargest && pn < a.largest && a.largest-pn >= a.cfg.Window {
			a.stats.StaleDigests++
			continue
		}
		listed := m.Listed(i)
		hi := int32(-1)
		switch {
		case !salted:
			hi = a.heldMatch(pn, listed, m.Salt)
		case a.newest[i].listed:
			hi = a.newest[i].slot
		case a.newest[i].slot >= 0:
			hi = a.heldMatchFrom(a.heldQ.at(a.newest[i].slot).older, listed, m.Salt)
		}
		if hi >= 0 {
			h := a.heldQ.at(hi)
			a.authenticated(pn, t)
			a.stats.Released++
			a.release(h.pn, h.buf, h.wireLen, h.manifestOnly)
			a.dropHeld(hi) // h is invalid from here
			continue
		}
		if a.digests.has(pn) {
			continue // listed by an earlier manifest too
		}
		if a.waiting.len() >= a.cfg.MaxDigests {
			a.stats.DigestsEvicted++
			a.dropDigest(a.waiting.front())
		}
		w := waitingDigest{pn: pn, at: t}
		copy(w.listed[:], listed)
		copy(w.salt[:], m.Salt)
		a.digests.set(pn, a.waiting.push(w))
		a.stats.Digests++
	}
}

func (a *Authenticator) authenticated(pn uint64, t int64) {
	a.stats.Authenticated++
	if !a.haveLargest || pn > a.largest {
		a.largest, a.haveLargest = pn, true
	}
	a.lastAuth = t
}

// Authenticate reports whether a verified manifest listed the packet with
// SHA-256 d and packet number pn, and if so consumes the digest: it
// authenticates one packet only.
func (a *Authenticator) Authenticate(d *Digest, pn uint64, now time.Time) bool {
	i, ok := a.digests.get(pn)
	if !ok {
		return false
	}
	w := a.waiting.at(i)
	if !a.prof.Digest.matches(w.listed[:a.prof.Digest.Len()], w.salt[:], d) {
		a.stats.PNMismatch++
		return false
	}
	a.dropDigest(i)
	a.authenticated(pn, a.ticks(now))
	return true
}

// Hold keeps a copy of an unauthenticated packet's decrypted payload until a
// manifest lists its digest (it is then passed to the Release function) or
// DataHoldTime passes (it is then dropped and counted). manifestOnly marks
// a packet whose frames are only MANIFEST frames and padding: nothing of it
// is kept but its digest. Hold returns false, keeping nothing, if a packet
// with the same digest is already held (a duplicate).
//
// When the held packets exceed MaxHeldPackets or MaxHeldBytes, the oldest
// are dropped.
func (a *Authenticator) Hold(d *Digest, pn uint64, payload []byte, wireLen int, manifestOnly bool, now time.Time) bool {
	return a.hold(d, pn, payload, wireLen, manifestOnly, now, false)
}

// HoldLent is Hold without the copy: the authenticator keeps payload in
// place until the next Keep, which copies it if the packet is still held
// then. The caller must not change payload before then. A receiver that
// reads packets in batches lends each batch's payloads and calls Keep
// before reusing its buffers: a packet whose manifest comes in the same
// batch (most of them, at high rates) is released without ever being
// copied.
func (a *Authenticator) HoldLent(d *Digest, pn uint64, payload []byte, wireLen int, manifestOnly bool, now time.Time) bool {
	return a.hold(d, pn, payload, wireLen, manifestOnly, now, true)
}

func (a *Authenticator) hold(d *Digest, pn uint64, payload []byte, wireLen int, manifestOnly bool, now time.Time, lent bool) bool {
	if a.held.find(d, &a.heldQ) >= 0 {
		return false // a duplicate
	}
	var buf []byte
	switch {
	case manifestOnly:
	case lent:
		buf = payload[:len(payload):len(payload)]
		if buf == nil {
			buf = []byte{} // (nil means nothing kept)
		}
	default:
		buf = a.buffer(len(payload))
		copy(buf, payload)
	}
	size := heldSize(buf)
	for a.heldQ.len() > 0 && (a.heldQ.len() >= a.cfg.MaxHeldPackets || a.heldBytes+size > a.cfg.MaxHeldBytes) {
		a.evict(a.heldQ.front(), &a.stats.Evicted)
	}
	older, _ := a.heldPN.get(pn) // -1 if none
	hi, h := a.heldQ.add()
	h.d, h.pn, h.at, h.buf, h.lent = *d, pn, a.ticks(now), buf, lent && !manifestOnly
	h.wireLen, h.manifestOnly, h.older, h.newer = wireLen, manifestOnly, older, -1
	if older >= 0 {
		a.heldQ.at(older).newer = hi
	}
	a.held.add(d, hi)
	a.heldPN.set(pn, hi)
	a.heldBytes += size
	if lent && !manifestOnly {
		a.lent = append(a.lent, hi)
	}
	return true
}

// Keep ends the loans of payloads since the last Keep (HoldLent): it
// copies those of the packets still held. The caller may then reuse their
// buffers.
func (a *Authenticator) Keep() {
	for _, i := range a.lent {
		// A slot may have been freed since, or freed and taken again:
		// only a packet still lent is copied, once.
		if h := a.heldQ.at(i); h.lent {
			buf := a.buffer(len(h.buf))
			copy(buf, h.buf)
			h.buf, h.lent = buf, false
		}
	}
	a.lent = a.lent[:0]
}

// heldSize is what a held payload counts towards MaxHeldBytes, lent or
// copied: the capacity of the buffer its copy takes (buffer).
func heldSize(buf []byte) int {
	if buf == nil {
		return 0
	}
	return max(len(buf), heldBufSize)
}

func (a *Authenticator) buffer(n int) []byte {
	if n <= heldBufSize {
		if k := len(a.bufs); k > 0 {
			b := a.bufs[k-1]
			a.bufs = a.bufs[:k-1]
			return b[:n]
		}
		return make([]byte, n, heldBufSize)
	}
	return make([]byte, n)
}

// evict drops held packet i, counting it under counter (or as an
// unconfirmed manifest packet).
func (a *Authenticator) evict(i int32, counter *uint64) {
	if a.heldQ.at(i).manifestOnly {
		a.stats.UnconfirmedManifests++
	} else {
		*counter++
	}
	a.dropHeld(i)
}

func (a *Authenticator) dropHeld(i int32) {
	h := a.heldQ.at(i)
	a.held.remove(&h.d, i)
	switch {
	case h.newer >= 0:
		a.heldQ.at(h.newer).older = h.older
	case h.older >= 0:
		a.heldPN.set(h.pn, h.older)
	default:
		a.heldPN.del(h.pn)
	}
	if h.older >= 0 {
		a.heldQ.at(h.older).newer = h.newer
	}
	if h.buf != nil {
		a.heldBytes -= heldSize(h.buf)
		if !h.lent && cap(h.buf) == heldBufSize && len(a.bufs) < 1024 {
			a.bufs = append(a.bufs, h.buf[:0])
		}
	}
	a.heldQ.remove(i)
}

func (a *Authenticator) dropDigest(i int32) {
	a.digests.del(a.waiting.at(i).pn)
	a.waiting.remove(i)
}

// Expire drops the held packets and digests whose hold time has passed.
func (a *Authenticator) Expire(now time.Time) {
	t := a.ticks(now)
	for i := a.heldQ.front(); i >= 0 && t-a.heldQ.at(i).at >= int64(a.cfg.DataHoldTime); i = a.heldQ.front() {
		a.evict(i, &a.stats.Expired)
	}
	for i := a.waiting.front(); i >= 0 && t-a.waiting.at(i).at >= int64(a.cfg.DigestHoldTime); i = a.waiting.front() {
		a.stats.DigestsExpired++
		a.dropDigest(i)
	}
}

// Deadline returns when Expire next has something to drop, and false when
// nothing is waiting.
func (a *Authenticator) Deadline() (time.Time, bool) {
	var d time.Duration
	ok := false
	if i := a.heldQ.front(); i >= 0 {
		d, ok = time.Duration(a.heldQ.at(i).at)+a.cfg.DataHoldTime, true
	}
	if i := a.waiting.front(); i >= 0 {
		if e := time.Duration(a.waiting.at(i).at) + a.cfg.DigestHoldTime; !ok || e < d {
			d, ok = e, true
		}
	}
	return a.epoch.Add(d), ok
}

// Largest returns the largest packet number authenticated so far.
func (a *Authenticator) Largest() (uint64, bool) { return a.largest, a.haveLargest }

// Stats returns the authenticator's counters.
func (a *Authenticator) Stats() AuthStats {
	s := a.stats
	s.Held = a.heldQ.len()
	s.HeldBytes = a.heldBytes
	s.WaitingDigests = a.waiting.len()
	return s
}

// String summarizes the counters, for logs.
func (s AuthStats) String() string {
	return fmt.Sprintf("manifests %d (repeats %d, bad signature %d, wrong key %d, wrong stream %d, conflicting %d, implausible %d, rate-limited %d); "+
		"packets authenticated %d (released %d), held %d, expired %d, evicted %d, unconfirmed manifest packets %d; digests %d (expired %d, evicted %d, waiting %d)",
		s.Manifests, s.Repeats, s.BadSignature, s.WrongKey, s.WrongStream, s.Conflicting, s.Implausible, s.RateLimited,
		s.Authenticated, s.Released, s.Held, s.Expired, s.Evicted, s.UnconfirmedManifests, s.Digests, s.DigestsExpired, s.DigestsEvicted, s.WaitingDigests)
}

// seqWindow remembers which of the last 4096 manifest sequence numbers were
// verified, in serial-number arithmetic (sequence numbers wrap).
type seqWindow struct {
	bits [64]uint64
	top  uint32
	have bool
}

const seqWindowSize = 64 * 64

// verdicts of seqWindow.check
const (
	seqNew = iota
	seqSeen
	seqStale
)

func (w *seqWindow) check(seq uint32) int {
	if !w.have {
		return seqNew
	}
	back := w.top - seq
	switch {
	case int32(back) < 0:
		return seqNew
	case back >= seqWindowSize:
		return seqStale
	case w.bits[seq/64%64]&(1<<(seq%64)) != 0:
		return seqSeen
	}
	return seqNew
}

func (w *seqWindow) mark(seq uint32) {
	switch ahead := seq - w.top; {
	case !w.have:
		w.have, w.top = true, seq
	case int32(ahead) > 0:
		if ahead >= seqWindowSize {
			clear(w.bits[:])
		} else {
			for s := w.top + 1; s != seq+1; s++ {
				w.bits[s/64%64] &^= 1 << (s % 64)
			}
		}
		w.top = seq
	}
	w.bits[seq/64%64] |= 1 << (seq % 64)
}
