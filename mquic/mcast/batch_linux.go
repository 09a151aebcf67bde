//go:build linux

package mcast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The batch paths call sendmmsg/recvmmsg directly through syscall.RawConn:
// x/net's ReadBatch allocates a *net.UDPAddr per message, and raw calls with
// preallocated mmsghdr/iovec/sockaddr/cmsg arrays allocate nothing per call.
// The closures handed to RawConn are method values built once at open.

const (
	cmsgAlign    = int(unsafe.Sizeof(uintptr(0))) // the kernel aligns cmsgs to sizeof(long)
	cmsgHdrSpace = (unix.SizeofCmsghdr + cmsgAlign - 1) &^ (cmsgAlign - 1)
	// gsoCmsgSpace is CMSG_SPACE(sizeof(u16)) for UDP_SEGMENT; a multiple of 8.
	gsoCmsgSpace = cmsgHdrSpace + (2+cmsgAlign-1)&^(cmsgAlign-1)
	// recvOOBSpace holds UDP_GRO (an int) with room for anything else.
	recvOOBSpace = 64
)

const (
	enobufsRetries  = 12 // about 100 ms of backoff in total
	enobufsBackoff0 = 25 * time.Microsecond
)

// writer is the preallocated state of WriteBatch.
type writer struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	runs []int // packets carried by each hdr
	oob  []uint64
	sa   unix.RawSockaddrInet6 // destination; also holds a RawSockaddrInet4

	off, cnt int           // syscall arguments
	n        int           // syscall result
	errno    syscall.Errno // syscall error
	fn       func(fd uintptr) bool
}

func (w *writer) do(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&w.hdrs[w.off])), uintptr(w.cnt), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until writable (or the deadline)
		}
		w.n, w.errno = int(r), e
		return true
	}
}

func (w *writer) grow(n int) {
	if len(w.hdrs) >= n {
		return
	}
	n = max(n, 64)
	w.hdrs = make([]unix.Mmsghdr, n)
	w.iovs = make([]unix.Iovec, n)
	w.runs = make([]int, n)
	w.oob = make([]uint64, n*gsoCmsgSpace/8)
}

func (w *writer) oobBytes(i int) []byte {
	words := gsoCmsgSpace / 8
	return unsafe.Slice((*byte)(unsafe.Pointer(&w.oob[i*words])), gsoCmsgSpace)
}

func (w *writer) setDst(dst netip.AddrPort, v6 bool) uint32 {
	if v6 {
		w.sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.Addr().As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&w.sa.Port))[:], dst.Port())
		return unix.SizeofSockaddrInet6
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&w.sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Addr().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], dst.Port())
	return unix.SizeofSockaddrInet4
}

// build lays pkts out as mmsghdrs. With GSO, consecutive packets of equal
// size (the last of a run may be shorter) share one hdr: one iovec per
// packet plus a UDP_SEGMENT cmsg, so nothing is copied. It returns the number
// of hdrs.
func (c *Conn) build(pkts [][]byte, salen uint32, gso bool) int {
	w := &c.w
	w.grow(len(pkts))
	nh, ni := 0, 0
	for i := 0; i < len(pkts); {
		seg := len(pkts[i])
		j := i + 1
		if gso && seg > 0 && seg <= c.gsoMaxSeg {
			total := seg
			for j < len(pkts) && j-i < MaxGSOSegments {
				l := len(pkts[j])
				if l == 0 || l > seg || total+l > MaxGSOBytes {
					break
				}
				total += l
				j++
				if l < seg {
					break
				}
			}
		}
		for k := i; k < j; k++ {
			iov := &w.iovs[ni+k-i]
			if p := pkts[k]; len(p) > 0 {
				iov.Base = &p[0]
				iov.SetLen(len(p))
			} else {
				iov.Base = nil
				iov.SetLen(0)
			}
		}
		h := &w.hdrs[nh]
		h.Len = 0
		h.Hdr = unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&w.sa)),
			Namelen: salen,
			Iov:     &w.iovs[ni],
		}
		h.Hdr.SetIovlen(j - i)
		if j-i > 1 {
			oob := w.oobBytes(nh)
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
			cm.Level = unix.IPPROTO_UDP
			cm.Type = unix.UDP_SEGMENT
			cm.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(seg)
			h.Hdr.Control = &oob[0]
			h.Hdr.SetControllen(gsoCmsgSpace)
		}
		w.runs[nh] = j - i
		nh++
		ni += j - i
		i = j
	}
	return nh
}

