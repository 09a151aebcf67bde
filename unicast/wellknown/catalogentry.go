package wellknown

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CatalogPath is the prefix under which the origin serves each catalogue
// entry alone, signed (CatalogEntryPath): an immutable document that HTTP
// caches may store and serve, since the signature, made with the key the
// description lists (Description.CatalogKey), proves it to the receiver
// (spec/unicast.md, "Signed catalogue entries").
const CatalogPath = Path + "/catalog"

// MaxSignedEntrySize bounds a signed entry document.
const MaxSignedEntrySize = 8 << 10

// catalogSigContext starts the bytes a catalogue entry's signature covers,
// so that no other signature made with the key can pass for one.
const catalogSigContext = "h3m catalogue entry v1\x00"

// ErrEntrySignature is wrapped by the error of a signed entry whose
// signature does not verify with the catalogue key.
var ErrEntrySignature = errors.New("wellknown: the catalogue entry's signature does not verify")

// CatalogEntryPath returns the path of the signed entry of push pushID of
// session (lower-case hex).
func CatalogEntryPath(session string, pushID uint64) string {
	return CatalogPath + "/" + session + "/" + strconv.FormatUint(pushID, 10)
}

// CatalogEntryTarget returns CatalogEntryPath as a Target, to be put under
// a repair URL (Target.On). ParseTarget refuses it (its ".well-known"
// segment names a hidden file): a receiver only asks a cache for it when
// it can check the answer's signature.
func CatalogEntryTarget(session string, pushID uint64) Target {
	p := CatalogEntryPath(session, pushID)
	return Target{Path: p, RawPath: p}
}

// CatalogStreamEntryPath returns the path of the signed entry of the push
// that stream streamID of session carried: what a receiver knows of a push
// stream whose first packet, with its push ID, was lost (an orphan). A
// stream ID names one push of a session for good, as a push ID does.
func CatalogStreamEntryPath(session string, streamID uint64) string {
	return CatalogPath + "/" + session + "/" + streamSegment + "/" + strconv.FormatUint(streamID, 10)
}

// streamSegment separates a stream ID from a push ID in the path of a
// signed entry.
const streamSegment = "stream"

// EntryRef names one signed catalogue entry: push PushID of Session, or,
// when ByStream, the push that stream StreamID of Session carried.
type EntryRef struct {
	Session  string
	PushID   uint64
	StreamID uint64
	ByStream bool
}

// Path returns the path of the signed entry r names.
func (r EntryRef) Path() string {
	if r.ByStream {
		return CatalogStreamEntryPath(r.Session, r.StreamID)
	}
	return CatalogEntryPath(r.Session, r.PushID)
}

// Target returns Path as a Target (CatalogEntryTarget).
func (r EntryRef) Target() Target {
	p := r.Path()
	return Target{Path: p, RawPath: p}
}

// Names reports whether entry e is the one r names.
func (r EntryRef) Names(e *CatalogEntry) bool {
	if e.Session != r.Session {
		return false
	}
	if r.ByStream {
		return r.StreamID != 0 && e.StreamID == r.StreamID // 0: not given
	}
	return e.PushID == r.PushID
}

// ParseCatalogEntryPath returns the session and push ID a path under
// CatalogPath names; ok is false for any other path (a push ID in decimal
// without leading zeros, a hex session ID in lower case), a stream's
// included (ParseCatalogEntryRef).
func ParseCatalogEntryPath(p string) (session string, pushID uint64, ok bool) {
	r, ok := ParseCatalogEntryRef(p)
	if !ok || r.ByStream {
		return "", 0, false
	}
	return r.Session, r.PushID, true
}

