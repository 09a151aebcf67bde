package unicast

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic"
)

// WellKnownPath is where the server describes its sessions and catalogue.
const WellKnownPath = "/.well-known/h3m"

// DescriptionVersion is the version of the well-known document this
// package writes and reads.
const DescriptionVersion = 1

// Limits on a well-known document read from the network.
const (
	MaxDescriptionSize      = 8 << 20
	MaxDescriptionSessions  = 256
	MaxDescriptionResources = 1 << 16
	maxPathLen              = 8 << 10
)

// ErrDescription is wrapped by every error about a malformed well-known
// document.
var ErrDescription = errors.New("malformed well-known h3m description")

// Description is the well-known document: the server's sessions and its
// catalogue of recently pushed resources (spec/unicast.md).
type Description struct {
	Version   int            `json:"version"`
	Sessions  []SessionInfo  `json:"sessions"`
	Resources []CatalogEntry `json:"resources"`
	// Keys are the public keys of resource signatures the server serves
	// at KeysPath.
	Keys []KeyInfo `json:"keys,omitempty"`

	// ResourcesAfter is set on a description that lists only the resources
	// pushed at or after it (an incremental read, ResourcesAfterParam);
	// the rest of the catalogue is the reader's from earlier reads.
	ResourcesAfter time.Time `json:"resources_after,omitzero"`

	// FromAltSvc is set on descriptions that Discover built from an Alt-Svc
	// field because the server serves no well-known document: every session
	// is then taken as active and there is no catalogue.
	FromAltSvc bool `json:"-"`
}

// SessionInfo describes one session in the well-known document.
type SessionInfo struct {
	// ID is the session ID in lower-case hex.
	ID    string       `json:"id"`
	State SessionState `json:"state"`
	// AltSvc is the session's advertisement as one Alt-Svc alt-value,
	// keys included.
	AltSvc      string    `json:"alt_svc"`
	Successor   string    `json:"successor,omitempty"`
	Predecessor string    `json:"predecessor,omitempty"`
	Announced   time.Time `json:"announced,omitzero"`
	Started     time.Time `json:"started,omitzero"`
	Ended       time.Time `json:"ended,omitzero"`
	Expires     time.Time `json:"expires,omitzero"`
	// Manifests is the path of the session's signed manifests (an
	// asymmetric session's, when the server keeps them).
	Manifests string `json:"manifests,omitempty"`

	// Advertisement is AltSvc parsed (filled by ParseDescription).
	Advertisement altsvc.Advertisement `json:"-"`
}

// DescriptionError reports a malformed well-known document, naming the
// field at fault ("sessions[1].alt_svc").
type DescriptionError struct {
	Field string
	Err   error
}

func (e *DescriptionError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("unicast: %s: %v", ErrDescription, e.Err)
	}
	return fmt.Sprintf("unicast: %s: %s: %v", ErrDescription, e.Field, e.Err)
}

// Unwrap returns the underlying error.
func (e *DescriptionError) Unwrap() []error { return []error{ErrDescription, e.Err} }

func descErr(field string, format string, args ...any) error {
	return &DescriptionError{Field: field, Err: fmt.Errorf(format, args...)}
}

// describe builds the document for the current sessions and catalogue.
func describe(sessions *Sessions, catalog *Catalog) *Description {
	d := &Description{Version: DescriptionVersion, Sessions: []SessionInfo{}, Resources: []CatalogEntry{}}
	if sessions != nil {
		for _, s := range sessions.List() {
			d.Sessions = append(d.Sessions, SessionInfo{
				ID: s.ID, State: s.State, AltSvc: s.Advertisement.String(),
				Successor: s.Successor, Predecessor: s.Predecessor,
				Announced: s.Announced, Started: s.Started, Ended: s.Ended, Expires: s.Expires,
			})
		}
	}
	if catalog != nil {
		d.Resources = append(d.Resources, catalog.List()...)
	}
	return d
}

// description is the document the server serves: describe, with the
// manifest paths and the keys.
func (s *Server) description() *Description {
	d := describe(s.Sessions, s.Catalog)
	for i := range d.Sessions {
		if s.Manifests.Has(d.Sessions[i].ID) {
			d.Sessions[i].Manifests = ManifestsPath + "/" + d.Sessions[i].ID
		}
	}
	d.Keys = s.Keys.List()
	return d
}

// MaxDescriptionKeys caps the keys of a well-known document.
const MaxDescriptionKeys = 256

