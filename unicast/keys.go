package unicast

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/integrity"
)

// KeysPath is the prefix under which the server serves the public keys of
// resource signatures: KeysPath + "/" + the path-escaped key ID, as PEM
// (spec/unicast.md).
const KeysPath = WellKnownPath + "/keys"

// Limits on keys.
const (
	// MaxKeyIDLen is the longest key ID published or resolved.
	MaxKeyIDLen = 256
	// MaxKeySize is the largest key document a client reads.
	MaxKeySize = 64 << 10
	// DefaultKeyMaxAge is how long a client keeps a key whose response
	// gives no max-age, and the max-age the server sends.
	DefaultKeyMaxAge = 10 * time.Minute
	// keyRetry is how long a client waits before asking again for a key
	// that could not be fetched (so that forged key IDs cost few requests).
	keyRetry = 5 * time.Second
)

// Errors of key publication and resolution.
var (
	// ErrKeyID is a key ID that cannot be published or resolved.
	ErrKeyID = errors.New("unicast: bad key ID")
	// ErrKeyConflict is another key published under a key ID in use.
	ErrKeyConflict = errors.New("unicast: key ID in use for another key")
	// ErrKeyUnavailable means a key is not (yet) known to the client: it is
	// being fetched, could not be fetched, or the origin does not publish
	// it. A resource signed with it fails and is fetched over unicast.
	ErrKeyUnavailable = errors.New("unicast: signature key not available")
)

// KeyInfo describes a published key in the well-known document.
type KeyInfo struct {
	// ID is the key ID signatures name (RFC 9421 keyid, cavage keyId).
	ID string `json:"id"`
	// Alg is the RFC 9421 algorithm name the key signs with ("ed25519",
	// "ecdsa-p256-sha256", "rsa-pss-sha512", ...); empty when unknown.
	Alg string `json:"alg,omitempty"`
}

// Keys is the registry of the public keys that verify the signatures of
// pushed resources. The server serves each at KeysPath over TLS and lists
// them in the well-known document, so that receivers pin the keys of
// resource signatures from the same TLS origin as the session keys. The
// zero value is ready to use; methods are safe for concurrent use.
type Keys struct {
	mu   sync.Mutex
	list []publishedKey
}

type publishedKey struct {
	info KeyInfo
	pub  crypto.PublicKey
	pem  []byte
}

// checkKeyID accepts key IDs of visible ASCII characters other than the
// quote and the backslash (so that both signature syntaxes carry them
// unescaped), at most MaxKeyIDLen bytes.
func checkKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen {
		return fmt.Errorf("%w: %d bytes (1 to %d)", ErrKeyID, len(id), MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("%w: %q: byte %#x at %d", ErrKeyID, truncate(id), c, i)
		}
	}
	return nil
}

// Add publishes pub under id. alg is the RFC 9421 algorithm the key signs
// with; "" derives it from Ed25519 and ECDSA keys (an RSA key does not say
// which of its algorithms it uses). Adding the same key again is harmless;
// another key under an ID in use is ErrKeyConflict.
func (k *Keys) Add(id string, pub crypto.PublicKey, alg string) error {
	if err := checkKeyID(id); err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("unicast: key %q: %w", id, err)
	}
	if alg == "" {
		alg = keyAlgorithm(pub)
	}
	pk := publishedKey{info: KeyInfo{ID: id, Alg: alg}, pub: pub, pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.list {
		if e.info.ID == id {
			if string(e.pem) != string(pk.pem) {
				return fmt.Errorf("%w: %q", ErrKeyConflict, id)
			}
			return nil
		}
	}
	k.list = append(k.list, pk)
	return nil
}

// keyAlgorithm names the RFC 9421 algorithm of Ed25519 and ECDSA keys.
func keyAlgorithm(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return integrity.AlgEd25519
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return integrity.AlgECDSAP256SHA256
		case elliptic.P384():
			return integrity.AlgECDSAP384SHA384
		}
	}
	return ""
}

// List returns the published keys, in the order they were added.
func (k *Keys) List() []KeyInfo {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]KeyInfo, len(k.list))
	for i, e := range k.list {
		out[i] = e.info
	}
	return out
}

