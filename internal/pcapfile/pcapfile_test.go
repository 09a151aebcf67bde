package pcapfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
)

// The nghq capture's figures, computed independently of this package (a
// Python reading of the same file): datagram count, total UDP payload bytes,
// and the SHA-256 of all payloads concatenated in capture order.
const (
	nghqDatagrams    = 156
	nghqPayloadBytes = 209903
	nghqPayloadHash  = "f8e6781d8773815eada6be0edddb423eabf8de6263ecc25eacc8b948b6c6fd8b"
)

func TestNGHQCapture(t *testing.T) {
	f, err := os.Open("testdata/nghq/capture.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := ReadUDPPayloads(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != nghqDatagrams {
		t.Fatalf("got %d datagrams, want %d", len(pkts), nghqDatagrams)
	}
	wantSrc := netip.MustParseAddrPort("127.0.0.1:50962")
	wantDst := netip.MustParseAddrPort("232.0.0.1:2000")
	h := sha256.New()
	total := 0
	for i, p := range pkts {
		if p.Src != wantSrc || p.Dst != wantDst {
			t.Fatalf("datagram %d: %v -> %v, want %v -> %v", i, p.Src, p.Dst, wantSrc, wantDst)
		}
		if i > 0 && p.Time.Before(pkts[i-1].Time) {
			t.Fatalf("datagram %d: time %v before previous %v", i, p.Time, pkts[i-1].Time)
		}
		total += len(p.Payload)
		h.Write(p.Payload)
	}
	if total != nghqPayloadBytes {
		t.Errorf("payload bytes %d, want %d", total, nghqPayloadBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != nghqPayloadHash {
		t.Errorf("payload sha256 %s, want %s", got, nghqPayloadHash)
	}
	// First datagram as annotated in the capture's documentation: 452 bytes,
	// short header 0x40, DCID "Session ID", PN 0, STREAM 0x0a on stream 0.
	first := pkts[0]
	if len(first.Payload) != 452 {
		t.Errorf("first payload %d bytes, want 452", len(first.Payload))
	}
	wantHead, _ := hex.DecodeString("4053657373696f6e204944000a0041b4")
	if !bytes.HasPrefix(first.Payload, wantHead) {
		t.Errorf("first payload starts %x, want %x", first.Payload[:16], wantHead)
	}
	if want := time.Unix(1795344420, 373430000); !first.Time.Equal(want) {
		t.Errorf("first time %v, want %v", first.Time, want)
	}
	// The second datagram ends with the FIN-carrying STREAM frame of
	// hello.txt's push stream: 0f (OFF|LEN|FIN) 07 (stream 7) 41f0 (offset
	// 496) 17 (length 23), then HTTP/3 DATA 00 15 "hello nghq multicast\n".
	second := pkts[1].Payload
	wantTail := append([]byte{0x0f, 0x07, 0x41, 0xf0, 0x17, 0x00, 0x15}, "hello nghq multicast\n"...)
	if len(second) != 540 || !bytes.HasSuffix(second, wantTail) {
		t.Errorf("second payload (%d bytes) ends %x, want 540 bytes ending %x", len(second), second[max(0, len(second)-len(wantTail)):], wantTail)
	}
}

// writer builds synthetic captures for the link types the nghq capture does
// not cover.
type writer struct {
	bo    binary.ByteOrder
	nanos bool
	buf   bytes.Buffer
}

func newWriter(bo binary.ByteOrder, nanos bool, link uint32) *writer {
	w := &writer{bo: bo, nanos: nanos}
	magic := uint32(0xa1b2c3d4)
	if nanos {
		magic = 0xa1b23c4d
	}
	var h [24]byte
	bo.PutUint32(h[0:4], magic)
	bo.PutUint16(h[4:6], 2)
	bo.PutUint16(h[6:8], 4)
	bo.PutUint32(h[16:20], 65535)
	bo.PutUint32(h[20:24], link)
	w.buf.Write(h[:])
	return w
}

func (w *writer) record(sec, frac uint32, data []byte, origLen int) {
	var h [16]byte
	w.bo.PutUint32(h[0:4], sec)
	w.bo.PutUint32(h[4:8], frac)
	w.bo.PutUint32(h[8:12], uint32(len(data)))
	w.bo.PutUint32(h[12:16], uint32(origLen))
	w.buf.Write(h[:])
	w.buf.Write(data)
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(8+len(payload)))
	return append(b, payload...)
}

func ipv4(src, dst netip.Addr, proto byte, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(20+len(l4)))
	b[8] = 1
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	return append(b, l4...)
}

