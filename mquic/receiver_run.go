package mquic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
)

// Run's pipeline. One goroutine reads batches of datagrams; the datagrams of
// a batch are opened in parts (each packet independently: header
// protection, AEAD, frames, digest) by whichever of the reader, Workers-1
// more goroutines and the goroutine that called Run takes a part first; the
// goroutine that opens the last part verifies the batch's manifest
// signatures together; and the goroutine that called Run then processes
// the packets in the order they were read (replay window, authentication,
// reassembly, handlers). Reading, opening and processing of consecutive
// batches overlap; parts go to whoever is free, so a worker that the
// machine does not schedule holds nothing up. Batches are preallocated and
// recycled: nothing is allocated per packet (a batch verification of
// several signatures allocates its own working space, once per batch).

// pipelineBatches is how many batches are in flight: one read, one opened,
// one processed.
const pipelineBatches = 3

// minPerWorker is the fewest datagrams worth handing to another goroutine.
const minPerWorker = 8

// rxBatch is one read of Run's pipeline.
type rxBatch struct {
	msgs  []mcast.Message
	pkts  []rxPacket
	parts []opener // frame space for each goroutine that opens a part
	now   time.Time
	tick  bool  // a read deadline passed: no datagrams
	full  bool  // the read filled its batch: the socket may hold more
	err   error // the read failed: Run ends

	// Snapshot of the ordered state the openers decode against.
	largest uint64
	have    bool
	pnLen   int

	// The manifests claimed for verification while the parts were opened,
	// verified together by the goroutine that opens the last part.
	claimed []*rxManifest
	cms     []*manifest.Manifest
	csigs   []manifest.Signature
	verify  manifest.Batch

	nparts  int
	next    atomic.Int32  // the next part to take
	pending atomic.Int32  // parts not opened yet
	opened  chan struct{} // the last part to finish signals
	// users counts the workers handed this batch that have not left
	// openParts yet. A worker may still look at next after the last part
	// was opened; the batch is recycled only once users is 0, so that no
	// worker ever touches a batch that is being refilled. The worker that
	// brings users to 0 leaves a token in left (see release).
	users atomic.Int32
	left  chan struct{}
}

// leave is a worker's last touch of the batch: it no longer uses it.
func (b *rxBatch) leave() {
	if b.users.Add(-1) == 0 {
		select {
		case b.left <- struct{}{}:
		default: // a token is there already
		}
	}
}

// part returns the datagrams of part i of n.
func (b *rxBatch) part(i int) []rxPacket {
	n := len(b.pkts)
	return b.pkts[i*n/b.nparts : (i+1)*n/b.nparts]
}

// openParts opens parts of the batch, with o's protector, until none is
// left to take.
func (b *rxBatch) openParts(o *opener) {
	for {
		i := int(b.next.Add(1)) - 1
		if i >= b.nparts {
			return
		}
		b.openPart(i, o)
	}
}

// openPart opens part i with o's protector.
func (b *rxBatch) openPart(i int, prot *opener) {
	o := &b.parts[i]
	o.r, o.prot, o.pre, o.now, o.ahead = prot.r, prot.prot, prot.pre, b.now, true
	o.reset()
	ps := b.part(i)
	if o.r.asym {
		o.r.hashDigests(ps)
	}
	for j := range ps {
		o.open(&ps[j], b.largest, b.have, b.pnLen)
	}
	if b.pending.Add(-1) == 0 {
		if o.pre != nil {
			b.verifyClaimed(o.pre)
		}
		b.opened <- struct{}{}
	}
}

// verifyClaimed verifies with pre, in one batch, the signatures of the
// manifests that were claimed for verification while the batch's parts were
// opened (see opener.parse). Batch verification costs less per signature
// the more there are, which is why the parts' openers only claim their
// manifests.
func (b *rxBatch) verifyClaimed(pre *manifest.Prechecker) {
	b.claimed, b.cms = b.claimed[:0], b.cms[:0]
	for i := range b.pkts {
		p := &b.pkts[i]
		for j := range p.mans {
			if rm := &p.mans[j]; rm.claimed {
				b.claimed = append(b.claimed, rm)
				b.cms = append(b.cms, &rm.m)
			}
		}
	}
	if len(b.claimed) == 0 {
		return
	}
	b.csigs = slices.Grow(b.csigs[:0], len(b.claimed))[:len(b.claimed)] // kept from batch to batch
	pre.VerifyClaimed(b.cms, b.csigs, b.now, &b.verify)
	for i, rm := range b.claimed {
		rm.sig = b.csigs[i]
	}
}

