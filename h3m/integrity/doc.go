// Package integrity provides resource-level integrity for HTTP resources
// pushed over multicast (draft-pardue-quic-http-mcast §6; spec/http.md,
// "Resource integrity"): body digests and signatures over the pushed
// exchange. It is the last of the profile's three layers of integrity, after
// the session key's AEAD and the signed packet manifests of asymmetric
// sessions (spec/transport.md).
//
// Digests come in two syntaxes:
//   - Digest (RFC 3230), what the draft cites and nghq sends:
//     "SHA-256=base64,SHA-512=base64". Algorithm tokens are case-insensitive;
//     the spellings "sha256"/"sha-256" (nghq sends "sha256=") and
//     "sha512"/"sha-512" are accepted on parse, and the registry names
//     "SHA-256"/"SHA-512" are sent.
//   - Content-Digest (RFC 9530): an RFC 8941 dictionary of byte sequences
//     keyed "sha-256"/"sha-512".
//
// Hasher computes several algorithms in one pass while a body arrives.
//
// Signatures come in two forms:
//   - the "Signature" field of draft-cavage-http-signatures-12, in the draft's
//     text form (CavageStrict) and in the form nghq actually signs
//     (CavageNGHQ, the default); see CavageForm for the difference;
//   - RFC 9421 HTTP Message Signatures (Signature-Input / Signature), with
//     ed25519, ecdsa-p256-sha256, ecdsa-p384-sha384, rsa-pss-sha512 and
//     rsa-v1_5-sha256.
//
// Both sign a Message: the promised request of a push (from its
// PUSH_PROMISE) together with, optionally, the response (its HEADERS).
package integrity
