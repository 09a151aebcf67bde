// Package gateway serves what an h3m client (unicast/client) delivered to
// local players over plain HTTP. A request for a live segment that has not arrived yet is
// held until it arrives or a deadline passes, then fetched from the unicast
// server; anything else the gateway does not hold is passed to the unicast
// server at once.
package gateway

import (
	"container/list"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
)

// Entry is a complete, verified resource the gateway can serve: what a
// client delivered (EntryOf).
type Entry struct {
	Path    string
	Header  http.Header // response fields (Content-Type, ETag, ...)
	Body    io.ReaderAt
	Size    int64
	ModTime time.Time
	// Via is how the client got it: client.ViaMulticast, ViaRepair or
	// ViaFallback.
	Via string
	// Session is the multicast session that carried it ("" when it came
	// over unicast only).
	Session string
}

// EntryOf is the entry of a client delivery.
func EntryOf(d *client.Delivery) *Entry {
	return &Entry{Path: d.Path, Header: d.Header, Body: d.Body, Size: d.Size, ModTime: d.Time, Via: d.Via, Session: d.Session}
}

// Store holds the latest version of each path, bounded in bytes (least
// recently stored first out). It is safe for concurrent use.
type Store struct {
	max int64

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *Entry, most recent at the front
	byPath  map[string]*list.Element
	waiters map[string][]chan struct{}
	puts    map[string]uint64 // by Via
	evicted uint64
}

// NewStore returns a store that keeps at most maxBytes of bodies.
func NewStore(maxBytes int64) *Store {
	return &Store{max: maxBytes, lru: list.New(), byPath: map[string]*list.Element{},
		waiters: map[string][]chan struct{}{}, puts: map[string]uint64{}}
}

// Put stores e, replacing any earlier version of its path, and wakes the
// requests waiting for it.
func (s *Store) Put(e *Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.byPath[e.Path]; ok {
		s.size -= el.Value.(*Entry).Size
		s.lru.Remove(el)
	}
	s.byPath[e.Path] = s.lru.PushFront(e)
	s.size += e.Size
	s.puts[e.Via]++
	for s.size > s.max && s.lru.Len() > 1 {
		old := s.lru.Back()
		oe := old.Value.(*Entry)
		s.lru.Remove(old)
		delete(s.byPath, oe.Path)
		s.size -= oe.Size
		s.evicted++
	}
	for _, w := range s.waiters[e.Path] {
		close(w)
	}
	delete(s.waiters, e.Path)
}

// Get returns the entry of path.
func (s *Store) Get(path string) (*Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.byPath[path]
	if !ok {
		return nil, false
	}
	return el.Value.(*Entry), true
}

// Wait returns the entry of path once it is stored, or ctx's error.
func (s *Store) Wait(ctx context.Context, path string) (*Entry, error) {
	s.mu.Lock()
	if el, ok := s.byPath[path]; ok {
		s.mu.Unlock()
		return el.Value.(*Entry), nil
	}
	w := make(chan struct{})
	s.waiters[path] = append(s.waiters[path], w)
	s.mu.Unlock()
	select {
	case <-w:
		if e, ok := s.Get(path); ok {
			return e, nil
		}
		return nil, context.DeadlineExceeded // stored and evicted at once
	case <-ctx.Done():
		s.mu.Lock()
		ws := s.waiters[path]
		for i, x := range ws {
			if x == w {
				s.waiters[path] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(s.waiters[path]) == 0 {
			delete(s.waiters, path)
		}
		s.mu.Unlock()
		return nil, ctx.Err()
	}
}

// StoreStats describe a store.
type StoreStats struct {
	Entries int               `json:"entries"`
	Bytes   int64             `json:"bytes"`
	MaxSize int64             `json:"max_bytes"`
	Stored  map[string]uint64 `json:"stored_by_via"`
	Evicted uint64            `json:"evicted"`
	Waiting int               `json:"waiting_requests"`
}

// Stats returns the store's counters.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StoreStats{Entries: s.lru.Len(), Bytes: s.size, MaxSize: s.max, Stored: map[string]uint64{}, Evicted: s.evicted}
	for k, v := range s.puts {
		st.Stored[k] = v
	}
	for _, w := range s.waiters {
		st.Waiting += len(w)
	}
	return st
}

// Entries returns the entries, most recently stored first.
func (s *Store) Entries() []*Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Entry, 0, s.lru.Len())
	for el := s.lru.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*Entry))
	}
	return out
}
