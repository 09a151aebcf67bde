package h3m

import (
	"github.com/h3m-project/h3m/h3m/altsvc"
)

// ExperimentDataOffset is the protocol-id label of sessions whose bodies
// travel in DATA_WITH_OFFSET frames (draft §5.5, draft-hurst).
const ExperimentDataOffset = "data-offset"

// Profile is what a pusher and a receiver must agree on beyond the
// transport parameters: the HTTP-level session parameters.
type Profile struct {
	// DataOffset selects DATA_WITH_OFFSET frames for bodies.
	DataOffset bool
	// DigestAlgorithms and SignatureAlgorithms are the advertised sets
	// (nil: unrestricted).
	DigestAlgorithms    []string
	SignatureAlgorithms []string
}

// ProfileOf returns the profile an advertisement describes.
func ProfileOf(ad *altsvc.Advertisement) Profile {
	return Profile{
		DataOffset:          ad.HasExperiment(ExperimentDataOffset),
		DigestAlgorithms:    ad.DigestAlgorithms,
		SignatureAlgorithms: ad.SignatureAlgorithms,
	}
}
