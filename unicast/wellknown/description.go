package wellknown

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic"
)

// Version is the version of the document this package writes and reads.
const Version = 1

// Limits on a document read from the network.
const (
	MaxSize      = 8 << 20
	MaxSessions  = 256
	MaxResources = 1 << 16
	MaxKeys      = 256
	// MaxRepairURLs caps the repair base URLs of a description.
	MaxRepairURLs = 16
	maxPathLen    = 8 << 10
)

// ErrMalformed is wrapped by every error about a malformed document.
var ErrMalformed = errors.New("malformed well-known h3m description")

// Description is the well-known document: the origin's sessions, its
// catalogue of recently pushed resources and its signature keys
// (spec/unicast.md).
type Description struct {
	Version   int            `json:"version"`
	Sessions  []SessionInfo  `json:"sessions"`
	Resources []CatalogEntry `json:"resources"`
	// Keys are the public keys of resource signatures the origin serves
	// at KeysPath.
	Keys []KeyInfo `json:"keys,omitempty"`
	// RepairURLs are the base URLs (https, nearest or preferred first) of
	// the HTTP caches receivers repair and fall back through, separate
	// from the origin that serves this document and the keys
	// (spec/unicast.md, "Repair through caches"). A resource's URL there is
	// the base's scheme and authority with the base's path (without its
	// trailing "/") before the resource's origin-form target. Parse
	// normalises them (ParseRepairURL).
	RepairURLs []string `json:"repair_urls,omitempty"`
	// CatalogKey, when set, is the Ed25519 public key (unpadded base64url,
	// ParseCatalogKey) that signs each catalogue entry the origin serves
	// alone at CatalogEntryPath: receivers may then fetch an entry through
	// the repair URLs, which may not alter it (spec/unicast.md, "Signed
	// catalogue entries").
	CatalogKey string `json:"catalog_key,omitempty"`

	// ResourcesAfter is set on a description that lists only the resources
	// pushed at or after it (an incremental read, ResourcesAfterParam);
	// the rest of the catalogue is the reader's from earlier reads.
	ResourcesAfter time.Time `json:"resources_after,omitzero"`
	// CatalogNext is the number the catalogue's next entry will get (its
	// entries are numbered from 1 in the order added): a reader asks for
	// what was added since with ResourcesFromParam. 0: an origin that does
	// not number them. ResourcesFrom is set on a description that lists
	// only the entries from that number on.
	CatalogNext   uint64 `json:"catalog_next,omitempty"`
	ResourcesFrom uint64 `json:"resources_from,omitempty"`

	// FromAltSvc is set on descriptions a client built from an Alt-Svc
	// field because the origin serves no well-known document: every session
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
	// Channel, when set, is the path prefix of everything the session
	// carries (one rendition of a DASH ladder, "/video/720p/"): an
	// origin-form path ending in "/" (ParseChannel). A gateway joins such a
	// session only while its players request paths under it; a session
	// without one carries anything and is joined at once (spec/unicast.md,
	// "Channels").
	Channel string `json:"channel,omitempty"`

	// Advertisement is AltSvc parsed (filled by Parse).
	Advertisement altsvc.Advertisement `json:"-"`
}

// SessionState is where a multicast session stands in its life.
type SessionState string

// The states of a session.
const (
	// StateAnnounced: advertised so that receivers can join ahead, not
	// sending yet (a rollover successor, or a session about to start).
	StateAnnounced SessionState = "announced"
	// StateActive: sending.
	StateActive SessionState = "active"
	// StateEnded: finished (its last push carried "connection: close").
	StateEnded SessionState = "ended"
)

// Valid reports whether s is one of the states.
func (s SessionState) Valid() bool {
	return s == StateAnnounced || s == StateActive || s == StateEnded
}

// CatalogEntry describes one pushed resource: what a receiver should have
// received, and the representation (ETag, digests) it must match.
type CatalogEntry struct {
	// Path is the request path the push promised.
	Path string `json:"path"`
	// Size is the representation's length in bytes.
	Size int64 `json:"size"`
	// ContentType is the pushed Content-Type, if any.
	ContentType string `json:"content_type,omitempty"`
	// ETag is the pushed entity tag (quotes included), as the origin
	// serves it over unicast.
	ETag string `json:"etag,omitempty"`
	// ContentDigest is the pushed Content-Digest (RFC 9530) value.
	ContentDigest string `json:"content_digest,omitempty"`
	// Digest is the pushed Digest (RFC 3230) value.
	Digest string `json:"digest,omitempty"`
	// Pushed is when the push was handed to the transport.
	Pushed time.Time `json:"pushed"`
	// Session is the hex ID of the session that carried it, PushID its
	// push ID there.
	Session string `json:"session"`
	PushID  uint64 `json:"push_id"`
	// StreamID is the push stream that carried it (0: not given): a
	// receiver that lost the stream's first packet, and with it the push
	// ID, identifies the rest of the stream by it.
	StreamID uint64 `json:"stream_id,omitempty"`
	// Range, when set, marks a multicast repair: a partial push of the
	// representation, whose Content-Range it gives ("bytes 0-99/1000").
	// It is listed only to name its push ID; it is no resource to fetch.
	Range string `json:"range,omitempty"`
}

// KeyInfo describes a published key.
type KeyInfo struct {
	// ID is the key ID signatures name (RFC 9421 keyid, cavage keyId).
	ID string `json:"id"`
	// Alg is the RFC 9421 algorithm name the key signs with ("ed25519",
	// "ecdsa-p256-sha256", "rsa-pss-sha512", ...); empty when unknown.
	Alg string `json:"alg,omitempty"`
}

