package h3m

// This file holds what the unicast side (package unicast) needs from h3m
// beyond the receive path: additive accessors only.

// Verify runs the checks of v on res exactly as the Receiver does when a
// resource completes: digests, and signatures when v has keys. The unicast
// client calls it after a range repair has filled the bytes that multicast
// lost, so that a repaired resource passes the same checks as one that
// arrived whole. A nil v checks the digests present.
func (v *Verifier) Verify(res *Resource, prof Profile) error {
	return v.verify(res, prof)
}
