package mquic

import "time"

// pnWindow tracks which recent packet numbers have been received: it rejects
// duplicates and packets too old to judge (replay protection), and counts
// packet-number gaps as losses.
type pnWindow struct {
	bits    []uint64 // ring of size bits, indexed by pn mod size
	size    uint64
	largest uint64
	have    bool
	missing uint64 // packet numbers skipped and not (yet) received
}

func newPNWindow(size int) pnWindow {
	words := (size + 63) / 64
	return pnWindow{bits: make([]uint64, words), size: uint64(words * 64)}
}

// verdict of pnWindow.check.
const (
	pnNew = iota
	pnDuplicate
	pnStale
)

// check says whether pn would be new, a duplicate, or older than the window.
func (w *pnWindow) check(pn uint64) int {
	if !w.have || pn > w.largest {
		return pnNew
	}
	if w.largest-pn >= w.size {
		return pnStale
	}
	if w.bits[(pn%w.size)/64]&(1<<(pn%64)) != 0 {
		return pnDuplicate
	}
	return pnNew
}

// mark records pn as received (check must have returned pnNew). It returns
// whether pn filled an earlier gap (a reordered packet).
func (w *pnWindow) mark(pn uint64) (late bool) {
	switch {
	case !w.have:
		w.have = true
		w.largest = pn
	case pn > w.largest:
		gap := pn - w.largest - 1
		w.missing += gap
		// Clear the slots of the skipped numbers and of pn itself.
		if gap+1 >= w.size {
			clear(w.bits)
		} else {
			for p := w.largest + 1; p <= pn; p++ {
				w.bits[(p%w.size)/64] &^= 1 << (p % 64)
			}
		}
		w.largest = pn
	default:
		late = true
		if w.missing > 0 {
			w.missing--
		}
	}
	w.bits[(pn%w.size)/64] |= 1 << (pn % 64)
	return late
}

// pnTracker is the receiver's replay window (the main pnWindow) hardened
// against packet-number jumps (spec/transport.md, "Packet-number jumps"):
// one authenticated packet may move the largest packet number by at most
// maxJump. A packet further ahead, or below the window, falls in an
// alternative region, tracked by a window of its own; the main window moves
// to a region once that has received confirm packets while the main window
// received none for silence. A forged packet far ahead thus never strands
// the real packets after it, and a receiver whose window was moved away
// from them (by a forger that jumped while the sender was silent, or by a
// sender restarted with the same keys) follows them back once they keep
// arriving.
type pnTracker struct {
	pnWindow
	maxJump uint64
	confirm int
	silence time.Duration
	lastAt  time.Time // when the main window last accepted a packet
	alts    [pnAlts]pnRegion
	leaps   uint64 // packets accepted beyond maxJump ahead
	moves   uint64 // times the main window moved to another region
}

// pnAlts is how many alternative regions a pnTracker follows at once.
const pnAlts = 4

// pnRegion is an alternative region of packet numbers.
type pnRegion struct {
	win  pnWindow  // win.have: the region is in use
	n    int       // packets accepted in it since it became a region
	last time.Time // when it last accepted one
}

func newPNTracker(size int, maxJump uint64, confirm int, silence time.Duration) pnTracker {
	t := pnTracker{pnWindow: newPNWindow(size), maxJump: maxJump, confirm: max(confirm, 1), silence: silence}
	for i := range t.alts {
		t.alts[i].win = newPNWindow(size)
	}
	return t
}

// pnAhead is the verdict of pnTracker.check for a packet beyond maxJump
// ahead of the main window, not seen before.
const pnAhead = pnStale + 1

// covers reports whether pn is within w or at most maxJump ahead of it.
func covers(w *pnWindow, pn, maxJump uint64) bool {
	if pn > w.largest {
		return pn-w.largest <= maxJump
	}
	return w.largest-pn < w.size
}

// check says what pn is: new within the main window or at most maxJump
// ahead of it (pnNew), further ahead and not seen (pnAhead), below the main
// window and not seen (pnStale), or a duplicate in the main window or in an
// alternative region (pnDuplicate).
func (t *pnTracker) check(pn uint64) int {
	if !t.have || covers(&t.pnWindow, pn, t.maxJump) {
		return t.pnWindow.check(pn)
	}
	if r := t.region(pn); r != nil && r.win.check(pn) == pnDuplicate {
		return pnDuplicate
	}
	if pn > t.largest {
		return pnAhead
	}
	return pnStale
}

// region returns the alternative region pn falls in, or nil.
func (t *pnTracker) region(pn uint64) *pnRegion {
	for i := range t.alts {
		if r := &t.alts[i]; r.win.have && covers(&r.win, pn, t.maxJump) {
			return r
		}
	}
	return nil
}

// markAt records authenticated packet pn at now (check must have said
// pnNew, pnAhead or pnStale). It returns whether pn filled an earlier gap
// and whether its frames are to be handled: a packet below the window is
// recorded in its region but not delivered unless the window moves there
// with it (it may be a replay of old packets).
func (t *pnTracker) markAt(pn uint64, now time.Time) (late, deliver bool) {
	if !t.have || covers(&t.pnWindow, pn, t.maxJump) {
		t.lastAt = now
		return t.mark(pn), true
	}
	ahead := pn > t.largest
	if ahead {
		t.leaps++
	}
	r := t.region(pn)
	if r == nil {
		// A new region replaces the one with the fewest packets: a forger's
		// scattered packets go before a region that keeps receiving.
		r = &t.alts[0]
		for i := range t.alts {
			a := &t.alts[i]
			if !a.win.have {
				r = a
				break
			}
			if a.n < r.n || a.n == r.n && a.last.Before(r.last) {
				r = a
			}
		}
		clear(r.win.bits)
		r.win.have, r.win.missing, r.n = false, 0, 0
	}
	r.win.mark(pn)
	r.n++
	r.last = now
	if r.n < t.confirm || now.Sub(t.lastAt) < t.silence {
		return false, ahead
	}
	// The region kept receiving while the main window heard nothing: the
	// main window moves there, and the old one becomes a region (whose
	// packets are recognized as duplicates).
	old := t.pnWindow
	t.pnWindow, r.win = r.win, old
	t.missing, r.win.missing = old.missing, 0
	r.n, r.last = 0, now
	t.lastAt = now
	t.moves++
	return false, true
}
