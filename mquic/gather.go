package mquic

import "time"

// gather decides how long Run's reading goroutine waits after a read that
// took few datagrams before it reads again. A slow flow (a file pushed at
// 100 Mbit/s is about 9 packets per millisecond) would otherwise cost a
// wake-up of the reading goroutine, a hand-off to the goroutine that
// handles packets, and the Go runtime's own wake-ups of idle threads, for
// every packet; waiting lets several datagrams queue in the socket, to be
// read, opened and handed on at once, as a NIC's interrupt coalescing does.
//
// The wait adapts to the flow so that up to about a batch queues
// meanwhile: it halves after every read that fills the batch (which is
// followed by another at once) and doubles (up to max) after every read
// that takes under half of it. max is itself bounded so
// that the socket's receive buffer holds what the session's peak flow rate
// can bring in that time four times over.
type gather struct {
	max  time.Duration // 0: never wait
	wait time.Duration // the current wait; 0 after the flow filled batches
}

// minGather is the shortest wait: Go's timers wait at least about a
// millisecond when the process is otherwise idle, so a shorter wait would
// last that long anyway. Below it the wait is dropped, and a wait starts
// again from here.
const minGather = time.Millisecond

// newGather bounds the wait by maxWait and by what a receive buffer of
// rcvbuf bytes (0: unknown) absorbs at rate bit/s (0: unknown, taken as
// 1 Gbit/s). A datagram takes about twice its size in the buffer.
func newGather(maxWait time.Duration, rcvbuf int, rate uint64) gather {
	if maxWait <= 0 {
		return gather{}
	}
	if rcvbuf > 0 {
		if rate == 0 {
			rate = 1_000_000_000
		}
		absorb := time.Duration(float64(rcvbuf) / 2 / 4 * 8 / float64(rate) * float64(time.Second))
		maxWait = min(maxWait, absorb)
	}
	if maxWait < minGather {
		return gather{}
	}
	return gather{max: maxWait, wait: maxWait}
}

// after takes a read of n datagrams into a batch of size datagrams and
// returns how long to wait before the next read (0: read at once).
func (g *gather) after(n, size int) time.Duration {
	if g.max == 0 {
		return 0
	}
	if n >= size {
		// The flow filled the batch: more than a batch came in the last
		// wait, or the reads are behind. Read on at once.
		if g.wait /= 2; g.wait < minGather {
			g.wait = 0
		}
		return 0
	}
	if 2*n < size {
		g.wait = min(max(2*g.wait, minGather), g.max)
	}
	return g.wait
}
