// Package fec implements forward error correction for multicast QUIC
// sessions: a sender adds repair packets over blocks of consecutive packets,
// and a receiver rebuilds the packets of a block it lost from the ones it
// got and the repair packets, before it asks anyone for them.
//
// The code is a systematic Reed-Solomon code over GF(2^8) with a Cauchy
// generator matrix (the field's polynomial is x^8+x^4+x^3+x^2+1): repair
// symbol j of a block is the sum over its source symbols i of
// C(j, i) · X_i with C(j, i) = 1 / ((255 − j) ⊕ i). The coefficients do not
// depend on the block's length, so a sender encodes each packet as it is
// sealed and may close a block early; any k of a block's k + m symbols
// rebuild it (a Cauchy matrix is MDS).
//
// What is protected is each packet's plaintext payload — its frames, before
// packet protection — prefixed by its 16-bit length and padded with zeros to
// the block's symbol length (the FECFRAME "ADU information" of RFC 6363);
// a payload longer than that ends in PADDING (zeros) the symbol leaves out,
// so that a sender may pad its packets to the size of repair packets.
// A receiver rebuilds the payload of a lost packet and protects it again
// with the session key and the packet's number: that gives back the
// datagram as it was sent, byte for byte, which then goes through the
// receiver's ordinary path (AEAD, replay window, manifests of an asymmetric
// session) like any datagram.
//
// The package has three parts:
//
//   - the wire formats: the extension value (Params) and the REPAIR frame
//     (Repair, AppendFrame, ParseFrame);
//   - Encoder, the sender side: keeps each packet's payload as it is
//     sealed, computes a block's repair symbols when it closes and hands
//     out its REPAIR frames;
//   - Decoder, the receiver side: keeps the payloads of recent packets in
//     pooled buffers, collects repair symbols per block and rebuilds what a
//     block lost as soon as it has enough symbols.
//
// spec/transport.md ("Forward error correction") is the normative
// description. The field arithmetic over packet-sized slices is the
// vectorized code of github.com/klauspost/reedsolomon, but for the
// sender's encoding of a whole block on CPUs with AVX-512 GFNI, which a
// kernel of this package does (gfni.go says why); the scalar arithmetic of
// the few coefficients per block is here (gf.go).
package fec
