package mcast

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// BaselineResult is what Baseline measured. Rates are payload rates (UDP
// payload bytes, no headers); Gbps means 10^9 bit/s.
type BaselineResult struct {
	// Sent is the number of datagrams the kernel accepted.
	Sent uint64
	// Received counts distinct datagrams of this run that arrived.
	Received uint64
	// Lost is Sent - Received.
	Lost uint64
	// Duplicates counts extra copies of datagrams already received.
	Duplicates uint64
	// Elapsed is the sending time.
	Elapsed time.Duration
	// RecvElapsed is the time from the start of sending to the last
	// datagram received.
	RecvElapsed time.Duration
	// SendPPS and SendGbps are Sent over Elapsed.
	SendPPS, SendGbps float64
	// RecvPPS and RecvGbps are Received over RecvElapsed.
	RecvPPS, RecvGbps float64
	// Size is the datagram size; GSO and GRO report whether the conns used
	// them at the end of the run.
	Size     int
	GSO, GRO bool
}

// String formats the result on one line.
func (r BaselineResult) String() string {
	loss := 0.0
	if r.Sent > 0 {
		loss = 100 * float64(r.Lost) / float64(r.Sent)
	}
	return fmt.Sprintf("size=%d gso=%v gro=%v sent=%d (%.0f pps, %.2f Gbit/s) received=%d (%.0f pps, %.2f Gbit/s) lost=%d (%.2f%%) dup=%d",
		r.Size, r.GSO, r.GRO, r.Sent, r.SendPPS, r.SendGbps, r.Received, r.RecvPPS, r.RecvGbps, r.Lost, loss, r.Duplicates)
}

// baselineHeader is the run identifier and the sequence number at the start
// of every baseline datagram.
const baselineHeader = 16

