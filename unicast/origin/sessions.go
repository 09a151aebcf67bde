package origin

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// DefaultMaxEnded is how many ended sessions a Sessions registry keeps
// describing when MaxEnded is 0.
const DefaultMaxEnded = 16

// Errors of the Sessions registry.
var (
	ErrUnknownSession   = errors.New("origin: unknown session")
	ErrDuplicateSession = errors.New("origin: session ID already announced")
	ErrSessionState     = errors.New("origin: session state does not allow this")
)

// Session is one multicast session as the unicast server describes it.
type Session struct {
	// ID is the session ID in lower-case hex (the advertisement's
	// session-id); it names the session in the registry and in the
	// well-known description.
	ID string
	// Advertisement holds every session parameter, keys included: it only
	// ever leaves the server over its TLS connection.
	Advertisement altsvc.Advertisement
	State         wellknown.SessionState
	// Successor is the ID of the session that replaces this one (rollover);
	// Predecessor the one this replaces.
	Successor, Predecessor string
	// Announced, Started and Ended are when the session entered each state
	// (zero when it has not).
	Announced, Started, Ended time.Time
	// Expires is when the session is planned to end (zero: unknown). The
	// Alt-Svc ma parameter is the time left until then.
	Expires time.Time
	// Channel is the path prefix of everything the session carries
	// (wellknown.SessionInfo.Channel; "" for a session that carries
	// anything).
	Channel string
}

// Sessions is the registry of the multicast sessions a server announces.
// The sender side updates it (Announce, Activate, SetSuccessor, End); the
// server reads it for every response. The zero value is ready to use and
// its methods are safe for concurrent use.
type Sessions struct {
	// MaxEnded caps the ended sessions kept (oldest dropped first);
	// 0 means DefaultMaxEnded.
	MaxEnded int

	mu   sync.Mutex
	list []*Session // in announcement order
}

// Announce registers a session in the announced state and returns its ID.
// The advertisement must validate, and its session ID must not have been
// used by a session the registry still knows: a new key means a new session.
func (s *Sessions) Announce(ad altsvc.Advertisement) (string, error) {
	return s.AnnounceChannel(ad, "")
}

// AnnounceChannel is Announce for a session that carries only the paths
// under channel (wellknown.ParseChannel; "" for any path).
func (s *Sessions) AnnounceChannel(ad altsvc.Advertisement, channel string) (string, error) {
	if channel != "" {
		if _, err := wellknown.ParseChannel(channel); err != nil {
			return "", fmt.Errorf("origin: announce: %w", err)
		}
	}
	if err := ad.Validate(); err != nil {
		return "", fmt.Errorf("origin: announce: %w", err)
	}
	ad = cloneAdvertisement(&ad)
	id := wellknown.SessionID(&ad)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.findLocked(id) != nil {
		return "", fmt.Errorf("%w: %q", ErrDuplicateSession, id)
	}
	s.list = append(s.list, &Session{ID: id, Advertisement: ad, State: wellknown.StateAnnounced, Announced: time.Now(), Channel: channel})
	return id, nil
}

// Activate marks an announced session active: it is sending now.
func (s *Sessions) Activate(id string) error {
	return s.update(id, func(ss *Session) error {
		switch ss.State {
		case wellknown.StateActive:
			return nil
		case wellknown.StateEnded:
			return fmt.Errorf("%w: activate %q: it has ended", ErrSessionState, id)
		}
		ss.State, ss.Started = wellknown.StateActive, time.Now()
		return nil
	})
}

// End marks a session ended. Ended sessions are no longer advertised in
// Alt-Svc but stay in the description (up to MaxEnded of them).
func (s *Sessions) End(id string) error {
	err := s.update(id, func(ss *Session) error {
		if ss.State != wellknown.StateEnded {
			ss.State, ss.Ended = wellknown.StateEnded, time.Now()
		}
		return nil
	})
	if err == nil {
		s.mu.Lock()
		s.pruneLocked()
		s.mu.Unlock()
	}
	return err
}

// SetSuccessor records that session next replaces session id (rollover):
// receivers join next and leave id once it has ended. Both must be known.
func (s *Sessions) SetSuccessor(id, next string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, b := s.findLocked(id), s.findLocked(next)
	if a == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSession, id)
	}
	if b == nil {
		return fmt.Errorf("%w: successor %q", ErrUnknownSession, next)
	}
	if id == next {
		return fmt.Errorf("%w: session %q cannot succeed itself", ErrSessionState, id)
	}
	a.Successor, b.Predecessor = next, id
	return nil
}

// SetExpiry records when a session is planned to end; Alt-Svc then carries
// the time left as ma.
func (s *Sessions) SetExpiry(id string, t time.Time) error {
	return s.update(id, func(ss *Session) error {
		ss.Expires = t
		return nil
	})
}

// Get returns a copy of the session id.
func (s *Sessions) Get(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.findLocked(id); ss != nil {
		return *ss, true
	}
	return Session{}, false
}

// List returns copies of every session, in announcement order.
func (s *Sessions) List() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, len(s.list))
	for i, ss := range s.list {
		out[i] = *ss
	}
	return out
}

// AltSvc returns the Alt-Svc field value advertising the announced and
// active sessions at time now, with ma set to the time each has left when
// its expiry is known. With no live session it returns "clear" if sessions
// were advertised before (so that clients drop cached alternatives), and ""
// if there never were any.
func (s *Sessions) AltSvc(now time.Time) string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ads []altsvc.Advertisement
	for _, ss := range s.list {
		if ss.State == wellknown.StateEnded {
			continue
		}
		ad := ss.Advertisement
		if !ss.Expires.IsZero() {
			// At least a second: ma=0 would make the alternative stale at
			// once although the session still runs.
			ad.MaxAge, ad.HasMaxAge = max(ss.Expires.Sub(now), time.Second), true
		}
		ads = append(ads, ad)
	}
	if len(ads) == 0 {
		if len(s.list) > 0 {
			return altsvc.Clear
		}
		return ""
	}
	return altsvc.Header(ads...)
}

func (s *Sessions) update(id string, f func(*Session) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.findLocked(id)
	if ss == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSession, id)
	}
	return f(ss)
}

func (s *Sessions) findLocked(id string) *Session {
	for _, ss := range s.list {
		if ss.ID == id {
			return ss
		}
	}
	return nil
}

// pruneLocked drops the oldest ended sessions beyond MaxEnded.
func (s *Sessions) pruneLocked() {
	limit := s.MaxEnded
	if limit <= 0 {
		limit = DefaultMaxEnded
	}
	ended := 0
	for _, ss := range s.list {
		if ss.State == wellknown.StateEnded {
			ended++
		}
	}
	for i := 0; ended > limit && i < len(s.list); {
		if s.list[i].State == wellknown.StateEnded {
			s.list = slices.Delete(s.list, i, i+1)
			ended--
			continue
		}
		i++
	}
}

// cloneAdvertisement deep-copies ad so that the registry never shares
// slices with its caller.
func cloneAdvertisement(ad *altsvc.Advertisement) altsvc.Advertisement {
	c := *ad
	c.Session = ad.Session.Clone()
	c.Experiments = slices.Clone(ad.Experiments)
	c.DigestAlgorithms = slices.Clone(ad.DigestAlgorithms)
	c.SignatureAlgorithms = slices.Clone(ad.SignatureAlgorithms)
	c.Params = slices.Clone(ad.Params)
	return c
}
