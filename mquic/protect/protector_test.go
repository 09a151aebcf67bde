package protect

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/h3m-project/h3m/mquic/wire"
)

const (
	a5Secret    = "9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b"
	a5Key       = "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8"
	a5IV        = "e0459b3474bdd0e44a41c144"
	a5HP        = "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"
	a5PN        = 654360564
	a5Header    = "4200bff4"
	a5Protected = "4cfe4189655e5cd55c41f69080575d7999c25a5bfb"
)

// TestRFC9001A5 is RFC 9001 Appendix A.5, ChaCha20-Poly1305 short header
// packet, byte for byte: empty DCID, 3-byte packet number, payload 01 (a
// PING frame).
func TestRFC9001A5(t *testing.T) {
	secret := mustHex(t, a5Secret)
	fromSecret, err := NewFromSecret(SuiteChaCha20Poly1305, secret)
	if err != nil {
		t.Fatal(err)
	}
	fromKeys, err := New(SuiteChaCha20Poly1305, mustHex(t, a5Key), mustHex(t, a5IV), mustHex(t, a5HP))
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Protector{"secret": fromSecret, "keys": fromKeys} {
		if p.MinPayload(3) != 1 {
			t.Errorf("%s: MinPayload(3) = %d, want 1 (A.5's 1-byte payload is exactly enough)", name, p.MinPayload(3))
		}
		// The nonce and mask the RFC lists.
		p.setNonce(a5PN)
		if got := hex.EncodeToString(p.nonce[:]); got != "e0459b3474bdd0e46d417eb0" {
			t.Errorf("%s: nonce %s", name, got)
		}
		p.setMask(mustHex(t, "5e5cd55c41f69080575d7999c25a5bfb"))
		if got := hex.EncodeToString(p.mask[:5]); got != "aefefe7d03" {
			t.Errorf("%s: mask %s", name, got)
		}

		hdr := wire.AppendShortHeader(make([]byte, 0, 64), nil, a5PN, 3)
		if hex.EncodeToString(hdr) != a5Header {
			t.Fatalf("header %x", hdr)
		}
		pkt := p.Seal(append(hdr, 0x01), 1, a5PN)
		if got := hex.EncodeToString(pkt); got != a5Protected {
			t.Errorf("%s: Seal = %s, want %s", name, got, a5Protected)
		}

		in := mustHex(t, a5Protected)
		pn, payload, err := p.Open(in, 1, 3, a5PN-1, true)
		if err != nil || pn != a5PN || !bytes.Equal(payload, []byte{0x01}) {
			t.Errorf("%s: Open = %d, %x, %v", name, pn, payload, err)
		}
		if hex.EncodeToString(in[:4]) != a5Header {
			t.Errorf("%s: header after Open %x, want %s", name, in[:4], a5Header)
		}
		// Decoded against a largest further away, the PN is still found
		// (3 bytes give a window of 2^23).
		in = mustHex(t, a5Protected)
		if pn, _, err := p.Open(in, 1, 3, a5PN-1000000, true); err != nil || pn != a5PN {
			t.Errorf("%s: Open far below: %d %v", name, pn, err)
		}
		// Taken literally (no packet seen yet), the truncated PN 0x00bff4 is
		// not the PN the packet was sealed with: the tag must fail.
		in = mustHex(t, a5Protected)
		if _, _, err := p.Open(in, 1, 3, 0, false); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: literal PN: got %v, want ErrDecrypt", name, err)
		}
	}
}

