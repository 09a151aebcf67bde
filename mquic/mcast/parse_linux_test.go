//go:build linux

package mcast

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestCmsgConstants(t *testing.T) {
	if gsoCmsgSpace != unix.CmsgSpace(2) {
		t.Errorf("gsoCmsgSpace %d, unix.CmsgSpace(2) %d", gsoCmsgSpace, unix.CmsgSpace(2))
	}
	if cmsgHdrSpace != unix.CmsgLen(0) {
		t.Errorf("cmsgHdrSpace %d, unix.CmsgLen(0) %d", cmsgHdrSpace, unix.CmsgLen(0))
	}
	if gsoCmsgSpace%8 != 0 || recvOOBSpace%8 != 0 || recvOOBSpace < unix.CmsgSpace(4) {
		t.Errorf("cmsg spaces %d/%d", gsoCmsgSpace, recvOOBSpace)
	}
}

// cmsg builds one control message the way the kernel does (x/sys's
// definitions of the layout, independent of parseGRO's offsets).
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func groCmsg(seg int32) []byte {
	return cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, binary.NativeEndian.AppendUint32(nil, uint32(seg)))
}

func TestParseGRO(t *testing.T) {
	pktinfo := cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, make([]byte, 12))
	for _, tc := range []struct {
		name string
		oob  []byte
		want int
	}{
		{"gro", groCmsg(1200), 1200},
		{"after-other", append(append([]byte{}, pktinfo...), groCmsg(1350)...), 1350},
		{"other-only", pktinfo, 0},
		{"empty", nil, 0},
		{"truncated", groCmsg(1200)[:unix.CmsgLen(0)+2], 0},
		{"negative", groCmsg(-5), 0},
		{"short-header", []byte{1, 2, 3}, 0},
		{"len-zero", make([]byte, 32), 0},
	} {
		if got := parseGRO(tc.oob); got != tc.want {
			t.Errorf("%s: parseGRO = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestParseSockaddr(t *testing.T) {
	sa4 := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{127, 0, 0, 2}}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], 4433)
	b4 := unsafe.Slice((*byte)(unsafe.Pointer(&sa4)), unix.SizeofSockaddrInet4)
	if got, want := parseSockaddr(b4), netip.MustParseAddrPort("127.0.0.2:4433"); got != want {
		t.Errorf("inet4: %v, want %v", got, want)
	}
	sa6 := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr("fd00::1").As16()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa6.Port))[:], 65535)
	b6 := unsafe.Slice((*byte)(unsafe.Pointer(&sa6)), unix.SizeofSockaddrInet6)
	if got, want := parseSockaddr(b6), netip.MustParseAddrPort("[fd00::1]:65535"); got != want {
		t.Errorf("inet6: %v, want %v", got, want)
	}
	if got := parseSockaddr(b6[:20]); got.IsValid() {
		t.Errorf("short inet6: %v", got)
	}
	if got := parseSockaddr([]byte{9, 9, 0, 0, 1, 2, 3, 4}); got.IsValid() {
		t.Errorf("unknown family: %v", got)
	}
}

// FuzzParseGRO feeds arbitrary control-message buffers to parseGRO: it must
// never panic, never return a negative size, and find a UDP_GRO cmsg that
// follows arbitrary well-formed ones.
func FuzzParseGRO(f *testing.F) {
	f.Add(groCmsg(1200), int32(0))
	f.Add(append(cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{1, 0, 0, 0}), groCmsg(1452)...), int32(9000))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int32(1))
	f.Add([]byte{}, int32(-1))
	f.Fuzz(func(t *testing.T, oob []byte, seg int32) {
		if got := parseGRO(oob); got < 0 {
			t.Fatalf("parseGRO = %d", got)
		}
		// A well-formed prefix of other cmsgs does not hide the GRO one.
		var pre []byte
		for len(oob) > 0 && len(pre) < 256 {
			n := int(oob[0] % 20)
			oob = oob[1:]
			pre = append(pre, cmsg(unix.IPPROTO_IP, int32(n), make([]byte, n))...)
		}
		want := max(int(seg), 0)
		if got := parseGRO(append(pre, groCmsg(seg)...)); got != want {
			t.Fatalf("parseGRO after %d bytes of other cmsgs = %d, want %d", len(pre), got, want)
		}
	})
}

// FuzzParseSockaddr: any input decodes without panicking; a valid
// sockaddr_in round-trips.
func FuzzParseSockaddr(f *testing.F) {
	f.Add([]byte{2, 0, 0x11, 0x51, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(make([]byte, 28))
	f.Add([]byte{10, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ap := parseSockaddr(b)
		if !ap.IsValid() || len(b) < 8 {
			return
		}
		if fam := binary.NativeEndian.Uint16(b); fam == unix.AF_INET {
			if ap.Addr() != netip.AddrFrom4([4]byte(b[4:8])) || ap.Port() != binary.BigEndian.Uint16(b[2:]) {
				t.Fatalf("parseSockaddr(%x) = %v", b, ap)
			}
		}
	})
}
