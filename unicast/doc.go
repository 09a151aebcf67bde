// Package unicast is the unicast side of h3m, built on quic-go's HTTP/3: the
// server that announces multicast sessions and serves the resources they
// carry, and the client that discovers the sessions, joins them, repairs what
// multicast lost and falls back to unicast when multicast does not arrive.
//
// Server side:
//   - Sessions is the registry of multicast sessions (announced, active,
//     ended, with rollover successors). The server advertises the live ones
//     in an Alt-Svc field on every response and describes them all, with a
//     Catalog of recently pushed resources, as JSON at /.well-known/h3m.
//     Session keys travel only over this TLS connection.
//   - FileServer serves a directory with strong content-derived ETags,
//     Content-Digest/Repr-Digest/Digest fields and byte ranges (including
//     multipart/byteranges and If-Range), so that a repair is always taken
//     from the representation that was pushed.
//   - Publisher is the sender side: it runs multicast sessions (mquic.Sender
//     and h3m.Pusher), pushes files with the same ETag and digests the
//     FileServer serves, records every push in the Catalog and performs
//     rollovers. For asymmetric sessions it signs manifests of packet
//     digests and records them in Manifests, which the server serves at
//     ManifestsPath (application/ambi, ranges and live streams); the key of
//     its resource signer goes in Keys, served at KeysPath.
//
// Client side: Client joins every announced or active session, delivers each
// resource once (deduplicated by path and ETag), repairs incomplete
// resources with range requests (merged gaps, bounded concurrency, jittered
// back-off, digest verification), fetches whole what multicast lost entirely,
// and switches to unicast for everything while multicast is silent. Each
// Delivery says how the resource came: multicast, repair or fallback. In
// asymmetric sessions it fetches the manifests that in-band delivery lost
// (ManifestMode); it can refuse symmetric sessions (RequireAsymmetric) and
// require resource signatures (RequireSignature), whose keys it fetches
// from the origin over TLS.
//
// The well-known JSON document is specified in spec/unicast.md; Discover and
// ParseDescription read it.
package unicast
