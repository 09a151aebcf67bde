package unicast

import (
	"sync"
	"time"
)

// Defaults of Catalog.
const (
	DefaultCatalogEntries = 1024
	DefaultCatalogAge     = 10 * time.Minute
)

// CatalogEntry describes one pushed resource: what a receiver should have
// received, and the representation (ETag, digests) it must match.
type CatalogEntry struct {
	// Path is the request path the push promised.
	Path string `json:"path"`
	// Size is the representation's length in bytes.
	Size int64 `json:"size"`
	// ContentType is the pushed Content-Type, if any.
	ContentType string `json:"content_type,omitempty"`
	// ETag is the pushed entity tag (quotes included), as the unicast
	// server serves it.
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
}

// Catalog is the bounded list of recently pushed resources that the server
// publishes in its well-known description. The zero value is ready to use
// and its methods are safe for concurrent use.
type Catalog struct {
	// MaxEntries caps the entries kept (oldest dropped first); 0 means
	// DefaultCatalogEntries.
	MaxEntries int
	// MaxAge drops entries pushed longer ago than this; 0 means
	// DefaultCatalogAge.
	MaxAge time.Duration

	mu      sync.Mutex
	entries []CatalogEntry // in push order
}

// Add records a push.
func (c *Catalog) Add(e CatalogEntry) {
	if e.Pushed.IsZero() {
		e.Pushed = time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, e)
	c.pruneLocked(time.Now())
}

// List returns the entries still in the catalogue, oldest first.
func (c *Catalog) List() []CatalogEntry {
	if c == nil {
		return nil
	}
	return c.listAt(time.Now())
}

func (c *Catalog) listAt(now time.Time) []CatalogEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
	return append([]CatalogEntry(nil), c.entries...)
}

func (c *Catalog) pruneLocked(now time.Time) {
	limit := c.MaxEntries
	if limit <= 0 {
		limit = DefaultCatalogEntries
	}
	age := c.MaxAge
	if age <= 0 {
		age = DefaultCatalogAge
	}
	drop := max(len(c.entries)-limit, 0)
	for drop < len(c.entries) && now.Sub(c.entries[drop].Pushed) > age {
		drop++
	}
	if drop > 0 {
		// Copy down rather than reslice so the backing array does not grow
		// without bound.
		n := copy(c.entries, c.entries[drop:])
		clear(c.entries[n:])
		c.entries = c.entries[:n]
	}
}
