package forger

import (
	"crypto/rand"
	"encoding/binary"
	"errors"

	"github.com/h3m-project/h3m/mquic/manifest"
)

// Manifest describes a forged manifest: one that passes every check a
// receiver makes before the signature (the session's Manifest Stream ID,
// algorithm and key ID, a well-formed encoding) and carries random bytes
// where the signature goes.
type Manifest struct {
	Seq     uint32
	FirstPN uint64
	// Digests are the SHA-256 digests of the listed packets (at least
	// one): random ones, or those of real packets a forger has seen. They
	// are listed as the session's profile says (salted and truncated with
	// a random salt for manifest.DigestSalted128).
	Digests []manifest.Digest
}

// ManifestFrame returns a MANIFEST frame carrying the forged manifest m, for
// an asymmetric session (one that advertises manifest.ExtensionID).
func (f *Forger) ManifestFrame(m Manifest) ([]byte, error) {
	prof, err := f.profile()
	if err != nil {
		return nil, err
	}
	if len(m.Digests) == 0 || len(m.Digests) > manifest.MaxDigests {
		return nil, errors.New("forger: a manifest lists 1 to 32767 digests")
	}
	alg := prof.Key.Algorithm()
	id := prof.Key.ID()
	b := binary.BigEndian.AppendUint32(nil, prof.StreamID)
	b = binary.BigEndian.AppendUint32(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, m.FirstPN)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Digests)))
	var salt []byte
	if prof.Digest == manifest.DigestSalted128 {
		salt = make([]byte, manifest.SaltLen)
		rand.Read(salt)
		b = append(b, salt...)
	}
	for _, d := range m.Digests {
		b = append(b, prof.Digest.List(salt, d)...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(alg))
	b = append(b, id[:]...)
	sig := make([]byte, alg.SignatureLen())
	rand.Read(sig)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sig)))
	b = append(b, sig...)
	return manifest.AppendFrame(nil, b), nil
}

// RandomDigests returns n random packet digests.
func RandomDigests(n int) []manifest.Digest {
	ds := make([]manifest.Digest, n)
	for i := range ds {
		rand.Read(ds[i][:])
	}
	return ds
}

// profile returns the session's packet-authentication profile.
func (f *Forger) profile() (*manifest.Profile, error) {
	for _, e := range f.params.Extensions {
		if e.ID == manifest.ExtensionID {
			return manifest.ParseProfile(e.Value)
		}
	}
	return nil, errors.New("forger: the session is symmetric: it has no manifests")
}
