package origin

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of MulticastRepairConfig.
const (
	DefaultRepairWindow     = 2 * time.Second
	DefaultRepairGather     = 20 * time.Millisecond
	DefaultRepairMaxTracked = 4096
	// maxCountedRanges bounds the ranges of one request that are counted
	// (the h3m client asks at most client.DefaultMaxRanges at once).
	maxCountedRanges = DefaultMaxRanges
)

// MulticastRepairConfig configures MulticastRepair (spec/unicast.md,
// "Multicast repair").
type MulticastRepairConfig struct {
	// Threshold is how many distinct receivers must ask for the same byte
	// range of the same representation within Window for the origin to
	// push it once more on the multicast session; 0 disables multicast
	// repair.
	Threshold int
	// Window is how long the requests for a range are counted together,
	// and how long after a multicast repair of a range it is not pushed
	// again; 0 means DefaultRepairWindow.
	Window time.Duration
	// Gather is how long the origin waits, once a range has reached
	// Threshold, for more ranges to do so before it pushes them together;
	// 0 means DefaultRepairGather.
	Gather time.Duration
	// MaxTracked bounds the ranges counted at once; past it, new ranges
	// are not counted (they are still served). 0 means
	// DefaultRepairMaxTracked.
	MaxTracked int
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// MulticastRepairStats are the counters of a MulticastRepair.
type MulticastRepairStats struct {
	// RangeRequests counts the range requests seen; Pushes the partial
	// pushes sent on the session, PushedBytes their body bytes, and
	// PushErrors the ones that failed (no session, representation
	// changed).
	RangeRequests, Pushes, PushedBytes, PushErrors uint64
}

// MulticastRepair is an http.Handler in front of the file handler: it
// counts the byte ranges receivers ask to repair and, when Threshold
// distinct receivers ask for the same range within Window (the sign of a
// loss upstream of all of them), pushes that range once more on the
// multicast session (Publisher.PushRange) instead of serving it to every
// one over unicast. Every request is still served by the next handler:
// receivers that the multicast repair does not reach repair over unicast.
// Receivers wait a random time before asking (client Config.RepairDelay),
// and one that sees the multicast repair first does not ask at all.
type MulticastRepair struct {
	cfg  MulticastRepairConfig
	next http.Handler
	log  *slog.Logger

	mu        sync.Mutex
	pub       *Publisher
	tracked   map[rangeKey]*rangeAsks
	pending   []rangeKey
	scheduled bool
	stats     MulticastRepairStats
	last      time.Time // when the last range request was counted
}

// rangeKey names a byte range [first, last] of a representation.
type rangeKey struct {
	path, etag  string
	first, last int64
}

// rangeAsks are the receivers that asked for a range since since, and when
// it was last pushed.
type rangeAsks struct {
	since, pushed time.Time
	askers        []string
}

// NewMulticastRepair returns a MulticastRepair serving requests with next;
// it pushes nothing until SetPublisher gives it the publisher.
func NewMulticastRepair(cfg MulticastRepairConfig, next http.Handler) *MulticastRepair {
	if cfg.Window <= 0 {
		cfg.Window = DefaultRepairWindow
	}
	if cfg.Gather <= 0 {
		cfg.Gather = DefaultRepairGather
	}
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = DefaultRepairMaxTracked
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &MulticastRepair{cfg: cfg, next: next, log: cfg.Logger, tracked: map[rangeKey]*rangeAsks{}}
}

// SetPublisher sets the publisher whose session carries the repairs.
func (m *MulticastRepair) SetPublisher(p *Publisher) {
	m.mu.Lock()
	m.pub = p
	m.mu.Unlock()
}

// Stats returns the counters.
func (m *MulticastRepair) Stats() MulticastRepairStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// ServeHTTP counts the ranges of a range request, then serves it with the
// next handler.
func (m *MulticastRepair) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.cfg.Threshold > 0 && r.Method == http.MethodGet {
		if v := r.Header.Get("Range"); v != "" {
			if rs := parseExplicitRanges(v, maxCountedRanges); len(rs) > 0 {
				etag := r.Header.Get("If-Range")
				if !strings.HasPrefix(etag, `"`) {
					etag = "" // a date, or nothing: the representation is not named
				}
				m.note(r.URL.Path, etag, rs, r.RemoteAddr, time.Now())
			}
		}
	}
	m.next.ServeHTTP(w, r)
}

