package mcast

import "net/netip"

// Message is one entry of a batch read. The caller sets Buf before ReadBatch;
// afterwards Buf[:N] holds either one datagram (SegSize == 0) or, with GRO,
// several datagrams of SegSize bytes each (the last may be shorter), all from
// Src.
type Message struct {
	// Buf receives the data. With GRO it should be GROBufferSize bytes long.
	Buf []byte
	// N is the number of bytes received into Buf.
	N int
	// SegSize is the size of each coalesced datagram when the kernel
	// delivered a GRO super-packet; 0 means Buf[:N] is a single datagram.
	SegSize int
	// Src is the sender's address.
	Src netip.AddrPort
	// Truncated reports that the kernel had more data than Buf could hold
	// (MSG_TRUNC): the rest of the datagram, or of the GRO super-packet, is
	// lost.
	Truncated bool
}

// Datagrams calls fn for each datagram in m, splitting a GRO super-packet
// into its segments. It does not allocate. p aliases m.Buf.
func (m *Message) Datagrams(fn func(p []byte)) {
	b := m.Buf[:m.N:m.N]
	if m.SegSize <= 0 || m.SegSize >= len(b) {
		fn(b)
		return
	}
	for len(b) > 0 {
		n := min(m.SegSize, len(b))
		fn(b[:n:n])
		b = b[n:]
	}
}

// Count returns how many datagrams m holds.
func (m *Message) Count() int {
	if m.SegSize <= 0 || m.SegSize >= m.N {
		return 1
	}
	return (m.N + m.SegSize - 1) / m.SegSize
}

// BatchWriter writes packets in batches; mquic uses it when the conn offers
// it (tests wrap it to inject loss).
type BatchWriter interface {
	// WriteBatch sends pkts to dst and returns how many of pkts were sent.
	WriteBatch(pkts [][]byte, dst netip.AddrPort) (int, error)
}

// BatchReader reads datagrams in batches.
type BatchReader interface {
	// ReadBatch blocks until at least one message is received and returns
	// how many of msgs were filled.
	ReadBatch(msgs []Message) (int, error)
}
