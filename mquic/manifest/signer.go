package manifest

import (
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// Defaults of SignerConfig.
const (
	// DefaultRedundancy is how many times each manifest is sent: each
	// packet digest then reaches a receiver unless all copies are lost.
	DefaultRedundancy = 2
	// DefaultMaxDelay bounds how long a packet digest waits for a manifest
	// when packets come too slowly to fill one.
	DefaultMaxDelay = 5 * time.Millisecond
	// MaxRedundancy is the largest Redundancy accepted.
	MaxRedundancy = 8
)

// SignerConfig configures a Signer.
type SignerConfig struct {
	// Key signs the manifests: an ed25519.PrivateKey, a P-256
	// *ecdsa.PrivateKey or a crypto.Signer with one of those public keys.
	// Its public key must be the one the session advertises.
	Key crypto.Signer
	// Rand is the randomness ECDSA and the salts of DigestSalted128 need;
	// nil means crypto/rand.
	Rand io.Reader
	// PacketsPerManifest is how many packet digests a manifest lists at
	// most; 0 means as many as fit in a MANIFEST frame in one packet.
	PacketsPerManifest int
	// Redundancy is how many times each manifest is sent; 0 means
	// DefaultRedundancy. The copies of manifest k go out right after
	// manifests k+1, k+2, ... (or RepeatDelay after the previous copy, if
	// that comes first), so that a burst loss rarely takes them all.
	Redundancy int
	// MaxDelay is how long a packet digest may wait before a manifest that
	// is not full is sent anyway; 0 means DefaultMaxDelay.
	MaxDelay time.Duration
	// RepeatDelay is the longest interval between copies of a manifest; 0
	// means MaxDelay.
	RepeatDelay time.Duration
	// OnManifest, when set, is called with each manifest once it is signed,
	// in sequence-number order: the encoded manifest (without the MANIFEST
	// frame header), as a unicast server serves it to receivers that lost
	// the in-band copies. It runs on the sender's hot path, under its lock:
	// it must be quick and must not keep m.
	OnManifest func(m []byte)
}

// SignerStats are a Signer's counters.
type SignerStats struct {
	Manifests uint64        // manifests signed
	Frames    uint64        // MANIFEST frames handed out, copies included
	Digests   uint64        // packet digests listed in manifests
	Hashed    uint64        // packets hashed
	SignTime  time.Duration // time spent signing (salting the digests included)
	HashTime  time.Duration // time spent hashing packets (sampled: every 64th packet, scaled)
	Abandoned uint64        // copies never sent because too many manifests were waiting
}

// Signer is the sender side of asymmetric authentication. The sender calls
// Add with every packet it sends, in packet-number order, and Next to take
// the MANIFEST frames that are due, each of which it sends whole in a packet.
// A manifest lists a run of consecutive packet numbers; it is signed when it
// is full or when its oldest digest has waited MaxDelay.
//
// Packets that carry nothing but MANIFEST frames are listed like any other,
// but never cause a manifest by themselves: otherwise every manifest would
// call for another one.
//
// A Signer is not safe for concurrent use.
type Signer struct {
	prof        *Profile
	key         *SigningKey
	per         int
	copies      int
	maxDelay    time.Duration
	repeatDelay time.Duration
	onManifest  func([]byte)

	rand    io.Reader // draws the salts
	seq     uint32
	firstPN uint64
	pending []byte // SHA-256 digests of packets firstPN, firstPN+1, ...
	// unhashed is a copy of the packet after the pending ones, when one
	// waits to be hashed together with the next (SumPair).
	unhashed    []byte
	hasUnhashed bool
	listed      []byte // the pending digests as a manifest lists them
	salt        [SaltLen]byte
	haveTrigger bool
	triggerAt   time.Time
	hashN       uint64

	recs    []*record // manifests with copies to send, oldest first
	spare   []*record
	scratch []byte
	err     error // sticky signing failure
	stats   SignerStats
}

// record is one signed manifest and its copies still to send.
type record struct {
	frame []byte
	fresh bool      // the first copy is not out yet
	left  int       // copies still to send
	owed  bool      // a newer manifest went out since the last copy
	due   time.Time // when the next copy goes out at the latest
}

// maxRecords bounds the manifests waiting to be sent.
const maxRecords = 64

// NewSigner creates the signer of a session with profile prof. maxFrameLen is
// the largest MANIFEST frame, in bytes, that fits in one of the sender's
// packets.
func NewSigner(prof *Profile, cfg SignerConfig, maxFrameLen int) (*Signer, error) {
	if prof == nil || prof.Key == nil {
		return nil, errors.New("manifest: new signer: no profile")
	}
	key, err := NewSigningKey(cfg.Key, cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("manifest: new signer: %w", err)
	}
	if !key.pub.Equal(prof.Key) {
		return nil, fmt.Errorf("manifest: new signer: the signing key's public key (key ID %x) is not the advertised one (key ID %x)", key.pub.id, prof.Key.id)
	}
	fit := FitDigests(maxFrameLen, prof.Digest, key.pub.alg)
	if fit == 0 {
		return nil, fmt.Errorf("manifest: new signer: a MANIFEST frame of %d bytes cannot list a single digest", maxFrameLen)
	}
	s := &Signer{
		prof:        prof,
		key:         key,
		per:         cfg.PacketsPerManifest,
		copies:      cfg.Redundancy,
		maxDelay:    cfg.MaxDelay,
		repeatDelay: cfg.RepeatDelay,
		onManifest:  cfg.OnManifest,
		rand:        cfg.Rand,
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	switch {
	case s.per == 0:
		s.per = fit
	case s.per < 0 || s.per > fit:
		return nil, fmt.Errorf("manifest: new signer: %d packets per manifest, at most %d fit in a %d-byte frame", s.per, fit, maxFrameLen)
	}
	switch {
	case s.copies == 0:
		s.copies = DefaultRedundancy
	case s.copies < 0 || s.copies > MaxRedundancy:
		return nil, fmt.Errorf("manifest: new signer: redundancy %d, must be 1 to %d", s.copies, MaxRedundancy)
	}
	if s.maxDelay <= 0 {
		s.maxDelay = DefaultMaxDelay
	}
	if s.repeatDelay <= 0 {
		s.repeatDelay = s.maxDelay
	}
	s.pending = make([]byte, 0, s.per*DigestLen)
	s.listed = make([]byte, 0, s.per*prof.Digest.Len())
	s.scratch = make([]byte, 0, len(signatureContext)+Len(prof.Digest, s.per, 0, 64))
	return s, nil
}

// FitDigests returns how many digests of algorithm dig the largest manifest
// signed with alg that fits in a MANIFEST frame of maxFrameLen bytes can
// list.
func FitDigests(maxFrameLen int, dig DigestAlg, alg Algorithm) int {
	n := MaxDigestsIn(maxFrameLen-frameTypeLen-1, dig, alg)
	for n > 0 && FrameLen(Len(dig, n, 0, alg.SignatureLen())) > maxFrameLen {
		n--
	}
	return n
}

// PacketsPerManifest returns the most digests a manifest lists.
func (s *Signer) PacketsPerManifest() int { return s.per }

// Redundancy returns how many times each manifest is sent.
func (s *Signer) Redundancy() int { return s.copies }

// Add hashes pkt, the packet numbered pn exactly as it goes on the wire, for
// a coming manifest. trigger is false for packets that carry only MANIFEST
// frames (and padding). Packet numbers must increase; a gap ends the current
// manifest. Add signs a manifest when it becomes full; its frame is then
// waiting for Next.
func (s *Signer) Add(pn uint64, pkt []byte, trigger bool, now time.Time) {
	if n := s.count(); n > 0 && pn != s.firstPN+uint64(n) {
		s.seal(now)
	}
	if s.count() == 0 {
		s.firstPN = pn
	}
	s.stats.Hashed++
	if trigger && !s.haveTrigger {
		s.haveTrigger, s.triggerAt = true, now
	}
	switch {
	case s.hasUnhashed:
		s.hasUnhashed = false
		s.hash(s.unhashed, pkt)
	case s.count()+1 < s.per:
		// Hashed with the next packet, which is listed by the same
		// manifest unless a gap or a deadline comes first (seal).
		s.unhashed, s.hasUnhashed = append(s.unhashed[:0], pkt...), true
		return
	default:
		s.hash(pkt, nil)
	}
	if len(s.pending) == s.per*DigestLen {
		s.seal(now)
	}
}

// count is how many packets the pending manifest lists so far.
func (s *Signer) count() int {
	n := len(s.pending) / DigestLen
	if s.hasUnhashed {
		n++
	}
	return n
}

// hash appends the digests of a and, unless b is nil, b to the pending ones:
// together with SumPair, which hashes two packets in about the time of
// one. It samples the time hashing takes without paying for a clock
// reading per packet.
func (s *Signer) hash(a, b []byte) {
	pair := b != nil // (a packet is never empty)
	n := uint64(1)
	if pair {
		n = 2
	}
	var t0 time.Time
	sample := (s.hashN+n-1)%64 < n // the call hashes a packet whose index is a multiple of 64
	if sample {
		t0 = time.Now()
	}
	var da, db Digest
	if pair {
		SumPair(&da, &db, a, b)
	} else {
		da = Sum(a)
	}
	if sample {
		s.stats.HashTime += 64 * time.Since(t0) / time.Duration(n)
	}
	s.hashN += n
	s.pending = append(s.pending, da[:]...)
	if pair {
		s.pending = append(s.pending, db[:]...)
	}
}

// seal signs the pending digests into a new manifest.
func (s *Signer) seal(now time.Time) {
	if s.hasUnhashed {
		s.hasUnhashed = false
		s.hash(s.unhashed, nil)
	}
	if len(s.pending) == 0 || s.err != nil {
		return
	}
	m := Manifest{DigestAlg: s.prof.Digest, StreamID: s.prof.StreamID, Seq: s.seq, FirstPN: s.firstPN, Digests: s.pending}
	t0 := time.Now()
	if m.DigestAlg == DigestSalted128 {
		// Drawn now, once every packet the manifest lists is sealed: the
		// salt is unknown until they are fixed, and public only with the
		// manifest, which follows them.
		if _, err := io.ReadFull(s.rand, s.salt[:]); err != nil {
			s.err = fmt.Errorf("manifest: salt: %w", err)
			return
		}
		m.Salt = s.salt[:]
		s.listed = listSalted(s.listed[:0], m.Salt, s.pending)
		m.Digests = s.listed
	}
	rec := s.newRecord()
	buf := quicvarint.Append(rec.frame[:0], uint64(FrameType))
	buf = quicvarint.Append(buf, uint64(Len(m.DigestAlg, m.Count(), 0, s.key.pub.alg.SignatureLen())))
	hdr := len(buf)
	buf, err := m.Append(buf, s.key, s.scratch)
	s.stats.SignTime += time.Since(t0)
	if err != nil {
		s.err = err
		s.spare = append(s.spare, rec)
		return
	}
	s.stats.Manifests++
	s.stats.Digests += uint64(m.Count())
	if s.onManifest != nil {
		s.onManifest(buf[hdr:])
	}
	rec.frame, rec.fresh, rec.left, rec.owed, rec.due = buf, true, s.copies, false, now
	if len(s.recs) == maxRecords {
		s.stats.Abandoned += uint64(s.recs[0].left)
		s.spare = append(s.spare, s.recs[0])
		s.recs = append(s.recs[:0], s.recs[1:]...)
	}
	s.recs = append(s.recs, rec)
	s.seq++
	s.pending = s.pending[:0]
	s.haveTrigger = false
}

func (s *Signer) newRecord() *record {
	if n := len(s.spare); n > 0 {
		r := s.spare[n-1]
		s.spare = s.spare[:n-1]
		return r
	}
	return &record{frame: make([]byte, 0, FrameLen(Len(s.prof.Digest, s.per, 0, s.key.pub.alg.SignatureLen())))}
}

// Next returns the next MANIFEST frame due at now, or nil when none is. With
// force, every manifest and copy still to come is due (for a sender that
// stops). The frame stays valid until the next call of Next. An error means
// signing failed; the signer then stays failed.
func (s *Signer) Next(now time.Time, force bool) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	// Recycle the records sent out in earlier calls; the frame returned
	// last must stay valid until now.
	j := 0
	for _, r := range s.recs {
		if r.left > 0 {
			s.recs[j] = r
			j++
		} else {
			s.spare = append(s.spare, r)
		}
	}
	clear(s.recs[j:])
	s.recs = s.recs[:j]

	if s.haveTrigger && (force || !now.Before(s.triggerAt.Add(s.maxDelay))) {
		s.seal(now)
		if s.err != nil {
			return nil, s.err
		}
	}
	for i, r := range s.recs {
		if r.fresh {
			// A new manifest: each older one owes a copy, sent right
			// after it.
			for _, o := range s.recs[:i] {
				if o.left > 0 && !o.fresh {
					o.owed = true
				}
			}
			return s.send(r, now), nil
		}
	}
	for _, r := range s.recs {
		if r.owed {
			return s.send(r, now), nil
		}
	}
	for _, r := range s.recs {
		if r.left > 0 && (force || !now.Before(r.due)) {
			return s.send(r, now), nil
		}
	}
	return nil, nil
}

func (s *Signer) send(r *record, now time.Time) []byte {
	r.fresh, r.owed = false, false
	r.left--
	r.due = now.Add(s.repeatDelay)
	s.stats.Frames++
	return r.frame
}

// Ready reports whether Next has a frame now whatever the time: a new
// manifest, or a copy it makes due.
func (s *Signer) Ready() bool {
	for _, r := range s.recs {
		if r.fresh || r.owed {
			return true
		}
	}
	return false
}

// Deadline returns when Next will next have a frame without more packets
// being added, and false when it never will. A time in the past means now.
func (s *Signer) Deadline() (time.Time, bool) {
	var t time.Time
	ok := false
	if s.haveTrigger {
		t, ok = s.triggerAt.Add(s.maxDelay), true
	}
	for _, r := range s.recs {
		if r.left == 0 {
			continue
		}
		d := r.due
		if r.fresh || r.owed {
			d = time.Time{}
		}
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}

// Stats returns the signer's counters.
func (s *Signer) Stats() SignerStats { return s.stats }