// Baseline sends fixed-size datagrams (size bytes, carrying a run identifier
// and a sequence number) from snd to snd's group for dur, paced to pps
// packets per second (0 = as fast as possible), receives them on rcv, and
// reports what was sent and received. It uses the conns' own technique:
// WriteBatch (with GSO if snd has it) and ReadBatch (with GRO if rcv has it).
// It is the project's raw-UDP baseline against which the transport's rates
// are compared. It leaves both conns open; rcv's read deadline is reset to
// none on return.
func Baseline(ctx context.Context, snd, rcv *Conn, size int, dur time.Duration, pps int) (BaselineResult, error) {
	res := BaselineResult{Size: size}
	if size < baselineHeader || size > MaxGSOBytes {
		return res, fmt.Errorf("mcast: Baseline size %d out of range [%d, %d]", size, baselineHeader, MaxGSOBytes)
	}
	if snd.Group() != rcv.Group() {
		return res, fmt.Errorf("mcast: Baseline sender group %v differs from receiver group %v", snd.Group(), rcv.Group())
	}
	if dur <= 0 || pps < 0 {
		return res, fmt.Errorf("mcast: Baseline needs dur > 0 and pps >= 0 (got %v, %d)", dur, pps)
	}
	runID := rand.Uint64()

	// Batch size: at a pace, small enough that a batch leaves about every
	// half millisecond; unpaced, a few GSO super-packets per sendmmsg.
	batch := 2 * snd.MaxSegments()
	if pps > 0 {
		batch = min(max(pps/2000, 1), batch)
	}
	bufs := make([][]byte, batch)
	pkts := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, size)
		binary.BigEndian.PutUint64(bufs[i], runID)
	}

	var sent atomic.Uint64 // sequence numbers below this may have been sent
	start := time.Now()
	recv := &baselineReceiver{conn: rcv, runID: runID, size: size, sent: &sent, start: start}
	if pps > 0 {
		recv.seen = make([]uint64, (uint64(pps)*uint64(dur/time.Millisecond)/1000+64)/64+1)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		recv.run()
	}()

	dst := snd.Group()
	var seq uint64
	var sendErr error
	deadline := start.Add(dur)
	for {
		now := time.Now()
		if !now.Before(deadline) || ctx.Err() != nil {
			break
		}
		if pps > 0 {
			due := start.Add(time.Duration(float64(seq) / float64(pps) * float64(time.Second)))
			if d := due.Sub(now); d > 0 {
				time.Sleep(d)
				continue
			}
		}
		for i := range pkts {
			binary.BigEndian.PutUint64(bufs[i][8:], seq+uint64(i))
			pkts[i] = bufs[i]
		}
		sent.Store(seq + uint64(len(pkts)))
		n, err := snd.WriteBatch(pkts, dst)
		seq += uint64(n)
		sent.Store(seq)
		if err != nil {
			sendErr = err
			break
		}
	}
	res.Elapsed = time.Since(start)
	res.Sent = seq

	// Drain: wait until everything arrived or nothing has arrived for a
	// while, then stop the reader with a deadline.
	quiet := 100 * time.Millisecond
	limit := time.Now().Add(2 * time.Second)
	last, lastChange := recv.count.Load(), time.Now()
	for time.Now().Before(limit) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		c := recv.count.Load()
		if c >= res.Sent {
			break
		}
		if c != last {
			last, lastChange = c, time.Now()
		} else if time.Since(lastChange) > quiet {
			break
		}
	}
	if err := rcv.SetReadDeadline(time.Now()); err != nil {
		return res, fmt.Errorf("mcast: Baseline: stopping receiver: %w", err)
	}
	wg.Wait()
	if err := rcv.SetReadDeadline(time.Time{}); err != nil {
		return res, fmt.Errorf("mcast: Baseline: resetting receiver deadline: %w", err)
	}

	res.Received = recv.count.Load()
	res.Duplicates = recv.dups
	res.Lost = res.Sent - res.Received
	res.RecvElapsed = recv.last
	res.GSO, res.GRO = snd.GSO(), rcv.GRO()
	if s := res.Elapsed.Seconds(); s > 0 {
		res.SendPPS = float64(res.Sent) / s
		res.SendGbps = res.SendPPS * float64(size) * 8 / 1e9
	}
	if s := res.RecvElapsed.Seconds(); s > 0 {
		res.RecvPPS = float64(res.Received) / s
		res.RecvGbps = res.RecvPPS * float64(size) * 8 / 1e9
	}
	switch {
	case sendErr != nil:
		return res, fmt.Errorf("mcast: Baseline send: %w", sendErr)
	case recv.err != nil:
		return res, fmt.Errorf("mcast: Baseline receive: %w", recv.err)
	}
	return res, ctx.Err()
}

// baselineReceiver counts the distinct datagrams of one Baseline run.
type baselineReceiver struct {
	conn  *Conn
	runID uint64
	size  int
	sent  *atomic.Uint64
	start time.Time

	count atomic.Uint64 // distinct datagrams of this run
	seen  []uint64      // bitmap by sequence number
	dups  uint64
	last  time.Duration // since start, of the last datagram of this run
	err   error
}

func (r *baselineReceiver) run() {
	n, bufSize := 64, max(r.size, 2048)
	if r.conn.GRO() {
		n, bufSize = 16, GROBufferSize
	}
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, bufSize)
	}
	for {
		k, err := r.conn.ReadBatch(msgs)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				r.err = err
			}
			return
		}
		got := false
		for i := range msgs[:k] {
			msgs[i].Datagrams(func(p []byte) {
				if r.datagram(p) {
					got = true
				}
			})
		}
		if got {
			r.last = time.Since(r.start)
		}
	}
}

// datagram records p and reports whether it belonged to this run.
func (r *baselineReceiver) datagram(p []byte) bool {
	if len(p) != r.size || binary.BigEndian.Uint64(p) != r.runID {
		return false
	}
	seq := binary.BigEndian.Uint64(p[8:])
	if seq >= r.sent.Load() {
		return false // not a sequence number this run produced
	}
	w := seq / 64
	if w >= uint64(len(r.seen)) {
		r.seen = append(r.seen, make([]uint64, max(w+1-uint64(len(r.seen)), uint64(len(r.seen))))...)
	}
	bit := uint64(1) << (seq % 64)
	if r.seen[w]&bit != 0 {
		r.dups++
		return true
	}
	r.seen[w] |= bit
	r.count.Add(1)
	return true
}