// ParseDescription parses and checks a well-known document: the version,
// every session (a valid hex ID, a known state, an alt_svc that holds
// exactly one valid h3m advertisement of that same session ID, hex
// successor and predecessor IDs, no ID twice, a manifests path), every key
// (a valid key ID, listed once) and every resource (a path
// that is an absolute request path, a non-negative size, a well-formed
// entity tag and digests, a hex session ID). Unknown members are ignored so
// that later versions can add some. Errors are *DescriptionError.
func ParseDescription(b []byte) (*Description, error) {
	if len(b) > MaxDescriptionSize {
		return nil, descErr("", "%d bytes, limit %d", len(b), MaxDescriptionSize)
	}
	var d Description
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, &DescriptionError{Err: fmt.Errorf("JSON: %w", err)}
	}
	if _, err := dec.Token(); err == nil {
		return nil, descErr("", "data after the JSON object")
	}
	if d.Version != DescriptionVersion {
		return nil, descErr("version", "%d, this client reads version %d", d.Version, DescriptionVersion)
	}
	if len(d.Sessions) > MaxDescriptionSessions {
		return nil, descErr("sessions", "%d sessions, limit %d", len(d.Sessions), MaxDescriptionSessions)
	}
	if len(d.Resources) > MaxDescriptionResources {
		return nil, descErr("resources", "%d resources, limit %d", len(d.Resources), MaxDescriptionResources)
	}
	seen := make(map[string]bool, len(d.Sessions))
	for i := range d.Sessions {
		s := &d.Sessions[i]
		field := fmt.Sprintf("sessions[%d]", i)
		id, err := normalizeID(s.ID)
		if err != nil {
			return nil, descErr(field+".id", "%v", err)
		}
		s.ID = id
		if seen[id] {
			return nil, descErr(field+".id", "session %q listed twice", id)
		}
		seen[id] = true
		if !s.State.valid() {
			return nil, descErr(field+".state", "%q is not announced, active or ended", s.State)
		}
		if s.Successor != "" {
			if s.Successor, err = normalizeID(s.Successor); err != nil {
				return nil, descErr(field+".successor", "%v", err)
			}
		}
		if s.Predecessor != "" {
			if s.Predecessor, err = normalizeID(s.Predecessor); err != nil {
				return nil, descErr(field+".predecessor", "%v", err)
			}
		}
		if s.Successor != "" && s.Successor == id {
			return nil, descErr(field+".successor", "a session cannot succeed itself")
		}
		ad, err := parseOneAdvertisement(s.AltSvc)
		if err != nil {
			return nil, descErr(field+".alt_svc", "%v", err)
		}
		if got := SessionID(&ad); got != id {
			return nil, descErr(field+".alt_svc", "session-id %q does not match id %q", got, id)
		}
		s.Advertisement = ad
		if s.Manifests != "" {
			if err := checkPath(s.Manifests); err != nil {
				return nil, descErr(field+".manifests", "%v", err)
			}
		}
	}
	if len(d.Keys) > MaxDescriptionKeys {
		return nil, descErr("keys", "%d keys, limit %d", len(d.Keys), MaxDescriptionKeys)
	}
	keyIDs := make(map[string]bool, len(d.Keys))
	for i, k := range d.Keys {
		field := fmt.Sprintf("keys[%d]", i)
		if err := checkKeyID(k.ID); err != nil {
			return nil, descErr(field+".id", "%v", err)
		}
		if keyIDs[k.ID] {
			return nil, descErr(field+".id", "key %q listed twice", k.ID)
		}
		keyIDs[k.ID] = true
		if len(k.Alg) > 64 {
			return nil, descErr(field+".alg", "%d bytes", len(k.Alg))
		}
	}
	for i := range d.Resources {
		r := &d.Resources[i]
		field := fmt.Sprintf("resources[%d]", i)
		if err := checkPath(r.Path); err != nil {
			return nil, descErr(field+".path", "%v", err)
		}
		if r.Size < 0 {
			return nil, descErr(field+".size", "negative (%d)", r.Size)
		}
		if r.ETag != "" && !validETag(r.ETag) {
			return nil, descErr(field+".etag", "%q is not an entity tag", r.ETag)
		}
		if r.ContentDigest != "" {
			if _, err := integrity.ParseContentDigest(r.ContentDigest); err != nil {
				return nil, descErr(field+".content_digest", "%v", err)
			}
		}
		if r.Digest != "" {
			if _, err := integrity.ParseDigest(r.Digest); err != nil {
				return nil, descErr(field+".digest", "%v", err)
			}
		}
		id, err := normalizeID(r.Session)
		if err != nil {
			return nil, descErr(field+".session", "%v", err)
		}
		r.Session = id
	}
	return &d, nil
}

// parseOneAdvertisement parses an alt-value that must hold exactly one
// valid h3m advertisement.
func parseOneAdvertisement(v string) (altsvc.Advertisement, error) {
	ads, clear, err := altsvc.Parse(v)
	switch {
	case err != nil:
		return altsvc.Advertisement{}, err
	case clear:
		return altsvc.Advertisement{}, errors.New(`"clear" is not a session`)
	case len(ads) != 1:
		return altsvc.Advertisement{}, fmt.Errorf("%d h3m alternatives, want exactly 1", len(ads))
	}
	if err := ads[0].Validate(); err != nil {
		return altsvc.Advertisement{}, err
	}
	return ads[0], nil
}

// normalizeID checks a hex session ID and returns it in lower case.
func normalizeID(s string) (string, error) {
	if len(s)%2 != 0 {
		return "", fmt.Errorf("session ID %q: odd number of hex digits", truncate(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("session ID %q: not hex", truncate(s))
	}
	if len(b) > mquic.MaxSessionIDLen {
		return "", fmt.Errorf("session ID of %d bytes, limit %d", len(b), mquic.MaxSessionIDLen)
	}
	return hex.EncodeToString(b), nil
}

// checkPath accepts an origin-form request path: it starts with "/", and
// holds no whitespace, control characters or fragment.
func checkPath(p string) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("%q does not start with /", truncate(p))
	}
	if len(p) > maxPathLen {
		return fmt.Errorf("%d bytes, limit %d", len(p), maxPathLen)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return fmt.Errorf("%q: byte %#x at %d is not allowed in a request path", truncate(p), c, i)
		}
	}
	return nil
}

// validETag reports whether s is an RFC 9110 entity-tag: an optional W/ and
// a quoted string of etagc characters.
func validETag(s string) bool {
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

// strongETag reports whether s is a strong entity tag (usable in If-Range).
func strongETag(s string) bool {
	return validETag(s) && !strings.HasPrefix(s, "W/")
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
