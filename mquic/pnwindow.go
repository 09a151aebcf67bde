package mquic

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