// WriteBatch sends pkts to dst, a multicast address of the conn's family,
// and returns how many of pkts were sent. With GSO, runs of equal-sized
// packets go out as super-packets; everything goes out with sendmmsg, as few
// calls as the kernel allows. A full send buffer blocks (up to the write
// deadline); ENOBUFS is retried with backoff for about 100 ms before it is
// returned. If the kernel refuses a super-packet (EIO: no checksum offload;
// EINVAL), GSO is switched off for the conn and the rest is resent without.
func (c *Conn) WriteBatch(pkts [][]byte, dst netip.AddrPort) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	dst, err := c.checkDst(dst)
	if err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := &c.w
	defer w.release(len(pkts))
	salen := w.setDst(dst, c.v6)
	sent, retries := 0, 0
outer:
	for sent < len(pkts) {
		gso := c.gso.Load()
		nh := c.build(pkts[sent:], salen, gso)
		for h := 0; h < nh; {
			w.off, w.cnt = h, nh-h
			if err := c.rc.Write(w.fn); err != nil {
				return sent, c.opError("write", err)
			}
			if e := w.errno; e != 0 {
				if gso && w.runs[h] > 1 && (e == unix.EIO || e == unix.EINVAL) {
					c.disableGSO(e)
					continue outer
				}
				if e == unix.ENOBUFS && retries < enobufsRetries {
					time.Sleep(enobufsBackoff0 << retries)
					retries++
					continue
				}
				return sent, c.opError("write", e)
			}
			if w.n <= 0 {
				return sent, c.opError("write", errors.New("sendmmsg sent nothing"))
			}
			retries = 0
			for k := h; k < h+w.n; k++ {
				sent += w.runs[k]
			}
			h += w.n
		}
	}
	return sent, nil
}

// release drops the references to the caller's n packets.
func (w *writer) release(n int) {
	for i := range min(n, len(w.iovs)) {
		w.iovs[i].Base = nil
	}
}

// reader is the preallocated state of ReadBatch.
type reader struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []uint64

	cnt   int
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func (r *reader) do(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.cnt), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable (or the deadline)
		}
		r.n, r.errno = int(n), e
		return true
	}
}

func (r *reader) grow(n int) {
	if len(r.hdrs) >= n {
		return
	}
	n = max(n, 64)
	r.hdrs = make([]unix.Mmsghdr, n)
	r.iovs = make([]unix.Iovec, n)
	r.names = make([]unix.RawSockaddrInet6, n)
	r.oob = make([]uint64, n*recvOOBSpace/8)
}

func (r *reader) oobBytes(i int) []byte {
	words := recvOOBSpace / 8
	return unsafe.Slice((*byte)(unsafe.Pointer(&r.oob[i*words])), recvOOBSpace)
}

// ReadBatch blocks until at least one datagram is available (or the read
// deadline passes) and fills up to len(msgs) messages with recvmmsg. Each
// msgs[i].Buf must be non-empty. On a GRO conn a message may hold several
// datagrams (SegSize > 0); if any Buf is shorter than GROBufferSize, GRO is
// switched off first, because the kernel would truncate super-packets.
func (c *Conn) ReadBatch(msgs []Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.gro.Load() {
		for i := range msgs {
			if len(msgs[i].Buf) < GROBufferSize {
				c.disableGRO(fmt.Sprintf("ReadBatch buffer of %d bytes is smaller than GROBufferSize", len(msgs[i].Buf)))
				break
			}
		}
	}
	r := &c.r
	r.grow(len(msgs))
	for i := range msgs {
		b := msgs[i].Buf
		if len(b) == 0 {
			return 0, fmt.Errorf("mcast: ReadBatch: msgs[%d].Buf is empty", i)
		}
		iov := &r.iovs[i]
		iov.Base = &b[0]
		iov.SetLen(len(b))
		oob := r.oobBytes(i)
		h := &r.hdrs[i]
		h.Len = 0
		h.Hdr = unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&r.names[i])),
			Namelen: unix.SizeofSockaddrInet6,
			Iov:     iov,
			Control: &oob[0],
		}
		h.Hdr.SetIovlen(1)
		h.Hdr.SetControllen(recvOOBSpace)
	}
	r.cnt = len(msgs)
	err := c.rc.Read(r.fn)
	for i := range msgs {
		r.iovs[i].Base = nil
	}
	if err != nil {
		return 0, c.opError("read", err)
	}
	if r.errno != 0 {
		return 0, c.opError("read", r.errno)
	}
	for i := 0; i < r.n; i++ {
		h := &r.hdrs[i]
		m := &msgs[i]
		m.N = int(h.Len)
		m.Truncated = h.Hdr.Flags&unix.MSG_TRUNC != 0
		m.Src = parseSockaddr(unsafe.Slice((*byte)(unsafe.Pointer(&r.names[i])), min(int(h.Hdr.Namelen), unix.SizeofSockaddrInet6)))
		m.SegSize = parseGRO(r.oobBytes(i)[:min(int(h.Hdr.Controllen), recvOOBSpace)])
		if m.SegSize >= m.N {
			m.SegSize = 0
		}
	}
	return r.n, nil
}

