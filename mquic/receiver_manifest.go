package mquic

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
)

// ErrSymmetric is returned by HandleManifest in a session without
// asymmetric authentication: it has no manifests.
var ErrSymmetric = errors.New("mquic: the session is symmetric: it has no manifests")

// HandleManifest hands the receiver one manifest that came from outside the
// session: over unicast, as spec/unicast.md serves them (application/ambi).
// b holds exactly one encoded manifest. It is checked like one that
// arrived in a MANIFEST frame (stream ID, key, sequence number, plausible
// packet numbers, verification budget, then the signature with the key the
// advertisement pinned), so a manifest from anywhere is as good as its
// signature; its verification budget is its own, which a flood of forged
// manifests in the session does not touch. The held packets it lists are accepted, and their data handed
// to the streams, before HandleManifest returns.
//
// It returns nil for a manifest verified and used, manifest.ErrRepeat for a
// copy of one used already (in-band or earlier), ErrSymmetric in a symmetric
// session, and another error for a manifest that does not parse or was
// rejected. It is safe to call while Run runs.
func (r *Receiver) HandleManifest(b []byte) error {
	if r.auth == nil {
		return ErrSymmetric
	}
	m, n, err := manifest.Parse(b, r.auth.Profile().Digest)
	if err == nil && n != len(b) {
		err = fmt.Errorf("manifest: %d bytes after the manifest", len(b)-n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.mtrack.rejected++
		return fmt.Errorf("mquic: manifest from outside the session: %w", err)
	}
	r.now = r.clock()
	err = r.auth.HandleManifest(&m, r.now)
	switch {
	case err == nil:
		r.mtrack.unicast++
		r.mtrack.mark(&m, false, r.now)
	case errors.Is(err, manifest.ErrRepeat):
		r.mtrack.unicastRepeats++
	default:
		r.mtrack.rejected++
	}
	r.afterBatchLocked(r.now)
	return err
}

// ManifestDigest returns the digest algorithm of the session's manifests (the
// profile's), which a reader of its manifests from outside the session
// needs (manifest.NewStreamReader); 0 in a symmetric session.
func (r *Receiver) ManifestDigest() manifest.DigestAlg {
	if r.auth == nil {
		return 0
	}
	return r.auth.Profile().Digest
}

// noteInBand records the outcome of a manifest that arrived in a MANIFEST
// frame of the session.
func (r *Receiver) noteInBand(m *manifest.Manifest, err error) {
	switch {
	case err == nil:
		r.mtrack.inBand++
		r.mtrack.mark(m, true, r.now)
	case errors.Is(err, manifest.ErrRepeat):
		r.mtrack.seenInBand(m.Seq)
	}
}

// ManifestStatus says what an asymmetric session's authenticator waits for
// and where its manifests came from, so that the layer above can fetch the
// manifests that in-band delivery did not bring (spec/unicast.md).
//
// A held packet is only a claim: any key holder can send packets that no
// manifest will ever list. So the packets worth fetching manifests for are
// those the sequence numbers of the verified manifests show to be missing
// (Missing): consecutive manifests list consecutive packet numbers, so a
// manifest missing between two verified ones lists the packets between
// theirs. Only when no manifest at all was verified yet, or none for
// ReceiverConfig.ManifestOutage (in-band ones do not arrive), are the held
// packets after the newest verified one taken as evidence too.
type ManifestStatus struct {
	// Held is the number of packets with data waiting for a manifest.
	Held int
	// Waiting are the packet numbers of the packets with data that have
	// been held since before the time given to ManifestStatus and that a
	// missing manifest would list: in the packet-number span of a gap of
	// Missing or, when no manifest was verified for ManifestOutage (or none
	// ever), after the newest verified manifest. Merged into ranges, oldest
	// first.
	Waiting []ranges.Range
	// Unexplained counts the held packets with data held since before
	// that time that are not in Waiting: no missing manifest would list
	// them (forged packets, or packets whose manifest is on its way).
	Unexplained int
	// Missing are the gaps in the sequence numbers of the verified
	// manifests (within the last RecentSpan*16 sequence numbers and the
	// replay window), oldest first, with the packet numbers between the
	// manifests around them.
	Missing []SeqGap
	// LastVerified is when a manifest was last verified (zero: never).
	LastVerified time.Time
	// Top is the newest manifest sequence number verified (HaveTop false:
	// none yet).
	Top     uint32
	HaveTop bool
	// Recent counts the manifests verified among the RecentSpan sequence
	// numbers before Top (the newest few are left out: their in-band
	// copies may still be on their way); RecentInBand those of them of
	// which an in-band copy arrived (first or not). Their ratio says
	// whether in-band delivery alone would have done.
	Recent, RecentInBand int
	// InBand and Unicast count the manifests verified from MANIFEST frames
	// and from HandleManifest; UnicastRepeats the manifests given to
	// HandleManifest that were used already; Rejected those it refused.
	InBand, Unicast, UnicastRepeats, Rejected uint64
}

// SeqGap is a run of manifest sequence numbers, First to Last, that no
// verified manifest has, between two that are verified: those manifests
// exist, and list the packet numbers FirstPN to LastPN (none when FirstPN
// > LastPN).
type SeqGap struct {
	First, Last     uint32
	FirstPN, LastPN uint64
}

// RecentSpan is how many manifest sequence numbers ManifestStatus looks
// back for its in-band coverage.
const RecentSpan = 256

// recentSkip leaves the newest sequence numbers out of the coverage.
const recentSkip = 4

// ManifestStatus returns the session's manifest status, listing in Waiting
// the packets held since before heldBefore (at most maxRanges ranges; 0
// means 16, and the oldest packet numbers come first). It reports false for a symmetric session.
func (r *Receiver) ManifestStatus(heldBefore time.Time, maxRanges int) (ManifestStatus, bool) {
	if r.auth == nil {
		return ManifestStatus{}, false
	}
	if maxRanges <= 0 {
		maxRanges = 16
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &r.mtrack
	st := ManifestStatus{
		Top: t.top, HaveTop: t.have,
		InBand: t.inBand, Unicast: t.unicast, UnicastRepeats: t.unicastRepeats, Rejected: t.rejected,
	}
	st.LastVerified = t.lastAt
	st.Missing = t.gaps(r.win.largest, uint64(r.win.size), maxRanges)
	outage := t.lastAt.IsZero() || r.clock().Sub(t.lastAt) >= r.cfg.ManifestOutage
	var after uint64 // packets after the newest verified manifest
	if t.have {
		after = t.spans[t.top%trackSize].last + 1
	}
	var set ranges.Set
	r.auth.EachHeld(func(pn uint64, since time.Time, manifestOnly bool) bool {
		if manifestOnly {
			return true
		}
		st.Held++
		if !since.Before(heldBefore) {
			return true
		}
		if outage && pn >= after || inGaps(st.Missing, pn) {
			set.Add(pn, pn+1)
		} else {
			st.Unexplained++
		}
		return true
	})
	rs := set.Ranges()
	st.Waiting = append([]ranges.Range(nil), rs[:min(len(rs), maxRanges)]...)
	if t.have {
		for i := uint32(recentSkip); i < recentSkip+RecentSpan; i++ {
			seq := t.top - i
			if t.top-seq >= trackSize {
				break
			}
			if t.bit(&t.verified, seq) {
				st.Recent++
				if t.bit(&t.inband, seq) {
					st.RecentInBand++
				}
			}
		}
	}
	return st, true
}

// inGaps reports whether pn is in the packet-number span of one of gaps.
func inGaps(gaps []SeqGap, pn uint64) bool {
	for _, g := range gaps {
		if pn >= g.FirstPN && pn <= g.LastPN {
			return true
		}
	}
	return false
}

// trackSize is how many manifest sequence numbers manifestTrack remembers.
const trackSize = 64 * 64

// manifestTrack remembers, for the last trackSize manifest sequence
// numbers, which were verified, the packet numbers they listed and of which
// an in-band copy arrived, and counts where verified manifests came from.
type manifestTrack struct {
	top              uint32
	have             bool
	verified, inband [64]uint64
	spans            [trackSize]pnSpan // of the verified ones, by seq % trackSize
	lastAt           time.Time         // when a manifest was last verified
	inBand, unicast  uint64
	unicastRepeats   uint64
	rejected         uint64
}

// pnSpan is the first and last packet number a manifest lists.
type pnSpan struct{ first, last uint64 }

// gaps returns, oldest first, at most limit runs of sequence numbers between
// two verified ones that are not verified themselves, leaving out those
// whose packets are all older than the replay window (size below largest).
func (t *manifestTrack) gaps(largest, size uint64, limit int) []SeqGap {
	if !t.have {
		return nil
	}
	var out []SeqGap
	next := t.top // the verified sequence number above the run being scanned
	for back := uint32(1); back < trackSize; back++ {
		seq := t.top - back
		if !t.bit(&t.verified, seq) {
			continue
		}
		sp := t.spans[seq%trackSize]
		if largest > sp.last && largest-sp.last >= size {
			break // this manifest's packets, and those of older ones, are stale
		}
		if seq+1 != next {
			g := SeqGap{First: seq + 1, Last: next - 1, FirstPN: sp.last + 1, LastPN: t.spans[next%trackSize].first}
			if g.LastPN == 0 {
				g.FirstPN = 1 // no packet numbers
			} else {
				g.LastPN--
			}
			out = append(out, g)
		}
		next = seq
	}
	slices.Reverse(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (t *manifestTrack) bit(b *[64]uint64, seq uint32) bool {
	return b[seq/64%64]&(1<<(seq%64)) != 0
}

// advance moves the window so that it holds seq, and reports false for a
// sequence number older than the window.
func (t *manifestTrack) advance(seq uint32) bool {
	if !t.have {
		t.have, t.top = true, seq
		return true
	}
	ahead := seq - t.top
	switch {
	case int32(ahead) <= 0:
		return t.top-seq < trackSize
	case ahead >= trackSize:
		clear(t.verified[:])
		clear(t.inband[:])
	default:
		for s := t.top + 1; s != seq+1; s++ {
			t.verified[s/64%64] &^= 1 << (s % 64)
			t.inband[s/64%64] &^= 1 << (s % 64)
		}
	}
	t.top = seq
	return true
}

// mark records a verified manifest, verified at now.
func (t *manifestTrack) mark(m *manifest.Manifest, inBand bool, now time.Time) {
	t.lastAt = now
	seq := m.Seq
	if !t.advance(seq) {
		return
	}
	t.verified[seq/64%64] |= 1 << (seq % 64)
	t.spans[seq%trackSize] = pnSpan{m.FirstPN, m.LastPN()}
	if inBand {
		t.inband[seq/64%64] |= 1 << (seq % 64)
	}
}

// seenInBand records an in-band copy of a verified manifest.
func (t *manifestTrack) seenInBand(seq uint32) {
	if t.have && t.top-seq < trackSize && int32(seq-t.top) <= 0 {
		t.inband[seq/64%64] |= 1 << (seq % 64)
	}
}

// hashDigests takes the digests of the datagrams of a read that are the
// session's (its source, its session ID), two at a time
// (manifest.SumPair: about the time of one), before they are opened, which
// decrypts them in place. Other datagrams are left to open, which drops
// them without hashing them.
func (r *Receiver) hashDigests(ps []rxPacket) {
	var first *rxPacket
	for j := range ps {
		p := &ps[j]
		if r.source.IsValid() && p.src.Addr().Unmap() != r.source {
			continue
		}
		if dcid, _, err := wire.ParseShortHeader(p.pkt, len(r.sessionID)); err != nil || !bytes.Equal(dcid, r.sessionID) {
			continue
		}
		if first == nil {
			first = p
			continue
		}
		manifest.SumPair(&first.digest, &p.digest, first.pkt, p.pkt)
		first.hashed, p.hashed = true, true
		first = nil
	}
}