// Get returns the key published under id.
func (k *Keys) Get(id string) (crypto.PublicKey, KeyInfo, bool) {
	if k == nil {
		return nil, KeyInfo{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.list {
		if e.info.ID == id {
			return e.pub, e.info, true
		}
	}
	return nil, KeyInfo{}, false
}

func (k *Keys) pemOf(id string) []byte {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.list {
		if e.info.ID == id {
			return e.pem
		}
	}
	return nil
}

// KeyURLPath returns the path at which the key id is served.
func KeyURLPath(id string) string { return KeysPath + "/" + url.PathEscape(id) }

// DefaultKeyID derives a key ID from a public key: "h3m-" and the
// base64url SHA-256 of its PKIX encoding, cut to 16 characters (96 bits).
// Two keys never share it in practice, so a key ID always names one key.
func DefaultKeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "h3m-" + base64.RawURLEncoding.EncodeToString(sum[:])[:16], nil
}

// SignerKey returns the key ID, public key and RFC 9421 algorithm of the
// resource signers this package knows: h3m.MessageSigner, h3m.CavageSigner
// and pointers to them. ok is false for other signers.
func SignerKey(s h3m.Signer) (id string, pub crypto.PublicKey, alg string, ok bool) {
	switch v := s.(type) {
	case h3m.MessageSigner:
		return SignerKey(&v)
	case h3m.CavageSigner:
		return SignerKey(&v)
	case *h3m.MessageSigner:
		if v == nil || v.MessageSigner == nil || v.Key == nil {
			return "", nil, "", false
		}
		pub, alg = v.Key.Public(), v.Alg
		if alg == "" {
			if alg = keyAlgorithm(pub); alg == "" {
				alg = integrity.AlgRSAPSSSHA512 // MessageSigner's choice for RSA
			}
		}
		return v.KeyID, pub, alg, true
	case *h3m.CavageSigner:
		if v == nil || v.CavageSigner == nil || v.Key == nil {
			return "", nil, "", false
		}
		pub = v.Key.Public()
		if alg = keyAlgorithm(pub); alg == "" {
			if _, isRSA := pub.(*rsa.PublicKey); isRSA {
				alg = integrity.AlgRSAV15SHA256 // cavage's rsa-sha256
			}
		}
		return v.KeyID, pub, alg, true
	}
	return "", nil, "", false
}

// serveKey serves KeysPath/<key ID>.
func (s *Server) serveKey(w http.ResponseWriter, r *http.Request, secure bool) {
	if !secure {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "h3m signature keys are only served over TLS", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	b := s.Keys.pemOf(strings.TrimPrefix(r.URL.Path, KeysPath+"/"))
	if b == nil {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(DefaultKeyMaxAge.Seconds())))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodGet {
		w.Write(b)
	}
}

// keyResolver resolves the key IDs of resource signatures to the keys the
// client's origin publishes, fetched over its TLS connection and cached.
// Resolution never waits on the network (it runs on the multicast receive
// path): a key not cached yet fails the signature, which sends the resource
// to a unicast fetch, and is fetched in the background for the next one.
// Keys the well-known document lists are fetched before a session is joined.
type keyResolver struct {
	c *Client

	mu       sync.Mutex
	listed   map[string]string // key ID -> algorithm, from the description
	haveList bool              // the description lists keys: others are refused
	cache    map[string]*cachedKey
}

type cachedKey struct {
	key      crypto.PublicKey // nil while fetching or after a failure
	err      error
	expires  time.Time // when to fetch again
	fetching bool
	done     chan struct{} // closed when the fetch in progress ends
}

func newKeyResolver(c *Client) *keyResolver {
	return &keyResolver{c: c, cache: make(map[string]*cachedKey)}
}

// setListed takes the key list of a description.
func (kr *keyResolver) setListed(keys []KeyInfo, fromDescription bool) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if !fromDescription {
		return // an Alt-Svc-only origin lists nothing: keep what we knew
	}
	kr.listed = make(map[string]string, len(keys))
	for _, k := range keys {
		kr.listed[k.ID] = k.Alg
	}
	kr.haveList = len(keys) > 0
}

// listedIDs returns the listed key IDs.
func (kr *keyResolver) listedIDs() []string {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	ids := make([]string, 0, len(kr.listed))
	for id := range kr.listed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// resolve is the integrity.KeyResolver: cached keys only.
func (kr *keyResolver) resolve(id string) (crypto.PublicKey, error) {
	now := time.Now()
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if _, ok := kr.listed[id]; kr.haveList && !ok {
		return nil, fmt.Errorf("%w: key ID %q is not one the origin lists", ErrKeyUnavailable, truncate(id))
	}
	ck := kr.cache[id]
	if ck != nil && ck.key != nil && now.Before(ck.expires) {
		return kr.bindLocked(id, ck.key), nil
	}
	if ck == nil || (!ck.fetching && !now.Before(ck.expires)) {
		kr.startFetchLocked(id)
	}
	if ck != nil && ck.key != nil {
		// Expired, being refreshed: still the key the origin served.
		return kr.bindLocked(id, ck.key), nil
	}
	if ck != nil && ck.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, ck.err)
	}
	return nil, fmt.Errorf("%w: key %q is being fetched", ErrKeyUnavailable, truncate(id))
}

