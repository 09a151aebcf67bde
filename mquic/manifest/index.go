package manifest

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// The Authenticator finds its held packets and waiting digests by packet
// number and its held packets by SHA-256 several times per packet. Go maps
// did that at a cost the profiles showed (hashing, probing, growing,
// deleting); the two indexes below are written for the shapes of these
// keys. Go has no library for either.

// pnIndex maps packet numbers to slots (non-negative int32). A session's
// packet numbers come in a band that moves up: the ring, indexed by packet
// number modulo its size, holds those of a band narrower than the ring
// without hashing or probing. A number whose ring entry holds another number
// (one far ahead or behind, a forger's, or a ring smaller than the band)
// goes to an overflow map, which Go's randomized hashing keeps cheap
// whatever numbers a forger picks: a forger can push real numbers out of
// the ring, which then cost what a map costs, and nothing more. Each number
// is in one place at most: set updates it where it is.
type pnIndex struct {
	ring []pnEntry // len a power of two
	mask uint64
	over map[uint64]int32 // made on the first collision
}

type pnEntry struct {
	pn    uint64
	slot1 uint32 // slot+1; 0: empty
}

// maxRing bounds a ring's entries (16 bytes each).
const maxRing = 1 << 14

// newPNIndex returns an index whose ring holds a band of at least n packet
// numbers (within maxRing).
func newPNIndex(n int) pnIndex {
	size := ringSize(n)
	return pnIndex{ring: make([]pnEntry, size), mask: uint64(size - 1)}
}

// ringSize is the power of two at least n, within 64 and maxRing.
func ringSize(n int) int {
	n = min(max(n, 64), maxRing)
	return 1 << bits.Len(uint(n-1))
}

// get returns the slot of pn, or -1 and false.
func (x *pnIndex) get(pn uint64) (int32, bool) {
	if e := &x.ring[pn&x.mask]; e.slot1 != 0 && e.pn == pn {
		return int32(e.slot1 - 1), true
	}
	if len(x.over) == 0 {
		return -1, false
	}
	if s, ok := x.over[pn]; ok {
		return s, true
	}
	return -1, false
}

// has reports whether pn has a slot.
func (x *pnIndex) has(pn uint64) bool {
	_, ok := x.get(pn)
	return ok
}

// set gives pn the slot.
func (x *pnIndex) set(pn uint64, slot int32) {
	e := &x.ring[pn&x.mask]
	if e.slot1 != 0 && e.pn == pn {
		e.slot1 = uint32(slot) + 1
		return
	}
	if len(x.over) > 0 {
		if _, ok := x.over[pn]; ok {
			x.over[pn] = slot
			return
		}
	}
	if e.slot1 == 0 {
		e.pn, e.slot1 = pn, uint32(slot)+1
		return
	}
	if x.over == nil {
		x.over = make(map[uint64]int32)
	}
	x.over[pn] = slot
}

// del removes pn.
func (x *pnIndex) del(pn uint64) {
	if e := &x.ring[pn&x.mask]; e.slot1 != 0 && e.pn == pn {
		e.slot1 = 0
		return
	}
	if len(x.over) > 0 {
		delete(x.over, pn)
	}
}

// len returns how many packet numbers have a slot (for tests).
func (x *pnIndex) len() int {
	n := len(x.over)
	for _, e := range x.ring {
		if e.slot1 != 0 {
			n++
		}
	}
	return n
}

// digestIndex finds held packets by SHA-256: an open-addressed table with
// linear probing and backward-shift deletion (no tombstones), that grows to
// keep its load at most a half. A packet's SHA-256 is chosen by whoever
// sends it, so the table is indexed by a secret hash of it: the first 8
// bytes XORed with one random key and multiplied by another, odd
// (multiply-shift hashing), whose top bits are the home. A forger who does
// not know the keys can only grind bits of its digests (each bit doubles
// its work) and leave the rest random, which the product carries into the
// top bits: it cannot pile its packets into one run of the table. The
// hash of the first 8 bytes is a bijection of them: equal tags mean equal
// first 8 bytes, and only then are the whole digests compared.
type digestIndex struct {
	e      []digestEntry // len a power of two
	shift  uint          // 64 - log2(len(e))
	n      int
	k0, k1 uint64
}

type digestEntry struct {
	tag   uint64
	slot1 uint32 // slot+1; 0: empty
}

// newDigestIndex returns an empty index sized for n entries.
func newDigestIndex(n int) digestIndex {
	var k [16]byte
	_, _ = rand.Read(k[:]) // never fails (crypto/rand)
	x := digestIndex{k0: binary.LittleEndian.Uint64(k[:8]), k1: binary.LittleEndian.Uint64(k[8:]) | 1}
	x.alloc(ringSize(2 * n))
	return x
}

func (x *digestIndex) alloc(size int) {
	x.e = make([]digestEntry, size)
	x.shift = uint(64 - bits.TrailingZeros(uint(size)))
}

func (x *digestIndex) tag(d *Digest) uint64 {
	return (binary.LittleEndian.Uint64(d[:8]) ^ x.k0) * x.k1
}

// find returns the slot of q whose packet's digest is d, or -1.
func (x *digestIndex) find(d *Digest, q *fifo[heldPacket]) int32 {
	t := x.tag(d)
	mask := uint64(len(x.e) - 1)
	for i := t >> x.shift; ; i = (i + 1) & mask {
		e := &x.e[i]
		if e.slot1 == 0 {
			return -1
		}
		if e.tag == t && q.at(int32(e.slot1-1)).d == *d {
			return int32(e.slot1 - 1)
		}
	}
}

// add indexes slot, whose digest is d (not indexed yet).
func (x *digestIndex) add(d *Digest, slot int32) {
	if 2*(x.n+1) > len(x.e) {
		old := x.e
		x.alloc(2 * len(old))
		for _, e := range old {
			if e.slot1 != 0 {
				x.put(e)
			}
		}
	}
	x.put(digestEntry{tag: x.tag(d), slot1: uint32(slot) + 1})
	x.n++
}

func (x *digestIndex) put(e digestEntry) {
	mask := uint64(len(x.e) - 1)
	i := e.tag >> x.shift
	for x.e[i].slot1 != 0 {
		i = (i + 1) & mask
	}
	x.e[i] = e
}

// remove unindexes slot, whose digest is d.
func (x *digestIndex) remove(d *Digest, slot int32) {
	t := x.tag(d)
	mask := uint64(len(x.e) - 1)
	i := t >> x.shift
	for x.e[i].slot1 != uint32(slot)+1 {
		if x.e[i].slot1 == 0 {
			return // not indexed
		}
		i = (i + 1) & mask
	}
	// Move back each later entry of the run that may sit at i: one whose
	// home is not cyclically in (i, j].
	for j := (i + 1) & mask; x.e[j].slot1 != 0; j = (j + 1) & mask {
		if home := x.e[j].tag >> x.shift; (j-home)&mask >= (j-i)&mask {
			x.e[i] = x.e[j]
			i = j
		}
	}
	x.e[i] = digestEntry{}
	x.n--
}