// release returns b to free once no worker holds it any more. A worker
// handed the batch may not have been scheduled yet when the batch is done
// (the others opened its part): release then sleeps until that worker
// leaves, rather than yield in a loop — on a machine whose cores are busy,
// those yields cost a tenth of the receiver's CPU. A token left by an
// earlier round is taken and users looked at again.
func (b *rxBatch) release(free chan<- *rxBatch) {
	for b.users.Load() != 0 {
		<-b.left
	}
	free <- b
}

// Run reads and handles packets until ctx ends (it returns nil), the
// session idle timeout passes without a packet (ErrIdleTimeout), or reading
// fails. Handlers are called on Run's goroutine (see Receiver). Run must be
// called once.
func (r *Receiver) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("mquic: receiver: Run called twice")
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	wake := context.AfterFunc(ctx, func() { _ = r.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer wake()

	size, perMsg := 1<<16, 1
	if r.batchR != nil {
		size = 4096
		if g, ok := r.conn.(interface{ GRO() bool }); ok && g.GRO() {
			size, perMsg = mcast.GROBufferSize, mcast.MaxGSOSegments
		}
	}
	nmsgs := 1
	if r.batchR != nil {
		nmsgs = r.cfg.ReadBatch
	}
	free := make(chan *rxBatch, pipelineBatches)
	for range pipelineBatches {
		b := &rxBatch{msgs: make([]mcast.Message, nmsgs), pkts: make([]rxPacket, 0, nmsgs*perMsg),
			parts: make([]opener, 2*r.workers), opened: make(chan struct{}, 1), left: make(chan struct{}, 1)}
		for i := range b.msgs {
			b.msgs[i].Buf = make([]byte, size)
		}
		free <- b
	}
	ordered := make(chan *rxBatch, pipelineBatches)
	tickDone := make(chan struct{}, 1)
	var wg sync.WaitGroup
	work := make([]chan *rxBatch, r.workers-1)
	for i := range work {
		// Unbuffered: a batch is handed only to a worker waiting for one,
		// never queued for a worker that is behind.
		work[i] = make(chan *rxBatch)
		o := r.newOpener(r.prot.Clone())
		o.pre = r.pre
		wg.Go(func() {
			for b := range work[i] {
				b.openParts(&o)
				b.leave()
			}
		})
	}
	wg.Go(func() { r.read(ctx, free, ordered, work, tickDone) })
	defer wg.Wait()

	r.mu.Lock()
	r.lastPacket = r.clock()
	deadline := r.nextDeadline()
	r.mu.Unlock()
	if err := r.setDeadline(ctx, deadline); err != nil {
		return err
	}
	help := r.newOpener(r.prot.Clone())
	help.pre = r.pre
	var runErr error
	for b := range ordered {
		b.openParts(&help) // parts nobody has taken yet
		<-b.opened
		if b.err != nil || runErr != nil || ctx.Err() != nil {
			if runErr == nil && b.err != nil && ctx.Err() == nil {
				runErr = fmt.Errorf("mquic: receiver read: %w", b.err)
			}
			stop()
			b.release(free)
			continue
		}
		r.mu.Lock()
		r.now, r.readFull = b.now, b.full
		for i := range b.pkts {
			r.process(&b.pkts[i])
		}
		r.afterBatchLocked(b.now)
		idle := r.idle > 0 && b.now.Sub(r.lastPacket) >= r.idle
		if r.win.have {
			r.base.Store(r.win.largest + 1)
		}
		next := r.nextDeadline()
		r.mu.Unlock()
		if !next.Equal(deadline) || b.tick {
			deadline = next
			if err := r.setDeadline(ctx, deadline); err != nil {
				runErr = err
				stop()
			}
		}
		if b.tick {
			tickDone <- struct{}{}
		}
		b.release(free)
		if idle && runErr == nil {
			r.log.Info("session idle timeout", "timeout", r.idle)
			runErr = ErrIdleTimeout
			stop()
		}
	}
	return runErr
}

// setDeadline sets the read deadline to t on the receiver's clock, unless
// ctx has ended (its AfterFunc set a past deadline to end the read, which
// must stay). The deadline is set as far from the real time as t is from
// the clock's, so that a test's clock wakes Run as the real one would.
func (r *Receiver) setDeadline(ctx context.Context, t time.Time) error {
	if !t.IsZero() {
		t = time.Now().Add(t.Sub(r.clock()))
	}
	if err := r.conn.SetReadDeadline(t); err != nil {
		return fmt.Errorf("mquic: receiver: %w", err)
	}
	if ctx.Err() != nil {
		_ = r.conn.SetReadDeadline(time.Unix(1, 0))
	}
	return nil
}

// read is the pipeline's reading goroutine: it reads batches, opens them
// with the workers, and passes them on in order. It ends when ctx ends or a
// read fails, closing ordered and the workers' channels.
func (r *Receiver) read(ctx context.Context, free chan *rxBatch, ordered chan<- *rxBatch, work []chan *rxBatch, tickDone <-chan struct{}) {
	defer close(ordered)
	defer func() {
		for _, w := range work {
			close(w)
		}
	}()
	own := r.newOpener(r.prot.Clone())
	own.pre = r.pre
	g := r.newGather()
	var gatherTimer *time.Timer
	for {
		var b *rxBatch
		select {
		case b = <-free:
		case <-ctx.Done():
			return
		}
		n, err := r.readBatch(b)
		b.now = r.clock()
		b.pkts, b.tick, b.err = b.pkts[:0], false, nil
		b.full = n > 1 && n == len(b.msgs) // one datagram per read tells nothing
		for i := range b.msgs[:n] {
			m := &b.msgs[i]
			d := m.Buf[:m.N:m.N]
			seg := m.SegSize
			if seg <= 0 || seg >= len(d) {
				seg = len(d)
			}
			for {
				k := min(seg, len(d))
				b.pkts = append(b.pkts, rxPacket{pkt: d[:k:k], src: m.Src})
				if d = d[k:]; len(d) == 0 {
					break // an empty datagram is one too
				}
			}
		}
		stopping := false
		switch {
		case err == nil:
		case ctx.Err() != nil:
			stopping = true
		case errors.Is(err, os.ErrDeadlineExceeded):
			b.tick = n == 0
		default:
			b.err, stopping = err, true
		}
		base := r.base.Load()
		b.largest, b.have, b.pnLen = base-1, base > 0, int(r.pnLenAt.Load())
		b.nparts = min(len(b.parts), max(1, len(b.pkts)/minPerWorker))
		b.next.Store(0)
		b.pending.Store(int32(b.nparts))
		for _, w := range work[:min(len(work), b.nparts-1)] {
			b.users.Add(1)
			select {
			case w <- b:
			default: // that worker is busy: the others take its part
				b.users.Add(-1)
			}
		}
		b.openParts(&own)
		var wait time.Duration
		if err == nil {
			// Datagrams, not messages: a GRO buffer of many is a full read.
			wait = g.after(len(b.pkts), len(b.msgs))
		}
		ordered <- b
		if stopping {
			return
		}
		if wait > 0 {
			// Few datagrams came: let more gather in the socket (see gather).
			if gatherTimer == nil {
				gatherTimer = time.NewTimer(wait)
			} else {
				gatherTimer.Reset(wait)
			}
			select {
			case <-gatherTimer.C:
			case <-ctx.Done():
				return
			}
		}
		if b.tick {
			// Wait until the deadline has been moved on.
			select {
			case <-tickDone:
			case <-ctx.Done():
				return
			}
		}
	}
}

// newGather sizes the reading goroutine's waits for the session's rate and
// the socket's receive buffer.
func (r *Receiver) newGather() gather {
	if r.batchR == nil {
		return gather{} // one datagram per read: waiting gathers nothing
	}
	rcvbuf := 0
	if c, ok := r.conn.(interface{ RecvBufferSize() int }); ok {
		rcvbuf = c.RecvBufferSize()
	}
	return newGather(r.gather, rcvbuf, r.cfg.Params.PeakFlowRate)
}

// readBatch reads into b.msgs and returns how many messages it filled.
func (r *Receiver) readBatch(b *rxBatch) (int, error) {
	if r.batchR != nil {
		return r.batchR.ReadBatch(b.msgs)
	}
	m := &b.msgs[0]
	n, from, err := r.conn.ReadFrom(m.Buf)
	if n <= 0 {
		return 0, err
	}
	m.N, m.SegSize, m.Src, m.Truncated = n, 0, addrPort(from), false
	return 1, err
}

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	return netip.AddrPort{}
}
