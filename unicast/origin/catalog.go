package origin

import (
	"math"
	"sync"
	"time"

	"github.com/h3m-project/h3m/unicast/wellknown"
)

// Defaults of Catalog.
const (
	DefaultCatalogEntries = 1024
	DefaultCatalogAge     = 10 * time.Minute
)

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
	entries []wellknown.CatalogEntry // in push order
	seqs    []uint64                 // each entry's number
	next    uint64                   // the number of the next entry added
}

// Add records a push. Entries keep the order they were added in, and their
// push times never go back along it: an entry pushed earlier than the one
// before it (pushes that finished out of order, or the clock stepped back)
// takes that one's time, so that a reader asking for what was pushed at or
// after the newest entry it has misses nothing added since.
func (c *Catalog) Add(e wellknown.CatalogEntry) {
	if e.Pushed.IsZero() {
		e.Pushed = time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.entries); n > 0 && e.Pushed.Before(c.entries[n-1].Pushed) {
		e.Pushed = c.entries[n-1].Pushed
	}
	if c.next == 0 {
		c.next = 1
	}
	c.entries = append(c.entries, e)
	c.seqs = append(c.seqs, c.next)
	c.next++
	c.pruneLocked(time.Now())
}

// ListFrom returns the entries still in the catalogue numbered from on
// (entries are numbered from 1 in the order added), oldest first, and the
// number the next entry will get. A from of 0, or past that number (the
// catalogue of an origin that started again), lists every entry, and whole
// says so; wellknown.ResourcesFromNext (as math.MaxUint64) lists none.
func (c *Catalog) ListFrom(from uint64) (entries []wellknown.CatalogEntry, next uint64, whole bool) {
	if c == nil {
		return nil, 1, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(time.Now())
	if c.next == 0 {
		c.next = 1
	}
	switch {
	case from == math.MaxUint64:
		from = c.next
	case from > c.next:
		from = 0
	}
	i := 0
	for i < len(c.seqs) && c.seqs[i] < from {
		i++
	}
	return append([]wellknown.CatalogEntry(nil), c.entries[i:]...), c.next, from <= 1
}

// List returns the entries still in the catalogue, oldest first.
func (c *Catalog) List() []wellknown.CatalogEntry {
	if c == nil {
		return nil
	}
	return c.listAt(time.Now())
}

func (c *Catalog) listAt(now time.Time) []wellknown.CatalogEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
	return append([]wellknown.CatalogEntry(nil), c.entries...)
}

// Entry returns the entry of push pushID of session, while the catalogue
// keeps it.
func (c *Catalog) Entry(session string, pushID uint64) (wellknown.CatalogEntry, bool) {
	return c.EntryOf(wellknown.EntryRef{Session: session, PushID: pushID})
}

// EntryOf returns the entry ref names (by push ID, or by the stream that
// carried the push), while the catalogue keeps it.
func (c *Catalog) EntryOf(ref wellknown.EntryRef) (wellknown.CatalogEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(time.Now())
	for i := len(c.entries) - 1; i >= 0; i-- {
		if e := &c.entries[i]; ref.Names(e) {
			return *e, true
		}
	}
	return wellknown.CatalogEntry{}, false
}

// maxAge is how long an entry is kept at most.
func (c *Catalog) maxAge() time.Duration {
	if c.MaxAge <= 0 {
		return DefaultCatalogAge
	}
	return c.MaxAge
}

func (c *Catalog) pruneLocked(now time.Time) {
	limit := c.MaxEntries
	if limit <= 0 {
		limit = DefaultCatalogEntries
	}
	age := c.maxAge()
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
		c.seqs = c.seqs[:copy(c.seqs, c.seqs[drop:])]
	}
}
