package protect

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/h3m-project/h3m/mquic/wire"
)

// Header-protection geometry (RFC 9001 §5.4.2): the sample is taken 4 bytes
// after the start of the packet number, as if it were 4 bytes long.
const (
	sampleOffset = 4
	sampleLen    = 16
	// shortHeaderMask selects the first-byte bits header protection covers
	// in a short header: reserved (0x18), key phase (0x04) and PN length.
	shortHeaderMask = 0x1f
	reservedBits    = 0x18
)

// Protector seals and opens the packets of one session: AEAD protection of
// the payload (RFC 9001 §5.3) and, when it has a header-protection key,
// header protection (RFC 9001 §5.4). With the NULL suite it only checks and
// decodes the header.
//
// A Protector is not safe for concurrent use: it owns the nonce and mask
// scratch space that keeps Seal and Open allocation-free. Give each
// goroutine its own Clone.
type Protector struct {
	suite Suite
	// The key material as given, kept so that Clone can build independent
	// cipher instances.
	key, iv, hpKey []byte

	aead     cipher.AEAD  // nil for the NULL suite
	hpBlock  cipher.Block // AES header protection, nil otherwise
	hpChaCha bool         // ChaCha20 header protection with hpKey

	nonce [12]byte
	mask  [sampleLen]byte
}

// New builds a protector from a raw AEAD key and IV (the draft's literal
// form). With hpKey nil there is no header protection, i.e. the all-zero
// mask nghq uses; otherwise header protection follows RFC 9001 §5.4 (AES-ECB
// for the AES suites, ChaCha20 for TLS_CHACHA20_POLY1305_SHA256) and hpKey
// has the AEAD key's length. For SuiteNull key, iv and hpKey must be empty.
func New(s Suite, key, iv, hpKey []byte) (*Protector, error) {
	if !s.Supported() {
		return nil, fmt.Errorf("protect: unsupported %v", s)
	}
	if s == SuiteNull {
		if len(key) != 0 || len(iv) != 0 || len(hpKey) != 0 {
			return nil, fmt.Errorf("protect: %v takes no key, IV or header-protection key", s)
		}
		return &Protector{suite: s}, nil
	}
	if len(key) != s.KeyLen() {
		return nil, fmt.Errorf("protect: key: %d bytes, %v needs %d", len(key), s, s.KeyLen())
	}
	if len(iv) != s.IVLen() {
		return nil, fmt.Errorf("protect: iv: %d bytes, %v needs %d", len(iv), s, s.IVLen())
	}
	if hpKey != nil && len(hpKey) != s.KeyLen() {
		return nil, fmt.Errorf("protect: header-protection key: %d bytes, %v needs %d", len(hpKey), s, s.KeyLen())
	}
	p := &Protector{suite: s, key: slices.Clone(key), iv: slices.Clone(iv), hpKey: slices.Clone(hpKey)}
	var err error
	switch s {
	case SuiteAES128GCM, SuiteAES256GCM:
		var block cipher.Block
		if block, err = aes.NewCipher(p.key); err == nil {
			p.aead, err = cipher.NewGCM(block)
		}
		if err == nil && hpKey != nil {
			p.hpBlock, err = aes.NewCipher(p.hpKey)
		}
	case SuiteChaCha20Poly1305:
		p.aead, err = chacha20poly1305.New(p.key)
		p.hpChaCha = hpKey != nil
	}
	if err != nil {
		return nil, fmt.Errorf("protect: %v: %w", s, err)
	}
	return p, nil
}

// NewFromSecret derives key, IV and header-protection key from secret
// (DeriveKeys) and builds a protector with header protection: this
// project's secret form, identical to RFC 9001 1-RTT protection.
func NewFromSecret(s Suite, secret []byte) (*Protector, error) {
	key, iv, hp, err := DeriveKeys(s, secret)
	if err != nil {
		return nil, err
	}
	return New(s, key, iv, hp)
}

// Clone returns an independent protector with the same keys, for use by
// another goroutine.
func (p *Protector) Clone() *Protector {
	c, err := New(p.suite, p.key, p.iv, p.hpKey)
	if err != nil {
		panic("protect: Clone: " + err.Error()) // the keys were accepted once already
	}
	return c
}