// note counts the ranges rs of path asked by who at now, and schedules
// the push of those that reach Threshold.
func (m *MulticastRepair) note(path, etag string, rs []byteRange, who string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.RangeRequests++
	m.last = now
	if len(m.tracked)+len(rs) > m.cfg.MaxTracked {
		m.pruneLocked(now)
	}
	for _, br := range rs {
		k := rangeKey{path: path, etag: etag, first: br.first, last: br.last}
		a := m.tracked[k]
		if a == nil {
			if len(m.tracked) >= m.cfg.MaxTracked {
				continue
			}
			a = &rangeAsks{since: now}
			m.tracked[k] = a
		}
		if now.Sub(a.since) > m.cfg.Window {
			a.since, a.askers = now, a.askers[:0]
		}
		if !slices.Contains(a.askers, who) {
			if len(a.askers) >= m.cfg.Threshold {
				continue // counted enough: pushed, or about to be
			}
			a.askers = append(a.askers, who)
		}
		if len(a.askers) >= m.cfg.Threshold && (a.pushed.IsZero() || now.Sub(a.pushed) > m.cfg.Window) {
			a.pushed = now
			m.pending = append(m.pending, k)
			if !m.scheduled {
				m.scheduled = true
				time.AfterFunc(m.cfg.Gather, m.flush)
			}
		}
	}
}

// WaitQuiet returns once no range request has come for Window (counted
// from the call at the earliest), or when ctx ends: before a session that
// has pushed everything ends, so that what receivers are still asking for
// can go out on it once more.
func (m *MulticastRepair) WaitQuiet(ctx context.Context) {
	since := time.Now()
	tick := time.NewTicker(max(m.cfg.Window/8, 10*time.Millisecond))
	defer tick.Stop()
	for {
		m.mu.Lock()
		last := since
		if m.last.After(last) {
			last = m.last
		}
		quiet := time.Since(last) >= m.cfg.Window && !m.scheduled
		m.mu.Unlock()
		if quiet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pruneLocked forgets the ranges neither asked nor pushed within Window.
func (m *MulticastRepair) pruneLocked(now time.Time) {
	for k, a := range m.tracked {
		if now.Sub(a.since) > m.cfg.Window && now.Sub(a.pushed) > m.cfg.Window {
			delete(m.tracked, k)
		}
	}
}

// flush pushes the pending ranges, those of one representation that touch
// merged into one push.
func (m *MulticastRepair) flush() {
	m.mu.Lock()
	pending, pub := m.pending, m.pub
	m.pending, m.scheduled = nil, false
	m.mu.Unlock()
	if pub == nil {
		return
	}
	slices.SortFunc(pending, func(a, b rangeKey) int {
		return cmp.Or(cmp.Compare(a.path, b.path), cmp.Compare(a.etag, b.etag), cmp.Compare(a.first, b.first))
	})
	var merged []rangeKey
	for _, k := range pending {
		if n := len(merged); n > 0 {
			cur := &merged[n-1]
			if cur.path == k.path && cur.etag == k.etag && k.first <= cur.last+1 {
				cur.last = max(cur.last, k.last)
				continue
			}
		}
		merged = append(merged, k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Window)
	defer cancel()
	for _, k := range merged {
		_, err := pub.PushRange(ctx, k.path, k.etag, k.first, k.last)
		m.mu.Lock()
		if err != nil {
			m.stats.PushErrors++
		} else {
			m.stats.Pushes++
			m.stats.PushedBytes += uint64(k.last - k.first + 1)
		}
		m.mu.Unlock()
		if err != nil {
			m.log.Info("multicast repair not pushed; receivers repair over unicast", "path", k.path, "range", k.first, "last", k.last, "err", err)
			continue
		}
		m.log.Debug("multicast repair pushed", "path", k.path, "first", k.first, "last", k.last)
	}
}

// parseExplicitRanges reads the ranges "first-last" of a Range field value
// ("bytes=0-99,200-299"), at most max of them; suffix and open ranges, and
// any malformed value, give none (such requests are served, not counted).
// Written by hand: net/http parses Range only inside ServeContent.
func parseExplicitRanges(v string, max int) []byteRange {
	spec, ok := cutPrefixFold(strings.TrimSpace(v), "bytes=")
	if !ok || strings.Count(spec, ",") >= max {
		return nil
	}
	var out []byteRange
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, ok := strings.Cut(part, "-")
		if !ok || a == "" || b == "" {
			return nil
		}
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || first < 0 || last < first {
			return nil
		}
		out = append(out, byteRange{first, last})
	}
	return out
}
