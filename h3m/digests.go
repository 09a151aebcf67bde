package h3m

import (
	"net/http"
	"slices"
	"sync"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
)

// This file holds the digests of bodies as they arrive: the packet path
// copies each push's in-order body bytes into blocks, and the Receiver's
// worker hashes the blocks on another core. A push that arrives whole is
// then checked from its digests without reading its body back.

const (
	// digestBlock is the size of the blocks of body bytes handed to the
	// worker: about 55 packets.
	digestBlock = 64 << 10
	// maxDigestQueue caps the bytes waiting in blocks for the worker. A push
	// whose bytes would exceed it stops being hashed on arrival; its
	// verification reads the rest of it back instead.
	maxDigestQueue = 16 << 20
	// maxFreeBlocks caps the blocks kept for reuse.
	maxFreeBlocks = maxDigestQueue / digestBlock
)

// bodyDigests are the digests of a push's body computed as its bytes arrive
// in order.
type bodyDigests struct {
	// The packet path's, under Resource.mu.
	next    int64  // body offset of the next in-order byte
	block   []byte // in-order bytes from next-len(block), not yet queued
	stopped bool   // a gap or a full queue ended hashing on arrival

	// The worker's and the checks', under mu (a leaf lock: taken with no
	// other lock held).
	mu sync.Mutex
	h  *integrity.Hasher // nil: no digest is expected
	n  int64             // bytes hashed: body[0:n]
}

// newHasher prepares the digests a push's checks will need: those its
// response header names or, when it names none (the digests may come in
// trailers), those of the session's digest-algorithm set. It returns nil
// when no digest is expected.
func newHasher(header http.Header, status int, prof Profile) *integrity.Hasher {
	algs := digestAlgorithms(header, status)
	if len(algs) == 0 {
		for _, a := range prof.DigestAlgorithms {
			if c, ok := integrity.CanonicalDigestAlgorithm(a); ok && !slices.Contains(algs, c) {
				algs = append(algs, c)
			}
		}
	}
	if len(algs) == 0 {
		return nil
	}
	h, err := integrity.NewHasher(algs...)
	if err != nil {
		return nil // cannot happen: the names are canonical
	}
	return h
}

// digestLocked takes the body bytes p at body offset off of res (held
// locked) for its digests if they continue the bytes taken so far; after a
// gap the digests stop there, to be finished by a pass over the rest once
// the body is whole (checks.finishDigests). Full blocks go to the worker.
func (r *Receiver) digestLocked(res *Resource, p []byte, off int64) {
	d := &res.digests
	if d.h == nil || d.stopped {
		return
	}
	if off != d.next {
		r.stopDigestsLocked(res)
		return
	}
	for len(p) > 0 {
		if d.block == nil {
			if r.digestQueued+digestBlock > maxDigestQueue {
				// The worker is behind: leave the rest to a read-back.
				r.stopDigestsLocked(res)
				return
			}
			d.block = r.newBlockLocked()
			r.digestQueued += digestBlock
		}
		k := copy(d.block[len(d.block):cap(d.block)], p)
		d.block = d.block[:len(d.block)+k]
		p = p[k:]
		d.next += int64(k)
		if len(d.block) == cap(d.block) {
			r.queueBlockLocked(res)
		}
	}
}

// stopDigestsLocked ends hashing on arrival for res: the bytes gathered so
// far are still hashed.
func (r *Receiver) stopDigestsLocked(res *Resource) {
	res.digests.stopped = true
	r.queueBlockLocked(res)
}

// queueBlockLocked hands res's gathered bytes to the worker.
func (r *Receiver) queueBlockLocked(res *Resource) {
	d := &res.digests
	if d.block == nil {
		return
	}
	if len(d.block) == 0 {
		r.freeBlockLocked(d.block)
	} else {
		r.queueLocked(&r.digestQ, workItem{res: res, block: d.block})
	}
	d.block = nil
}

func (r *Receiver) newBlockLocked() []byte {
	if n := len(r.freeBlocks); n > 0 {
		b := r.freeBlocks[n-1]
		r.freeBlocks = r.freeBlocks[:n-1]
		return b
	}
	return make([]byte, 0, digestBlock)
}

func (r *Receiver) freeBlockLocked(b []byte) {
	r.digestQueued -= digestBlock
	if len(r.freeBlocks) < maxFreeBlocks {
		r.freeBlocks = append(r.freeBlocks, b[:0])
	}
}

// digestsWillCover reports, for a push whose bytes all arrived (locked),
// whether the digests computed on arrival will cover its whole body with
// every algorithm its fields name once the queued blocks are hashed.
func (r *Resource) digestsWillCover() bool {
	algs := digestAlgorithms(h3frame.MergeTrailer(r.response.Header, r.trailer), r.response.Status)
	if len(algs) == 0 {
		return true
	}
	d := &r.digests
	return d.h != nil && !d.stopped && d.next == r.length && covers(d.h, algs)
}

// hashBlock adds a block of res's body to its digests (on the worker, with
// no lock of the Receiver held), unless res was checked or failed already:
// only a push still receiving or waiting for a repair needs them.
func hashBlock(res *Resource, block []byte) {
	if st, _ := res.State(); st == StateComplete || st == StateFailed {
		return
	}
	d := &res.digests
	d.mu.Lock()
	d.h.Write(block)
	d.n += int64(len(block))
	d.mu.Unlock()
}

// digestAlgorithms returns the registry names of the supported algorithms
// the Digest and (for a whole representation) Content-Digest fields name.
// Fields that do not parse name none; the checks report why.
func digestAlgorithms(fields http.Header, status int) []string {
	var algs []string
	add := func(vals []integrity.DigestValue, err error) {
		if err != nil {
			return
		}
		for _, v := range vals {
			if c, ok := integrity.CanonicalDigestAlgorithm(v.Algorithm); ok && !slices.Contains(algs, c) {
				algs = append(algs, c)
			}
		}
	}
	if d := fields.Get(integrity.FieldDigest); d != "" {
		add(integrity.ParseDigest(d))
	}
	if d := fields.Get(integrity.FieldContentDigest); d != "" && status != http.StatusPartialContent {
		add(integrity.ParseContentDigest(d))
	}
	return algs
}