// Suite returns the protector's cipher suite.
func (p *Protector) Suite() Suite { return p.suite }

// Overhead is the number of bytes Seal adds to a packet: the AEAD tag length,
// 0 for the NULL suite.
func (p *Protector) Overhead() int {
	if p.aead == nil {
		return 0
	}
	return p.aead.Overhead()
}

// HeaderProtection reports whether packets get header protection.
func (p *Protector) HeaderProtection() bool { return p.hpBlock != nil || p.hpChaCha }

// MinPayload is the smallest plaintext payload, in bytes, that a packet with
// a pnLen-byte packet number needs so that header protection finds its
// 16-byte sample, which starts 4 bytes after the packet number's start
// (RFC 9001 §5.4.2). It is 0 without header protection. Senders pad short
// packets up to it.
func (p *Protector) MinPayload(pnLen int) int {
	if !p.HeaderProtection() {
		return 0
	}
	return max(0, sampleOffset+sampleLen-pnLen-p.Overhead())
}

// setNonce builds the AEAD nonce: the IV XOR the packet number, left-padded
// to the IV's length (RFC 9001 §5.3).
func (p *Protector) setNonce(pn uint64) {
	copy(p.nonce[:], p.iv)
	n := len(p.nonce)
	binary.BigEndian.PutUint64(p.nonce[n-8:], binary.BigEndian.Uint64(p.iv[n-8:])^pn)
}

// setMask computes the header-protection mask from a 16-byte sample into
// p.mask[:5].
func (p *Protector) setMask(sample []byte) {
	if p.hpBlock != nil {
		p.hpBlock.Encrypt(p.mask[:], sample)
		return
	}
	// RFC 9001 §5.4.4: counter = sample[0..3] little-endian, nonce =
	// sample[4..15]; the mask is the first 5 keystream bytes.
	c, err := chacha20.NewUnauthenticatedCipher(p.hpKey, sample[4:sampleLen])
	if err != nil {
		panic("protect: ChaCha20 header protection: " + err.Error()) // key and nonce sizes are fixed
	}
	c.SetCounter(binary.LittleEndian.Uint32(sample[:4]))
	clear(p.mask[:5])
	c.XORKeyStream(p.mask[:5], p.mask[:5])
}

// Seal protects a packet in place and returns it. pkt[:pnOffset] holds the
// first byte and the DCID; the packet number follows, its length taken from
// the low 2 bits of the first byte; the plaintext payload runs from there to
// len(pkt). The unprotected header is the AEAD's associated data. Seal
// appends the AEAD tag (without allocating if cap(pkt) leaves Overhead()
// spare bytes) and then applies header protection. pn is the full packet
// number the header carries truncated.
//
// Seal panics on a packet shorter than its header or, with header
// protection, on a payload shorter than MinPayload: both are sender bugs.
func (p *Protector) Seal(pkt []byte, pnOffset int, pn uint64) []byte {
	if pnOffset < 1 || len(pkt) < pnOffset {
		panic("protect: Seal: packet shorter than its header")
	}
	pnLen := wire.PacketNumberLen(pkt[0])
	hdrLen := pnOffset + pnLen
	if len(pkt) < hdrLen {
		panic("protect: Seal: packet shorter than its header")
	}
	if p.aead != nil {
		if tag := p.aead.Overhead(); cap(pkt)-len(pkt) < tag {
			pkt = slices.Grow(pkt, tag)
		}
		p.setNonce(pn)
		sealed := p.aead.Seal(pkt[hdrLen:hdrLen], p.nonce[:], pkt[hdrLen:], pkt[:hdrLen])
		pkt = pkt[:hdrLen+len(sealed)]
	}
	if p.HeaderProtection() {
		if len(pkt) < pnOffset+sampleOffset+sampleLen {
			panic(fmt.Sprintf("protect: Seal: payload shorter than MinPayload(%d) = %d", pnLen, p.MinPayload(pnLen)))
		}
		p.setMask(pkt[pnOffset+sampleOffset : pnOffset+sampleOffset+sampleLen])
		pkt[0] ^= p.mask[0] & shortHeaderMask
		for i := range pnLen {
			pkt[pnOffset+i] ^= p.mask[1+i]
		}
	}
	return pkt
}

