package h3m

import (
	"github.com/h3m-project/h3m/h3m/altsvc"
)

// Profile is what a pusher and a receiver must agree on beyond the
// transport parameters: the HTTP-level session parameters.
type Profile struct {
	// DataOffset selects DATA_WITH_OFFSET frames for bodies: the session's
	// protocol-id carries altsvc.ExperimentDataOffset.
	DataOffset bool
	// InOrderStreams says the session's receivers take stream bytes only
	// in order and each once, as nghq's receiver of draft 07 sessions does:
	// the pusher then sends every promise and push stream head once, not
	// twice (spec/http.md, "Repeated heads").
	InOrderStreams bool
	// DigestAlgorithms and SignatureAlgorithms are the advertised sets
	// (nil: unrestricted).
	DigestAlgorithms    []string
	SignatureAlgorithms []string
}

// ProfileOf returns the profile an advertisement describes.
func ProfileOf(ad *altsvc.Advertisement) Profile {
	return Profile{
		DataOffset:          ad.HasExperiment(altsvc.ExperimentDataOffset),
		InOrderStreams:      ad.Draft == 7,
		DigestAlgorithms:    ad.DigestAlgorithms,
		SignatureAlgorithms: ad.SignatureAlgorithms,
	}
}
