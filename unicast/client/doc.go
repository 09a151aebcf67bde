// Package client is the receiver's side of h3m's unicast HTTP/3: a Client
// discovers the multicast sessions an origin announces (Discover), joins
// every announced or active one, delivers each resource once (deduplicated
// by path and ETag), repairs incomplete resources with range requests
// (merged gaps, bounded concurrency, jittered back-off, digest
// verification), fetches whole what multicast lost entirely, and switches
// to unicast for everything while multicast is silent. Each Delivery says
// how the resource came (Via).
//
// In asymmetric sessions it fetches the manifests that in-band delivery
// lost (ManifestMode); it can refuse symmetric sessions
// (Config.RequireAsymmetric) and require resource signatures
// (Config.RequireSignature), whose keys it fetches from the origin over
// TLS.
package client
