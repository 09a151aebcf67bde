package client

import (
	"context"
	"crypto"
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

	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// Limits of the key resolver.
const (
	// MaxKeySize is the largest key document a client reads.
	MaxKeySize = 64 << 10
	// keyRetry is how long a client waits before asking again for a key
	// that could not be fetched (so that forged key IDs cost few requests).
	keyRetry = 5 * time.Second
)

// ErrKeyUnavailable means a key is not (yet) known to the client: it is
// being fetched, could not be fetched, or the origin does not publish it. A
// resource signed with it fails and is fetched over unicast.
var ErrKeyUnavailable = errors.New("client: signature key not available")

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
func (kr *keyResolver) setListed(keys []wellknown.KeyInfo, fromDescription bool) {
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

// resolve is the integrity.KeyResolver (bound to ctx, the lifetime of the
// fetches it starts): cached keys only.
func (kr *keyResolver) resolve(ctx context.Context, id string) (crypto.PublicKey, error) {
	now := time.Now()
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if _, ok := kr.listed[id]; kr.haveList && !ok {
		return nil, fmt.Errorf("%w: key ID %q is not one the origin lists", ErrKeyUnavailable, wellknown.Truncate(id))
	}
	ck := kr.cache[id]
	if ck != nil && ck.key != nil && now.Before(ck.expires) {
		return kr.bindLocked(id, ck.key), nil
	}
	if ck == nil || (!ck.fetching && !now.Before(ck.expires)) {
		kr.startFetchLocked(ctx, id)
	}
	if ck != nil && ck.key != nil {
		// Expired, being refreshed: still the key the origin served.
		return kr.bindLocked(id, ck.key), nil
	}
	if ck != nil && ck.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, ck.err)
	}
	return nil, fmt.Errorf("%w: key %q is being fetched", ErrKeyUnavailable, wellknown.Truncate(id))
}

// bindLocked binds a key to the algorithm the description lists for it.
func (kr *keyResolver) bindLocked(id string, key crypto.PublicKey) crypto.PublicKey {
	if alg := kr.listed[id]; alg != "" {
		return integrity.AlgorithmKey{Algorithm: alg, Key: key}
	}
	return key
}

// startFetchLocked fetches key id in the background while ctx lasts.
func (kr *keyResolver) startFetchLocked(ctx context.Context, id string) {
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
	if ctx.Err() != nil {
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
			kr.startFetchLocked(ctx, id)
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

// keyURL returns where key id is fetched: wellknown.KeysPath on the origin, or the
// key ID itself when it is an https URL of the same origin. Any other URL
// is refused: keys come only from the origin, over TLS.
func (kr *keyResolver) keyURL(id string) (string, error) {
	if err := wellknown.CheckKeyID(id); err != nil {
		return "", err
	}
	if strings.Contains(id, "://") {
		u, err := url.Parse(id)
		if err != nil || u.Scheme != "https" || u.Host != kr.c.origin.Host || u.User != nil {
			return "", fmt.Errorf("%w: %q: a key URL must be https on the origin %s", wellknown.ErrKeyID, wellknown.Truncate(id), kr.c.origin.Host)
		}
		return u.String(), nil
	}
	u, err := kr.c.pathURL(wellknown.KeyPath(id), "")
	if err != nil {
		return "", err
	}
	return u.String(), nil
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
		kr.c.log.Warn("fetching a signature key failed", "key_id", wellknown.Truncate(id), "err", err)
		return
	}
	ck.key, ck.err, ck.expires = key, nil, now.Add(maxAge)
	kr.c.log.Debug("signature key fetched", "key_id", wellknown.Truncate(id), "max_age", maxAge)
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
		return nil, 0, &StatusError{Path: wellknown.KeyPath(id), Code: resp.StatusCode, Status: resp.Status}
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
// day; wellknown.DefaultKeyMaxAge when absent.
func cacheMaxAge(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(k, "max-age") {
			if n, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil {
				return min(max(time.Duration(n)*time.Second, time.Second), 24*time.Hour)
			}
		}
	}
	return wellknown.DefaultKeyMaxAge
}