// ParseCatalogEntryRef returns the entry a path under CatalogPath names:
// CatalogEntryPath or CatalogStreamEntryPath, in their canonical forms
// (decimal numbers without leading zeros, a hex session ID in lower case;
// stream 0 names nothing).
func ParseCatalogEntryRef(p string) (EntryRef, bool) {
	rest, found := strings.CutPrefix(p, CatalogPath+"/")
	if !found {
		return EntryRef{}, false
	}
	session, num, found := strings.Cut(rest, "/")
	if !found || session == "" {
		return EntryRef{}, false
	}
	id, err := ParseSessionID(session)
	if err != nil || id != session {
		return EntryRef{}, false
	}
	r := EntryRef{Session: session}
	if stream, ok := strings.CutPrefix(num, streamSegment+"/"); ok {
		r.ByStream, num = true, stream
	}
	n, err := strconv.ParseUint(num, 10, 62)
	if err != nil || strconv.FormatUint(n, 10) != num || r.ByStream && n == 0 {
		return EntryRef{}, false
	}
	if r.ByStream {
		r.StreamID = n
	} else {
		r.PushID = n
	}
	return r, true
}

// signedEntry is the document served at CatalogEntryPath: the entry's JSON
// as the origin wrote it, and the Ed25519 signature (unpadded base64url) of
// catalogSigContext followed by those bytes.
type signedEntry struct {
	Entry     json.RawMessage `json:"entry"`
	Signature string          `json:"signature"`
}

// EncodeCatalogKey returns the form of pub that Description.CatalogKey
// carries.
func EncodeCatalogKey(pub ed25519.PublicKey) string {
	return base64.RawURLEncoding.EncodeToString(pub)
}

// ParseCatalogKey decodes Description.CatalogKey.
func ParseCatalogKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("catalogue key: not unpadded base64url: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("catalogue key: %d bytes, want an Ed25519 public key of %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// SignCatalogEntry returns the signed entry document of e.
func SignCatalogEntry(key ed25519.PrivateKey, e *CatalogEntry) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("wellknown: encoding a catalogue entry: %w", err)
	}
	sig := ed25519.Sign(key, append([]byte(catalogSigContext), b...))
	return json.Marshal(signedEntry{Entry: b, Signature: base64.RawURLEncoding.EncodeToString(sig)})
}

// VerifyCatalogEntry checks a signed entry document read from anywhere (a
// cache, an attacker): its signature with key, then the entry as Parse
// checks a description's, which must be of push pushID of session. Only
// then is the entry returned. Errors wrap ErrEntrySignature or
// ErrMalformed.
func VerifyCatalogEntry(key ed25519.PublicKey, b []byte, session string, pushID uint64) (*CatalogEntry, error) {
	return VerifyCatalogEntryRef(key, b, EntryRef{Session: session, PushID: pushID})
}

// VerifyCatalogEntryRef is VerifyCatalogEntry for the entry ref names (by
// push ID or by stream ID).
func VerifyCatalogEntryRef(key ed25519.PublicKey, b []byte, ref EntryRef) (*CatalogEntry, error) {
	if len(b) > MaxSignedEntrySize {
		return nil, descErr("", "signed entry of %d bytes, limit %d", len(b), MaxSignedEntrySize)
	}
	var se signedEntry
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&se); err != nil {
		return nil, &ParseError{Err: fmt.Errorf("signed entry: JSON: %w", err)}
	}
	if _, err := dec.Token(); err == nil {
		return nil, descErr("", "data after the signed entry")
	}
	sig, err := base64.RawURLEncoding.DecodeString(se.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: not an Ed25519 signature in unpadded base64url", ErrEntrySignature)
	}
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, append([]byte(catalogSigContext), se.Entry...), sig) {
		return nil, ErrEntrySignature
	}
	var e CatalogEntry
	if err := json.Unmarshal(se.Entry, &e); err != nil {
		return nil, &ParseError{Field: "entry", Err: fmt.Errorf("JSON: %w", err)}
	}
	if err := checkEntry("entry", &e); err != nil {
		return nil, err
	}
	if !ref.Names(&e) {
		return nil, descErr("entry", "push %d (stream %d) of session %s, asked for %s", e.PushID, e.StreamID, e.Session, Truncate(ref.Path()))
	}
	return &e, nil
}