// Open authenticates and decrypts a received packet in place. pnOffset is
// where the packet number starts (1 + the session ID length) and pnLen the
// session's fixed packet-number length. Open removes header protection,
// rejects a packet whose first byte encodes another packet-number length,
// recovers the full packet number with wire.DecodePacketNumber against
// largest (or, when havePN is false because no packet has been accepted
// yet, takes the truncated value as it is) and opens the AEAD. It returns
// the full packet number and the plaintext payload, which aliases pkt.
//
// With the NULL suite nothing is authenticated: Open only checks the
// packet-number length. For the AEAD suites a packet whose reserved bits are
// set after successful decryption is rejected with ErrReservedBits.
//
// Errors are ErrShortPacket, ErrPNLength, ErrDecrypt and ErrReservedBits
// (all *ProtectError). After an error pkt must be discarded: header
// protection may already be removed.
//
// Open is Unmask, wire.DecodePacketNumber and Decrypt in one call; a
// receiver that opens packets on several goroutines calls them apart.
func (p *Protector) Open(pkt []byte, pnOffset, pnLen int, largest uint64, havePN bool) (pn uint64, payload []byte, err error) {
	truncated, err := p.Unmask(pkt, pnOffset, pnLen)
	if err != nil {
		return 0, nil, err
	}
	pn = truncated
	if havePN {
		pn = wire.DecodePacketNumber(largest, truncated, pnLen)
	}
	payload, err = p.Decrypt(pkt, pnOffset, pnLen, pn)
	if err != nil {
		return 0, nil, err
	}
	return pn, payload, nil
}

// Unmask removes header protection from a received packet in place and
// returns its truncated packet number (see Open, whose first step it is).
// It fails with ErrPNLength when the first byte encodes another
// packet-number length than pnLen, and ErrShortPacket.
func (p *Protector) Unmask(pkt []byte, pnOffset, pnLen int) (truncated uint64, err error) {
	if pnLen < 1 || pnLen > 4 {
		return 0, ErrPNLength
	}
	if pnOffset < 1 || pnOffset > len(pkt) || len(pkt)-pnOffset < pnLen+p.Overhead() {
		return 0, ErrShortPacket
	}
	if p.HeaderProtection() {
		if len(pkt) < pnOffset+sampleOffset+sampleLen {
			return 0, ErrShortPacket
		}
		p.setMask(pkt[pnOffset+sampleOffset : pnOffset+sampleOffset+sampleLen])
		first := pkt[0] ^ p.mask[0]&shortHeaderMask
		if wire.PacketNumberLen(first) != pnLen {
			return 0, ErrPNLength
		}
		pkt[0] = first
		for i := range pnLen {
			pkt[pnOffset+i] ^= p.mask[1+i]
		}
	} else if wire.PacketNumberLen(pkt[0]) != pnLen {
		return 0, ErrPNLength
	}
	return wire.ReadPacketNumber(pkt[pnOffset:], pnLen), nil
}

// Decrypt opens the AEAD of a packet that Unmask has unmasked, with pn its
// full packet number, in place, and returns the plaintext payload (see
// Open, whose last step it is). Errors are ErrDecrypt and ErrReservedBits;
// after ErrDecrypt the payload bytes of pkt are lost (the AEAD clears them).
func (p *Protector) Decrypt(pkt []byte, pnOffset, pnLen int, pn uint64) ([]byte, error) {
	hdrLen := pnOffset + pnLen
	if pnOffset < 1 || len(pkt) < hdrLen+p.Overhead() {
		return nil, ErrShortPacket
	}
	if p.aead == nil {
		return pkt[hdrLen:], nil
	}
	p.setNonce(pn)
	payload, err := p.aead.Open(pkt[hdrLen:hdrLen], p.nonce[:], pkt[hdrLen:], pkt[:hdrLen])
	if err != nil {
		return nil, ErrDecrypt
	}
	if pkt[0]&reservedBits != 0 {
		return nil, ErrReservedBits
	}
	return payload, nil
}