// RFC 9001 Appendix A.2 and A.3: client and server Initial packets
// (AES-128-GCM, AES header protection). They have long headers; Seal and
// Open mask the short header's 5 low bits of the first byte instead of the
// long header's 4, which gives the same bytes here because bit 0x10 of both
// masks (437b9aec36, 2ec0d8356a) is 0. The header-protection masks are
// checked on their own as well.
func TestRFC9001InitialPackets(t *testing.T) {
	cryptoFrame := "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c" +
		"00000413011302010000c000000010000e00000b6578616d706c652e636f6dff01000100000a0008000600" +
		"1d0017001800100007000504616c706e000500050100000000003300260024001d00209370b2c9caa47fba" +
		"baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b0003020304000d0010000e040305030603" +
		"020308040805080600" + "2d00020101001c00024001003900320408ffffffffffffffff05048000ffff07" +
		"048000ffff0801100104800075300901100f088394c8f03e51570806048000ffff"
	tests := []struct {
		name, key, iv, hp    string
		header               string
		pnOffset             int
		pn                   uint64
		payload              string
		payloadLen           int // padded with PADDING to this length
		sample, mask, sealed string
	}{
		{"A.2 client Initial",
			"1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2",
			"c300000001088394c8f03e5157080000449e00000002", 18, 2, cryptoFrame, 1162,
			"d1b1c98dd7689fb8ec11d242b123dc9b", "437b9aec36", rfc9001A2Protected},
		{"A.3 server Initial",
			"cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314",
			"c1000000010008f067a5502a4262b50040750001", 18, 1,
			"02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf73988cfc79825df566dc5430b9a045a1200" +
				"130100002e00330024001d00209d3c940d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00020304", 0,
			"2cd0991cd25b0aac406a5816b6394100", "2ec0d8356a",
			"cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554780bb3" +
				"8cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84" +
				"022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee"},
	}
	for _, tt := range tests {
		p, err := New(SuiteAES128GCM, mustHex(t, tt.key), mustHex(t, tt.iv), mustHex(t, tt.hp))
		if err != nil {
			t.Fatal(err)
		}
		p.setMask(mustHex(t, tt.sample))
		if got := hex.EncodeToString(p.mask[:5]); got != tt.mask {
			t.Errorf("%s: mask %s, want %s", tt.name, got, tt.mask)
		}
		payload := mustHex(t, tt.payload)
		if tt.payloadLen > 0 {
			payload = append(payload, make([]byte, tt.payloadLen-len(payload))...)
		}
		pkt := append(mustHex(t, tt.header), payload...)
		sealed := p.Seal(pkt, tt.pnOffset, tt.pn)
		if got := hex.EncodeToString(sealed); got != tt.sealed {
			t.Errorf("%s: Seal =\n%s\nwant\n%s", tt.name, got, tt.sealed)
		}
		pnLen := len(tt.header)/2 - tt.pnOffset
		pn, plain, err := p.Open(mustHex(t, tt.sealed), tt.pnOffset, pnLen, tt.pn-1, true)
		if err != nil || pn != tt.pn || !bytes.Equal(plain, payload) {
			t.Errorf("%s: Open = %d, %d bytes, %v", tt.name, pn, len(plain), err)
		}
	}
}

// rfc9001A2Protected is the protected client Initial of RFC 9001 A.2.
var rfc9001A2Protected = strings.Join([]string{
	"c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11",
	"d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399",
	"1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c",
	"8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212",
	"30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5",
	"457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208",
	"4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec",
	"4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3",
	"485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db",
	"059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c",
	"7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8",
	"9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556",
	"be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74",
	"68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a",
	"c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00",
	"f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632",
	"291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964",
	"25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd",
	"14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff",
	"ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198",
	"e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd",
	"c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73",
	"203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f",
	"cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e",
	"fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade",
	"a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047",
	"90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2",
	"162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4",
	"40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0",
	"6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e",
	"8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0",
	"be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400",
	"54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab",
	"760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9",
	"f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4",
	"056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064",
	"7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241",
	"e221af44860018ab0856972e194cd934",
}, "")