// ParseError reports a malformed document, naming the field at fault
// ("sessions[1].alt_svc").
type ParseError struct {
	Field string
	Err   error
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("wellknown: %s: %v", ErrMalformed, e.Err)
	}
	return fmt.Sprintf("wellknown: %s: %s: %v", ErrMalformed, e.Field, e.Err)
}

// Unwrap returns ErrMalformed and the underlying error.
func (e *ParseError) Unwrap() []error { return []error{ErrMalformed, e.Err} }

func descErr(field string, format string, args ...any) error {
	return &ParseError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Parse parses and checks a document: the version,
// every session (a valid hex ID, a known state, an alt_svc that holds
// exactly one valid h3m advertisement of that same session ID, hex
// successor and predecessor IDs, no ID twice, a manifests path, a channel
// that ParseChannel accepts), every key
// (a valid key ID, listed once) and every resource (a path
// that is an absolute request path, a non-negative size, a well-formed
// entity tag and digests, a hex session ID). Unknown members are ignored so
// that later versions can add some. Errors are *ParseError.
func Parse(b []byte) (*Description, error) {
	if len(b) > MaxSize {
		return nil, descErr("", "%d bytes, limit %d", len(b), MaxSize)
	}
	var d Description
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, &ParseError{Err: fmt.Errorf("JSON: %w", err)}
	}
	if _, err := dec.Token(); err == nil {
		return nil, descErr("", "data after the JSON object")
	}
	if d.Version != Version {
		return nil, descErr("version", "%d, this client reads version %d", d.Version, Version)
	}
	if len(d.Sessions) > MaxSessions {
		return nil, descErr("sessions", "%d sessions, limit %d", len(d.Sessions), MaxSessions)
	}
	if len(d.Resources) > MaxResources {
		return nil, descErr("resources", "%d resources, limit %d", len(d.Resources), MaxResources)
	}
	seen := make(map[string]bool, len(d.Sessions))
	for i := range d.Sessions {
		s := &d.Sessions[i]
		field := fmt.Sprintf("sessions[%d]", i)
		id, err := ParseSessionID(s.ID)
		if err != nil {
			return nil, descErr(field+".id", "%v", err)
		}
		s.ID = id
		if seen[id] {
			return nil, descErr(field+".id", "session %q listed twice", id)
		}
		seen[id] = true
		if !s.State.Valid() {
			return nil, descErr(field+".state", "%q is not announced, active or ended", s.State)
		}
		if s.Successor != "" {
			if s.Successor, err = ParseSessionID(s.Successor); err != nil {
				return nil, descErr(field+".successor", "%v", err)
			}
		}
		if s.Predecessor != "" {
			if s.Predecessor, err = ParseSessionID(s.Predecessor); err != nil {
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
		if s.Channel != "" {
			if _, err := ParseChannel(s.Channel); err != nil {
				return nil, descErr(field+".channel", "%v", err)
			}
		}
	}
	if len(d.Keys) > MaxKeys {
		return nil, descErr("keys", "%d keys, limit %d", len(d.Keys), MaxKeys)
	}
	keyIDs := make(map[string]bool, len(d.Keys))
	for i, k := range d.Keys {
		field := fmt.Sprintf("keys[%d]", i)
		if err := CheckKeyID(k.ID); err != nil {
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
	if len(d.RepairURLs) > MaxRepairURLs {
		return nil, descErr("repair_urls", "%d URLs, limit %d", len(d.RepairURLs), MaxRepairURLs)
	}
	for i, v := range d.RepairURLs {
		u, err := ParseRepairURL(v)
		if err != nil {
			return nil, descErr(fmt.Sprintf("repair_urls[%d]", i), "%v", err)
		}
		d.RepairURLs[i] = u.String()
	}
	if d.CatalogKey != "" {
		if _, err := ParseCatalogKey(d.CatalogKey); err != nil {
			return nil, descErr("catalog_key", "%v", err)
		}
	}
	for i := range d.Resources {
		if err := checkEntry(fmt.Sprintf("resources[%d]", i), &d.Resources[i]); err != nil {
			return nil, err
		}
	}
	return &d, nil
}

// checkEntry checks a catalogue entry (Parse) and puts its session ID in
// lower case.
func checkEntry(field string, r *CatalogEntry) error {
	if err := checkPath(r.Path); err != nil {
		return descErr(field+".path", "%v", err)
	}
	if r.Size < 0 {
		return descErr(field+".size", "negative (%d)", r.Size)
	}
	if r.ETag != "" && !ValidETag(r.ETag) {
		return descErr(field+".etag", "%q is not an entity tag", r.ETag)
	}
	if r.ContentDigest != "" {
		if _, err := integrity.ParseContentDigest(r.ContentDigest); err != nil {
			return descErr(field+".content_digest", "%v", err)
		}
	}
	if r.Digest != "" {
		if _, err := integrity.ParseDigest(r.Digest); err != nil {
			return descErr(field+".digest", "%v", err)
		}
	}
	id, err := ParseSessionID(r.Session)
	if err != nil {
		return descErr(field+".session", "%v", err)
	}
	r.Session = id
	return nil
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

// ParseSessionID checks a hex session ID (at most mquic.MaxSessionIDLen
// bytes) and returns it in lower case.
func ParseSessionID(s string) (string, error) {
	if len(s)%2 != 0 {
		return "", fmt.Errorf("session ID %q: odd number of hex digits", Truncate(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("session ID %q: not hex", Truncate(s))
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
		return fmt.Errorf("%q does not start with /", Truncate(p))
	}
	if len(p) > maxPathLen {
		return fmt.Errorf("%d bytes, limit %d", len(p), maxPathLen)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return fmt.Errorf("%q: byte %#x at %d is not allowed in a request path", Truncate(p), c, i)
		}
	}
	return nil
}
