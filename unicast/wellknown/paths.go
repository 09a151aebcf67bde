package wellknown

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
)

// Path is where the origin describes its sessions and catalogue.
const Path = "/.well-known/h3m"

// KeysPath is the prefix under which the origin serves the public keys of
// resource signatures, as PEM (KeyPath).
const KeysPath = Path + "/keys"

// ManifestsPath is the prefix under which the origin serves the signed
// manifests of each asymmetric session (ManifestPath).
const ManifestsPath = Path + "/manifests"

// ResourcesAfterParam is the query parameter of the document that asks for
// the catalogue entries pushed at or after a time (RFC 3339).
const ResourcesAfterParam = "resources_after"

// ResourcesFromParam is the query parameter of the document that asks for
// the catalogue entries from a number on: the catalogue numbers its
// entries in the order it adds them, and each document gives the number
// the next one will get (Description.CatalogNext).
const ResourcesFromParam = "resources_from"

// ResourcesFromNext is the value of ResourcesFromParam that asks for no
// entry: from the number the next will get, whatever it is now. A reader
// that knows it misses nothing (every session it follows ended in-band, no
// push ID missing) reads the sessions only.
const ResourcesFromNext = "next"

// Limits on keys.
const (
	// MaxKeyIDLen is the longest key ID published or resolved.
	MaxKeyIDLen = 256
	// DefaultKeyMaxAge is the max-age the origin serves keys with, and how
	// long a client keeps a key whose response gives none.
	DefaultKeyMaxAge = 10 * time.Minute
)

// MaxPNRanges is the most packet-number ranges one manifests request may
// ask for (?pn=).
const MaxPNRanges = 16

// ErrKeyID is a key ID that cannot be published or resolved.
var ErrKeyID = errors.New("wellknown: bad key ID")

// KeyPath returns the path at which the key id is served: KeysPath and the
// path-escaped key ID.
func KeyPath(id string) string { return KeysPath + "/" + url.PathEscape(id) }

// ManifestPath returns the path at which the manifests of session id (hex)
// are served.
func ManifestPath(id string) string { return ManifestsPath + "/" + id }

// SessionID returns the hex ID of an advertisement's session, which names
// the session in the document.
func SessionID(ad *altsvc.Advertisement) string {
	return hex.EncodeToString(ad.Session.SessionID)
}

// CheckKeyID accepts key IDs of visible ASCII characters other than the
// quote and the backslash (so that both signature syntaxes carry them
// unescaped), at most MaxKeyIDLen bytes. Errors wrap ErrKeyID.
func CheckKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen {
		return fmt.Errorf("%w: %d bytes (1 to %d)", ErrKeyID, len(id), MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("%w: %q: byte %#x at %d", ErrKeyID, Truncate(id), c, i)
		}
	}
	return nil
}

// ValidETag reports whether s is an RFC 9110 entity-tag: an optional W/ and
// a quoted string of etagc characters.
func ValidETag(s string) bool {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; c != 0x21 && (c < 0x23 || c == 0x7f) {
			return false
		}
	}
	return true
}

// Truncate shortens a string read from the network to 64 bytes for error
// messages and logs.
func Truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
