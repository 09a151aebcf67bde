// Package manifest implements asymmetric packet authentication for multicast
// QUIC sessions: signed manifests of packet digests, in the spirit of AMBI
// (draft-ietf-mboned-ambi) and of MC_INTEGRITY in draft-jholland-quic-multicast.
//
// Every receiver of a session holds its AEAD key, so the AEAD alone cannot
// tell the sender from another receiver. In an asymmetric session the sender
// also hashes every packet it sends (SHA-256 over the UDP payload exactly as
// sent) and periodically signs a manifest listing the digests of a run of
// packet numbers. Manifests travel in-band in an extension frame (FrameType),
// which the session advertises in its extensions parameter under
// ExtensionID with a value (Profile) that pins the signing key. A receiver
// processes a packet only once a manifest whose signature verifies lists its
// digest.
//
// The package has four parts:
//
//   - the wire formats: Manifest (Parse, Manifest.Append), the MANIFEST frame
//     (AppendFrame, ParseFrame) and the extension value (Profile);
//   - keys: Algorithm, PublicKey, KeyID and SigningKey (Ed25519, and ECDSA
//     P-256 with SHA-256 as an option);
//   - Signer, the sender side: collects packet digests and hands out manifest
//     frames, each manifest sent Redundancy times;
//   - Authenticator, the receiver side: verifies manifests, keeps verified
//     digests for a bounded time, holds unauthenticated packets in bounded
//     memory until a manifest lists them or they expire, and counts every
//     drop.
//
// spec/transport.md ("Asymmetric authentication") is the normative
// description, with a worked example that testdata/vector.txt reproduces.
package manifest