// protectors returns one protector per suite and key form.
func protectors(t testing.TB) map[string]*Protector {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	bytesN := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	out := map[string]*Protector{}
	null, err := New(SuiteNull, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out["NULL"] = null
	for _, s := range []Suite{SuiteAES128GCM, SuiteAES256GCM, SuiteChaCha20Poly1305} {
		p, err := New(s, bytesN(s.KeyLen()), bytesN(s.IVLen()), nil)
		if err != nil {
			t.Fatal(err)
		}
		out[s.String()+"/key+iv"] = p
		p, err = New(s, bytesN(s.KeyLen()), bytesN(s.IVLen()), bytesN(s.KeyLen()))
		if err != nil {
			t.Fatal(err)
		}
		out[s.String()+"/key+iv+hp"] = p
		p, err = NewFromSecret(s, bytesN(s.Hash()().Size()))
		if err != nil {
			t.Fatal(err)
		}
		out[s.String()+"/secret"] = p
	}
	return out
}

var sessionID = []byte("Session ID")

// buildPacket returns an unprotected packet: short header with the 10-byte
// session ID, then a payload of payloadLen bytes, with room for a tag.
func buildPacket(pn uint64, pnLen, payloadLen int, fill byte) []byte {
	pkt := wire.AppendShortHeader(make([]byte, 0, 1+len(sessionID)+pnLen+payloadLen+16), sessionID, pn, pnLen)
	for range payloadLen {
		pkt = append(pkt, fill)
		fill++
	}
	return pkt
}

func TestRoundTrip(t *testing.T) {
	pnOff := 1 + len(sessionID)
	for name, p := range protectors(t) {
		for pnLen := 1; pnLen <= 4; pnLen++ {
			min := p.MinPayload(pnLen)
			if !p.HeaderProtection() && min != 0 {
				t.Errorf("%s: MinPayload(%d) = %d without header protection", name, pnLen, min)
			}
			for _, size := range []int{min, min + 1, 100, 1200} {
				for i, pn := range []uint64{0, 1, 255, 256, 257, 65535, 65536, 1 << 24, 1<<32 + 3, 1<<62 - 1} {
					plain := buildPacket(pn, pnLen, size, byte(i))
					want := bytes.Clone(plain[pnOff+pnLen:])
					sealed := p.Seal(bytes.Clone(plain), pnOff, pn)
					if len(sealed) != len(plain)+p.Overhead() {
						t.Fatalf("%s: sealed %d bytes, want %d", name, len(sealed), len(plain)+p.Overhead())
					}
					if p.Overhead() > 0 && size > 8 && bytes.Equal(sealed[pnOff+pnLen:len(plain)], want) {
						t.Fatalf("%s: payload not encrypted", name)
					}
					if p.Overhead() == 0 && !bytes.Equal(sealed, plain) {
						t.Fatalf("%s: NULL suite changed the packet: %x -> %x", name, plain, sealed)
					}
					if !bytes.Equal(sealed[1:pnOff], sessionID) {
						t.Fatalf("%s: DCID changed", name)
					}
					// The receiver has seen pn-1 (or nothing, for pn 0).
					gotPN, payload, err := p.Open(sealed, pnOff, pnLen, pn-1, pn > 0)
					if err != nil {
						t.Fatalf("%s pnLen %d size %d pn %d: %v", name, pnLen, size, pn, err)
					}
					if gotPN != pn || !bytes.Equal(payload, want) {
						t.Fatalf("%s pnLen %d size %d: got pn %d (%d bytes), want %d", name, pnLen, size, gotPN, len(payload), pn)
					}
					if !bytes.Equal(sealed[:pnOff+pnLen], plain[:pnOff+pnLen]) {
						t.Fatalf("%s: header after Open %x, want %x", name, sealed[:pnOff+pnLen], plain[:pnOff+pnLen])
					}
				}
			}
		}
	}
}

// TestSequence seals and opens a run of consecutive packets for every suite
// and PN length, as a session would, across wrap-arounds of the truncated
// value.
func TestSequence(t *testing.T) {
	pnOff := 1 + len(sessionID)
	for name, p := range protectors(t) {
		recv := p.Clone()
		for pnLen := 1; pnLen <= 4; pnLen++ {
			win := uint64(1) << (8 * pnLen)
			start := 3*win - 300
			largest := start - 1
			for i := range 600 {
				pn := start + uint64(i)
				pkt := p.Seal(buildPacket(pn, pnLen, max(p.MinPayload(pnLen), 40), byte(i)), pnOff, pn)
				got, _, err := recv.Open(pkt, pnOff, pnLen, largest, true)
				if err != nil || got != pn {
					t.Fatalf("%s pnLen %d packet %d: got %d, %v", name, pnLen, pn, got, err)
				}
				largest = got
			}
		}
	}
}

// TestLateJoiner: a receiver's first packet is taken literally. That is
// right while the sender's packet numbers fit in pnLen bytes, and with an
// AEAD it fails authentication (rather than desynchronising) once they do
// not, which is why sessions default to 4-byte packet numbers.
func TestLateJoiner(t *testing.T) {
	pnOff := 1 + len(sessionID)
	for name, p := range protectors(t) {
		for pnLen := 1; pnLen <= 4; pnLen++ {
			win := uint64(1) << (8 * pnLen)
			pkt := p.Seal(buildPacket(win-1, pnLen, 40, 0), pnOff, win-1)
			if pn, _, err := p.Open(pkt, pnOff, pnLen, 0, false); err != nil || pn != win-1 {
				t.Errorf("%s pnLen %d: first packet %d: got %d, %v", name, pnLen, win-1, pn, err)
			}
			pkt = p.Seal(buildPacket(win+5, pnLen, 40, 0), pnOff, win+5)
			pn, _, err := p.Open(pkt, pnOff, pnLen, 0, false)
			if p.Overhead() > 0 && !errors.Is(err, ErrDecrypt) {
				t.Errorf("%s pnLen %d: first packet beyond the window: got %d, %v; want ErrDecrypt", name, pnLen, pn, err)
			}
			if p.Overhead() == 0 && (err != nil || pn != 5) {
				t.Errorf("%s pnLen %d: NULL first packet: got %d, %v; want the truncated 5", name, pnLen, pn, err)
			}
		}
	}
}

func TestOpenRejects(t *testing.T) {
	pnOff := 1 + len(sessionID)
	const pnLen, pn = 2, 4242
	ps := protectors(t)
	for name, p := range ps {
		sealed := p.Seal(buildPacket(pn, pnLen, 60, 1), pnOff, pn)
		open := func(pkt []byte, pnLen int) error {
			_, _, err := p.Open(bytes.Clone(pkt), pnOff, pnLen, pn-1, true)
			return err
		}
		if err := open(sealed, pnLen); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Wrong session PN length.
		for _, l := range []int{1, 3, 4} {
			if err := open(sealed, l); !errors.Is(err, ErrPNLength) && !errors.Is(err, ErrDecrypt) {
				t.Errorf("%s: pnLen %d: got %v", name, l, err)
			}
		}
		for _, l := range []int{0, 5, -1} {
			if err := open(sealed, l); !errors.Is(err, ErrPNLength) {
				t.Errorf("%s: pnLen %d: got %v", name, l, err)
			}
		}
		// Truncations.
		for n := range len(sealed) {
			err := open(sealed[:n], pnLen)
			if p.Overhead() == 0 {
				if n < pnOff+pnLen && !errors.Is(err, ErrShortPacket) {
					t.Errorf("%s: %d bytes: got %v", name, n, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s: truncated to %d bytes: no error", name, n)
			}
		}
		if p.Overhead() == 0 {
			// NULL: nothing is authenticated, but the PN length is checked.
			bad := bytes.Clone(sealed)
			bad[0] ^= 0x01
			if err := open(bad, pnLen); !errors.Is(err, ErrPNLength) {
				t.Errorf("%s: PN length bits flipped: got %v", name, err)
			}
			continue
		}
		// Every single bit flip anywhere is rejected.
		for i := range len(sealed) {
			for bit := range 8 {
				bad := bytes.Clone(sealed)
				bad[i] ^= 1 << bit
				var pe *ProtectError
				if err := open(bad, pnLen); !errors.As(err, &pe) {
					t.Fatalf("%s: bit %d of byte %d flipped: got %v", name, bit, i, err)
				}
			}
		}
		// Another key of the same suite.
		for other, q := range ps {
			if other == name || q.Suite() != p.Suite() {
				continue
			}
			if _, _, err := q.Open(bytes.Clone(sealed), pnOff, pnLen, pn-1, true); err == nil {
				t.Errorf("%s opened by %s", name, other)
			}
		}
	}
}

// TestReservedBits: a sender that sets the reserved bits produces packets
// that authenticate but must still be rejected.
func TestReservedBits(t *testing.T) {
	pnOff := 1 + len(sessionID)
	for name, p := range protectors(t) {
		pkt := buildPacket(9, 4, 40, 0)
		pkt[0] |= 0x08
		sealed := p.Seal(pkt, pnOff, 9)
		_, _, err := p.Open(sealed, pnOff, 4, 8, true)
		if p.Overhead() == 0 {
			if err != nil {
				t.Errorf("%s: NULL suite rejects reserved bits: %v", name, err)
			}
		} else if !errors.Is(err, ErrReservedBits) {
			t.Errorf("%s: got %v, want ErrReservedBits", name, err)
		}
	}
}

// TestNGHQPacketNull opens the first packet of nghq's capture (NULL suite):
// Open leaves every byte as it was and returns the plaintext frames.
func TestNGHQPacketNull(t *testing.T) {
	pkt := mustHex(t, "4053657373696f6e204944000a0041b40541b100")
	p, err := New(SuiteNull, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Overhead() != 0 || p.HeaderProtection() || p.MinPayload(1) != 0 || p.Suite() != SuiteNull {
		t.Fatalf("NULL protector: overhead %d hp %v", p.Overhead(), p.HeaderProtection())
	}
	orig := bytes.Clone(pkt)
	pn, payload, err := p.Open(pkt, 11, 1, 0, false)
	if err != nil || pn != 0 || !bytes.Equal(payload, orig[12:]) || !bytes.Equal(pkt, orig) {
		t.Fatalf("Open = %d %x %v", pn, payload, err)
	}
	if sealed := p.Seal(bytes.Clone(orig), 11, 0); !bytes.Equal(sealed, orig) {
		t.Fatalf("Seal changed a NULL packet: %x", sealed)
	}
	// PN 300 after 299 with a 1-byte PN.
	pkt = wire.AppendShortHeader(nil, sessionID, 300, 1)
	pkt = append(pkt, 0x01)
	if pn, _, err := p.Open(pkt, 11, 1, 299, true); err != nil || pn != 300 {
		t.Fatalf("wrap: %d %v", pn, err)
	}
}

func TestNewErrors(t *testing.T) {
	k16, k32, iv := make([]byte, 16), make([]byte, 32), make([]byte, 12)
	for _, tt := range []struct {
		s           Suite
		key, iv, hp []byte
	}{
		{SuiteNull, k16, nil, nil},
		{SuiteNull, nil, iv, nil},
		{SuiteNull, nil, nil, k16},
		{0x1304, k16, iv, nil},
		{SuiteAES128GCM, k32, iv, nil},
		{SuiteAES128GCM, k16, iv[:8], nil},
		{SuiteAES128GCM, k16, iv, k32},
		{SuiteAES128GCM, k16, iv, []byte{}},
		{SuiteAES256GCM, k16, iv, nil},
		{SuiteChaCha20Poly1305, k16, iv, nil},
		{SuiteChaCha20Poly1305, k32, iv, k16},
	} {
		if _, err := New(tt.s, tt.key, tt.iv, tt.hp); err == nil {
			t.Errorf("New(%v, %d, %d, %v): no error", tt.s, len(tt.key), len(tt.iv), tt.hp)
		}
	}
}

func TestAccessors(t *testing.T) {
	for name, p := range protectors(t) {
		wantHP := strings.HasSuffix(name, "+hp") || strings.HasSuffix(name, "/secret")
		if p.HeaderProtection() != wantHP {
			t.Errorf("%s: HeaderProtection %v", name, p.HeaderProtection())
		}
		if p.Overhead() != p.Suite().TagLen() {
			t.Errorf("%s: Overhead %d", name, p.Overhead())
		}
		for pnLen := 1; pnLen <= 4; pnLen++ {
			want := 0
			if wantHP {
				want = 4 - pnLen // 20-byte sample window minus PN and 16-byte tag
			}
			if p.MinPayload(pnLen) != want {
				t.Errorf("%s: MinPayload(%d) = %d, want %d", name, pnLen, p.MinPayload(pnLen), want)
			}
		}
	}
}

// TestClone checks that a clone opens what the original seals and that the
// two can run at once (run with -race).
func TestClone(t *testing.T) {
	pnOff := 1 + len(sessionID)
	for name, p := range protectors(t) {
		c := p.Clone()
		if c == p || c.Suite() != p.Suite() || c.HeaderProtection() != p.HeaderProtection() {
			t.Fatalf("%s: bad clone", name)
		}
		done := make(chan error)
		for _, q := range []*Protector{p, c} {
			go func() {
				var err error
				for pn := uint64(1); pn < 200 && err == nil; pn++ {
					sealed := q.Seal(buildPacket(pn, 4, 30, byte(pn)), pnOff, pn)
					var got uint64
					got, _, err = q.Open(sealed, pnOff, 4, pn-1, true)
					if err == nil && got != pn {
						err = fmt.Errorf("pn %d decoded as %d", pn, got)
					}
				}
				done <- err
			}()
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		sealed := p.Seal(buildPacket(5, 4, 30, 0), pnOff, 5)
		if _, _, err := c.Open(sealed, pnOff, 4, 4, true); err != nil {
			t.Errorf("%s: clone cannot open: %v", name, err)
		}
	}
}

func TestSealPanics(t *testing.T) {
	ps := protectors(t)
	hp := ps["TLS_AES_128_GCM_SHA256/secret"]
	for name, f := range map[string]func(){
		"header cut":       func() { hp.Seal([]byte{0x43, 1, 2}, 1, 0) },
		"pnOffset 0":       func() { hp.Seal([]byte{0x40, 1, 2}, 0, 0) },
		"below MinPayload": func() { hp.Seal(buildPacket(1, 1, hp.MinPayload(1)-1, 0), 11, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// Without spare capacity Seal still works (it grows the slice).
	pkt := buildPacket(1, 4, 50, 0)
	pkt = pkt[:len(pkt):len(pkt)]
	sealed := hp.Seal(pkt, 11, 1)
	if _, _, err := hp.Open(sealed, 11, 4, 0, true); err != nil {
		t.Errorf("Seal without capacity: %v", err)
	}
}

func TestAllocs(t *testing.T) {
	pnOff := 1 + len(sessionID)
	for name, p := range protectors(t) {
		buf := make([]byte, 0, 1300)
		pn := uint64(1000)
		allocs := testing.AllocsPerRun(100, func() {
			pkt := wire.AppendShortHeader(buf[:0], sessionID, pn, 4)
			pkt = pkt[:len(pkt)+1200]
			sealed := p.Seal(pkt, pnOff, pn)
			if _, _, err := p.Open(sealed, pnOff, 4, pn-1, true); err != nil {
				t.Fatal(err)
			}
			// Rejecting garbage does not allocate either.
			sealed[len(sealed)-1] ^= 0xff
			if p.Overhead() > 0 {
				if _, _, err := p.Open(sealed, pnOff, 4, pn-1, true); err == nil {
					t.Fatal("garbage accepted")
				}
			}
			pn++
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Seal+Open, want 0", name, allocs)
		}
	}
}

type namedProtector struct {
	name string
	p    *Protector
}

func benchProtectors(b *testing.B) []namedProtector {
	all := protectors(b)
	return []namedProtector{
		{"AES128GCM", all["TLS_AES_128_GCM_SHA256/key+iv"]},
		{"AES128GCM+HP", all["TLS_AES_128_GCM_SHA256/secret"]},
		{"AES256GCM+HP", all["TLS_AES_256_GCM_SHA384/secret"]},
		{"ChaCha20", all["TLS_CHACHA20_POLY1305_SHA256/key+iv"]},
		{"ChaCha20+HP", all["TLS_CHACHA20_POLY1305_SHA256/secret"]},
		{"NULL", all["NULL"]},
	}
}

const benchPayload = 1200

func BenchmarkSeal(b *testing.B) {
	pnOff := 1 + len(sessionID)
	for _, np := range benchProtectors(b) {
		p := np.p
		b.Run(np.name, func(b *testing.B) {
			buf := make([]byte, 0, 1400)
			b.ReportAllocs()
			b.SetBytes(benchPayload)
			pn := uint64(0)
			for b.Loop() {
				pkt := wire.AppendShortHeader(buf[:0], sessionID, pn, 4)
				p.Seal(pkt[:len(pkt)+benchPayload], pnOff, pn)
				pn++
			}
		})
	}
}

// BenchmarkOpen opens the same sealed packet repeatedly; each iteration
// first copies it back into the buffer (Open works in place), a 1.2 kB copy
// that is part of the measured time.
func BenchmarkOpen(b *testing.B) {
	pnOff := 1 + len(sessionID)
	for _, np := range benchProtectors(b) {
		p := np.p
		b.Run(np.name, func(b *testing.B) {
			const pn = 77777
			sealed := p.Seal(buildPacket(pn, 4, benchPayload, 0), pnOff, pn)
			buf := make([]byte, len(sealed))
			b.ReportAllocs()
			b.SetBytes(benchPayload)
			for b.Loop() {
				copy(buf, sealed)
				if _, _, err := p.Open(buf, pnOff, 4, pn-1, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(mustHex(f, a5Protected), uint8(0), uint8(3), uint64(a5PN-1), true)
	f.Add(mustHex(f, a5Protected), uint8(0), uint8(3), uint64(0), false)
	f.Add(mustHex(f, "4053657373696f6e204944000a0041b40541b100"), uint8(10), uint8(1), uint64(0), false)
	f.Add([]byte{}, uint8(0), uint8(1), uint64(0), false)
	f.Add(make([]byte, 20), uint8(0), uint8(4), uint64(1<<62-1), true)
	chacha, err := NewFromSecret(SuiteChaCha20Poly1305, mustHex(f, a5Secret))
	if err != nil {
		f.Fatal(err)
	}
	aesHP, _ := NewFromSecret(SuiteAES128GCM, bytes.Repeat([]byte{1}, 32))
	aesNoHP, _ := New(SuiteAES256GCM, bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 12), nil)
	null, _ := New(SuiteNull, nil, nil, nil)
	f.Fuzz(func(t *testing.T, pkt []byte, dcidLen, pnLen uint8, largest uint64, havePN bool) {
		pnOffset := 1 + int(dcidLen%21)
		for _, p := range []*Protector{chacha, aesHP, aesNoHP, null} {
			in := bytes.Clone(pkt)
			pn, payload, err := p.Open(in, pnOffset, int(pnLen%6), largest, havePN)
			if err != nil {
				var pe *ProtectError
				if !errors.As(err, &pe) {
					t.Fatalf("%v: error %T %v", p.Suite(), err, err)
				}
				continue
			}
			hdrLen := pnOffset + int(pnLen%6)
			if len(payload) != len(in)-hdrLen-p.Overhead() {
				t.Fatalf("%v: payload %d bytes from a %d-byte packet", p.Suite(), len(payload), len(in))
			}
			if p.Overhead() > 0 {
				// Anything that authenticates must re-seal to the input.
				re := p.Seal(append(in[:hdrLen:hdrLen], payload...), pnOffset, pn)
				if !bytes.Equal(re, pkt) {
					t.Fatalf("%v: opened packet does not re-seal to itself", p.Suite())
				}
			}
		}
	})
}

func TestOpenOddOffsets(t *testing.T) {
	for name, p := range protectors(t) {
		pkt := make([]byte, 64)
		for _, off := range []int{-1, 0, 64, 65, 1 << 62, int(^uint(0) >> 1)} {
			if _, _, err := p.Open(pkt, off, 1, 0, false); !errors.Is(err, ErrShortPacket) {
				t.Errorf("%s: pnOffset %d: got %v", name, off, err)
			}
		}
	}
}
