package origin

import (
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
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ErrKeyConflict is another key published under a key ID in use.
var ErrKeyConflict = errors.New("origin: key ID in use for another key")

// Keys is the registry of the public keys that verify the signatures of
// pushed resources. The server serves each at wellknown.KeysPath over TLS
// and lists them in the well-known document, so that receivers pin the keys of
// resource signatures from the same TLS origin as the session keys. The
// zero value is ready to use; methods are safe for concurrent use.
type Keys struct {
	mu   sync.Mutex
	list []publishedKey
}

type publishedKey struct {
	info wellknown.KeyInfo
	pub  crypto.PublicKey
	pem  []byte
}

// Add publishes pub under id. alg is the RFC 9421 algorithm the key signs
// with; "" derives it from Ed25519 and ECDSA keys (an RSA key does not say
// which of its algorithms it uses). Adding the same key again is harmless;
// another key under an ID in use is ErrKeyConflict.
func (k *Keys) Add(id string, pub crypto.PublicKey, alg string) error {
	if err := wellknown.CheckKeyID(id); err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("origin: key %q: %w", id, err)
	}
	if alg == "" {
		alg = keyAlgorithm(pub)
	}
	pk := publishedKey{info: wellknown.KeyInfo{ID: id, Alg: alg}, pub: pub, pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
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
func (k *Keys) List() []wellknown.KeyInfo {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]wellknown.KeyInfo, len(k.list))
	for i, e := range k.list {
		out[i] = e.info
	}
	return out
}

// Get returns the key published under id.
func (k *Keys) Get(id string) (crypto.PublicKey, wellknown.KeyInfo, bool) {
	if k == nil {
		return nil, wellknown.KeyInfo{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.list {
		if e.info.ID == id {
			return e.pub, e.info, true
		}
	}
	return nil, wellknown.KeyInfo{}, false
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

// serveKey serves wellknown.KeysPath/<key ID>.
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
	b := s.Keys.pemOf(strings.TrimPrefix(r.URL.Path, wellknown.KeysPath+"/"))
	if b == nil {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(wellknown.DefaultKeyMaxAge.Seconds())))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodGet {
		w.Write(b)
	}
}