// parseSockaddr decodes a sockaddr_in or sockaddr_in6 as the kernel writes
// it; anything else yields the zero AddrPort.
func parseSockaddr(b []byte) netip.AddrPort {
	if len(b) < 2 {
		return netip.AddrPort{}
	}
	fam := binary.NativeEndian.Uint16(b)
	switch {
	case fam == unix.AF_INET && len(b) >= 8:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
	case fam == unix.AF_INET6 && len(b) >= unix.SizeofSockaddrInet6:
		a := netip.AddrFrom16([16]byte(b[8:24]))
		// Zones are left out (they would allocate): multicast sources
		// are routable addresses.
		return netip.AddrPortFrom(a.Unmap(), binary.BigEndian.Uint16(b[2:4]))
	}
	return netip.AddrPort{}
}

// parseGRO walks control messages (as the kernel lays them out: struct
// cmsghdr, then data, each aligned to sizeof(long)) and returns the UDP_GRO
// segment size, or 0. It reads fields by offset, so any byte slice is safe.
func parseGRO(oob []byte) int {
	const (
		lenSize = int(unsafe.Sizeof(unix.Cmsghdr{}.Len))
		hdrLen  = cmsgHdrSpace
	)
	for len(oob) >= hdrLen {
		var l int
		if lenSize == 8 {
			v := binary.NativeEndian.Uint64(oob)
			if v > uint64(len(oob)) {
				return 0
			}
			l = int(v)
		} else {
			l = int(binary.NativeEndian.Uint32(oob))
		}
		if l < hdrLen || l > len(oob) {
			return 0
		}
		level := int32(binary.NativeEndian.Uint32(oob[lenSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[lenSize+4:]))
		if level == unix.IPPROTO_UDP && typ == unix.UDP_GRO && l >= hdrLen+4 {
			return max(int(int32(binary.NativeEndian.Uint32(oob[hdrLen:]))), 0)
		}
		next := (l + cmsgAlign - 1) &^ (cmsgAlign - 1)
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}

// fromState lets ReadFrom hand out a GRO super-packet one datagram at a time.
type fromState struct {
	msg [1]Message
	off int  // offset of the next datagram in msg[0].Buf
	has bool // msg[0] holds datagrams not yet returned
}

// ReadFrom reads one datagram (net.PacketConn). On a conn that was opened
// with GRO, it reads through ReadBatch and returns coalesced datagrams one at
// a time. ReadBatch is the fast path; ReadFrom allocates the returned address.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	if !c.groEver {
		n, ap, err := c.uc.ReadFromUDPAddrPort(p)
		if err != nil {
			return n, nil, err
		}
		return n, net.UDPAddrFromAddrPort(ap), nil
	}
	c.fromMu.Lock()
	defer c.fromMu.Unlock()
	f := &c.from
	if !f.has {
		if f.msg[0].Buf == nil {
			f.msg[0].Buf = make([]byte, GROBufferSize)
		}
		if _, err := c.ReadBatch(f.msg[:]); err != nil {
			return 0, nil, err
		}
		f.has, f.off = true, 0
	}
	m := &f.msg[0]
	seg := m.N - f.off
	if m.SegSize > 0 {
		seg = min(seg, m.SegSize)
	}
	n := copy(p, m.Buf[f.off:f.off+seg])
	f.off += seg
	if f.off >= m.N {
		f.has = false
	}
	return n, net.UDPAddrFromAddrPort(m.Src), nil
}
