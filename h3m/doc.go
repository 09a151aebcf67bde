// Package h3m maps HTTP/3 onto a multicast QUIC session
// (draft-pardue-quic-http-mcast): a Pusher turns HTTP resources into server
// pushes — a PUSH_PROMISE on the reserved stream 0, then a push stream with
// HEADERS and the body — and a Receiver turns the pushes it receives back
// into resources, reporting exactly which body bytes were lost so that they
// can be repaired over unicast.
//
// Sub-packages hold the codecs: altsvc (the advertisement), h3frame (HTTP/3
// frames and QPACK field sections) and integrity (digests and signatures).
package h3m