// bindLocked binds a key to the algorithm the description lists for it.
func (kr *keyResolver) bindLocked(id string, key crypto.PublicKey) crypto.PublicKey {
	if alg := kr.listed[id]; alg != "" {
		return integrity.AlgorithmKey{Algorithm: alg, Key: key}
	}
	return key
}

func (kr *keyResolver) startFetchLocked(id string) {
	ck := kr.cache[id]
	if ck == nil {
		if len(kr.cache) >= 1024 {
			// Forged key IDs must not grow the cache without bound.
			for k, v := range kr.cache {
				if !v.fetching && v.key == nil {
					delete(kr.cache, k)
				}
			}
		}
		ck = &cachedKey{}
		kr.cache[id] = ck
	}
	kr.c.mu.Lock()
	ctx := kr.c.ctx
	kr.c.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		return
	}
	ck.fetching, ck.done = true, make(chan struct{})
	kr.c.wg.Add(1)
	go func() {
		defer kr.c.wg.Done()
		kr.fetch(ctx, id)
	}()
}

// prefetch fetches the listed keys that are not cached, and waits for them
// (and for fetches in progress) until ctx ends.
func (kr *keyResolver) prefetch(ctx context.Context) {
	var waits []chan struct{}
	now := time.Now()
	for _, id := range kr.listedIDs() {
		kr.mu.Lock()
		ck := kr.cache[id]
		if ck == nil || (!ck.fetching && !now.Before(ck.expires)) {
			kr.startFetchLocked(id)
			ck = kr.cache[id]
		}
		if ck.fetching {
			waits = append(waits, ck.done)
		}
		kr.mu.Unlock()
	}
	for _, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// keyURL returns where key id is fetched: KeysPath on the origin, or the
// key ID itself when it is an https URL of the same origin. Any other URL
// is refused: keys come only from the origin, over TLS.
func (kr *keyResolver) keyURL(id string) (string, error) {
	if err := checkKeyID(id); err != nil {
		return "", err
	}
	if strings.Contains(id, "://") {
		u, err := url.Parse(id)
		if err != nil || u.Scheme != "https" || u.Host != kr.c.origin.Host || u.User != nil {
			return "", fmt.Errorf("%w: %q: a key URL must be https on the origin %s", ErrKeyID, truncate(id), kr.c.origin.Host)
		}
		return u.String(), nil
	}
	return kr.c.origin.String() + KeyURLPath(id), nil
}

// fetch gets key id from the origin and caches the outcome.
func (kr *keyResolver) fetch(ctx context.Context, id string) {
	key, maxAge, err := kr.get(ctx, id)
	now := time.Now()
	kr.mu.Lock()
	defer kr.mu.Unlock()
	ck := kr.cache[id]
	if ck == nil {
		ck = &cachedKey{}
		kr.cache[id] = ck
	}
	ck.fetching = false
	if ck.done != nil {
		close(ck.done)
		ck.done = nil
	}
	if err != nil {
		ck.err, ck.expires = err, now.Add(keyRetry)
		kr.c.log.Warn("fetching a signature key failed", "key_id", truncate(id), "err", err)
		return
	}
	ck.key, ck.err, ck.expires = key, nil, now.Add(maxAge)
	kr.c.log.Debug("signature key fetched", "key_id", truncate(id), "max_age", maxAge)
}

func (kr *keyResolver) get(ctx context.Context, id string) (crypto.PublicKey, time.Duration, error) {
	u, err := kr.keyURL(id)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, kr.c.cfg.RequestTimeout)
	defer cancel()
	kr.c.mu.Lock()
	kr.c.stats.Requests++
	kr.c.mu.Unlock()
	resp, err := get(ctx, kr.c.hc, http.MethodGet, u)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, &StatusError{Path: KeyURLPath(id), Code: resp.StatusCode, Status: resp.Status}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxKeySize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > MaxKeySize {
		return nil, 0, fmt.Errorf("GET %s: key document over %d bytes", u, MaxKeySize)
	}
	key, err := integrity.ParsePublicKeyPEM(b)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	return key, cacheMaxAge(resp.Header.Get("Cache-Control")), nil
}

// cacheMaxAge reads max-age from a Cache-Control value, between 1 s and a
// day; DefaultKeyMaxAge when absent.
func cacheMaxAge(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(k, "max-age") {
			if n, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil {
				return min(max(time.Duration(n)*time.Second, time.Second), 24*time.Hour)
			}
		}
	}
	return DefaultKeyMaxAge
}
