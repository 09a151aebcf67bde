// Package wire encodes and decodes the parts of a multicast QUIC packet that
// are not cryptographic: the 1-RTT short header, packet numbers (RFC 9000
// §17.1 and Appendix A.3) and the QUIC frames of RFC 9000 §19 plus DATAGRAM
// (RFC 9221).
//
// A multicast session only ever sends STREAM, RESET_STREAM, PADDING and PING,
// so only those have writers and structured parse results. ParseFrame still
// understands every other frame type well enough to return its exact length,
// so that a receiver can skip, and count, frames the profile prohibits.
//
// Parsers never panic on network input: every malformed input is an error
// that names the frame and the field. The per-packet paths (short header,
// STREAM, RESET_STREAM, PADDING, PING) allocate nothing; parsed data aliases
// the input buffer.
package wire