func ipv6(src, dst netip.Addr, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(len(l4)))
	b[6] = protoUDP
	b[7] = 1
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, l4...)
}

func TestLinkTypes(t *testing.T) {
	src4, dst4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("232.1.2.3")
	src6, dst6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("ff3e::8000:1")
	pay := []byte("hello multicast")
	v4 := ipv4(src4, dst4, protoUDP, udp(1234, 2000, pay))
	v6 := ipv6(src6, dst6, udp(1234, 2000, pay))
	tcp := ipv4(src4, dst4, 6, make([]byte, 20))

	eth := func(et uint16, vlan bool, ip []byte) []byte {
		b := make([]byte, 12)
		if vlan {
			b = binary.BigEndian.AppendUint16(b, etherTypeVLAN)
			b = binary.BigEndian.AppendUint16(b, 42)
		}
		b = binary.BigEndian.AppendUint16(b, et)
		b = append(b, ip...)
		// Ethernet minimum-frame padding must not leak into the payload.
		for len(b) < 60 {
			b = append(b, 0xee)
		}
		return b
	}
	sll := func(et uint16, ip []byte) []byte {
		b := make([]byte, 14)
		b = binary.BigEndian.AppendUint16(b, et)
		return append(b, ip...)
	}
	sll2 := func(et uint16, ip []byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, et)
		b = append(b, make([]byte, 18)...)
		return append(b, ip...)
	}
	null := func(bo binary.AppendByteOrder, af uint32, ip []byte) []byte {
		b := bo.AppendUint32(nil, af)
		return append(b, ip...)
	}

	tests := []struct {
		name  string
		bo    binary.ByteOrder
		nanos bool
		link  uint32
		recs  [][]byte
		want  []netip.AddrPort // Dst of each expected packet
	}{
		{"ethernet+vlan", binary.BigEndian, false, linkEthernet,
			[][]byte{eth(etherTypeIPv4, true, v4), eth(etherTypeIPv6, false, v6), eth(0x0806, false, make([]byte, 28)), eth(etherTypeIPv4, false, tcp)},
			[]netip.AddrPort{netip.AddrPortFrom(dst4, 2000), netip.AddrPortFrom(dst6, 2000)}},
		{"sll", binary.LittleEndian, true, linkSLL,
			[][]byte{sll(etherTypeIPv6, v6), sll(etherTypeIPv4, v4)},
			[]netip.AddrPort{netip.AddrPortFrom(dst6, 2000), netip.AddrPortFrom(dst4, 2000)}},
		{"sll2", binary.LittleEndian, false, linkSLL2,
			[][]byte{sll2(etherTypeIPv4, v4)},
			[]netip.AddrPort{netip.AddrPortFrom(dst4, 2000)}},
		{"null little-endian host", binary.LittleEndian, false, linkNull,
			[][]byte{null(binary.LittleEndian, 2, v4), null(binary.LittleEndian, 30, v6), null(binary.LittleEndian, 99, v4)},
			[]netip.AddrPort{netip.AddrPortFrom(dst4, 2000), netip.AddrPortFrom(dst6, 2000)}},
		{"null other-endian host", binary.LittleEndian, false, linkNull,
			[][]byte{null(binary.BigEndian, 2, v4)},
			[]netip.AddrPort{netip.AddrPortFrom(dst4, 2000)}},
		{"loop", binary.BigEndian, false, linkLoop,
			[][]byte{null(binary.BigEndian, 24, v6)},
			[]netip.AddrPort{netip.AddrPortFrom(dst6, 2000)}},
		{"raw", binary.BigEndian, true, linkRaw,
			[][]byte{v4, v6, tcp},
			[]netip.AddrPort{netip.AddrPortFrom(dst4, 2000), netip.AddrPortFrom(dst6, 2000)}},
		{"ipv4", binary.LittleEndian, false, linkIPv4, [][]byte{v4}, []netip.AddrPort{netip.AddrPortFrom(dst4, 2000)}},
		{"ipv6", binary.LittleEndian, false, linkIPv6, [][]byte{v6}, []netip.AddrPort{netip.AddrPortFrom(dst6, 2000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWriter(tt.bo, tt.nanos, tt.link)
			for _, r := range tt.recs {
				w.record(1700000000, 999, r, len(r))
			}
			pkts, err := ReadUDPPayloads(&w.buf)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != len(tt.want) {
				t.Fatalf("got %d packets, want %d", len(pkts), len(tt.want))
			}
			wantTime := time.Unix(1700000000, 999000)
			if tt.nanos {
				wantTime = time.Unix(1700000000, 999)
			}
			for i, p := range pkts {
				if p.Dst != tt.want[i] {
					t.Errorf("packet %d: dst %v, want %v", i, p.Dst, tt.want[i])
				}
				if p.Src.Port() != 1234 {
					t.Errorf("packet %d: src %v", i, p.Src)
				}
				if !bytes.Equal(p.Payload, pay) {
					t.Errorf("packet %d: payload %q", i, p.Payload)
				}
				if !p.Time.Equal(wantTime) {
					t.Errorf("packet %d: time %v, want %v", i, p.Time, wantTime)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("232.1.2.3")
	v4 := ipv4(src, dst, protoUDP, udp(1, 2, make([]byte, 100)))

	cut := newWriter(binary.LittleEndian, false, linkRaw)
	cut.record(0, 0, v4[:60], len(v4))

	badMagic := newWriter(binary.LittleEndian, false, linkRaw)
	badMagic.buf.Bytes()[0] = 0x0a

	badLink := newWriter(binary.LittleEndian, false, 147)

	shortRec := newWriter(binary.LittleEndian, false, linkRaw)
	shortRec.record(0, 0, v4, len(v4))
	shortRec.buf.Truncate(shortRec.buf.Len() - 5)

	huge := newWriter(binary.LittleEndian, false, linkRaw)
	huge.record(0, 0, nil, 0)
	binary.LittleEndian.PutUint32(huge.buf.Bytes()[24+8:], 1<<30)

	badUDP := newWriter(binary.LittleEndian, false, linkRaw)
	bu := bytes.Clone(v4)
	binary.BigEndian.PutUint16(bu[24:26], 4) // UDP length below its header
	badUDP.record(0, 0, bu, len(bu))

	for name, in := range map[string][]byte{
		"empty":          nil,
		"cut by snaplen": cut.buf.Bytes(),
		"bad magic":      badMagic.buf.Bytes(),
		"bad link":       badLink.buf.Bytes(),
		"short record":   shortRec.buf.Bytes(),
		"huge record":    huge.buf.Bytes(),
		"bad udp length": badUDP.buf.Bytes(),
	} {
		_, err := ReadUDPPayloads(bytes.NewReader(in))
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func FuzzReadUDPPayloads(f *testing.F) {
	capture, err := os.ReadFile("testdata/nghq/capture.pcap")
	if err != nil {
		f.Fatal(err)
	}
	// The header and first two records of the real capture.
	f.Add(capture[:24+16+494+16+582])
	w := newWriter(binary.BigEndian, true, linkSLL2)
	w.record(1, 2, make([]byte, 30), 30)
	f.Add(w.buf.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		pkts, err := ReadUDPPayloads(bytes.NewReader(in))
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v does not wrap ErrFormat", err)
		}
		for _, p := range pkts {
			if !p.Src.IsValid() || !p.Dst.IsValid() {
				t.Fatalf("invalid address in %+v", p)
			}
		}
	})
}
