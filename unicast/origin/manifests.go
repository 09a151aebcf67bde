package origin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/h3m-project/h3m/unicast/internal/caplog"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// Defaults of Manifests.
const (
	// DefaultManifestBytes is how many bytes of manifests a session keeps:
	// about 4 s of a 1 Gbit/s session (full 33-digest manifests), far more
	// at lower rates; receivers need a manifest within the 2 s data hold
	// time of its packets.
	DefaultManifestBytes = 16 << 20
	// DefaultMaxManifestStreams caps the long-lived manifest streams served
	// at once.
	DefaultMaxManifestStreams = 1024
	// DefaultMaxManifestStreamsPerClient caps those of one client (one
	// source address): a receiver holds one per asymmetric session, two
	// during a rollover; a few receivers may share an address.
	DefaultMaxManifestStreamsPerClient = 8
	// MaxSeqRange is the most sequence numbers one ?seq= request may span.
	MaxSeqRange = 1 << 16
)

// Manifests keeps the signed manifests of asymmetric sessions so that the
// unicast server can serve them to receivers that lost their in-band
// copies: the Publisher records each manifest as its sender signs it, the
// Server serves them at wellknown.ManifestsPath. Memory is bounded: each session keeps
// its newest manifests up to MaxBytes, and only the last MaxEnded ended
// sessions are kept. The zero value is ready to use; methods are safe for
// concurrent use.
type Manifests struct {
	// MaxBytes caps the manifest bytes kept per session (the oldest go
	// first); 0 means DefaultManifestBytes.
	MaxBytes int
	// MaxEnded caps the ended sessions whose manifests are kept; 0 means
	// DefaultMaxEnded.
	MaxEnded int
	// MaxStreams caps the long-lived streams served at once; 0 means
	// DefaultMaxManifestStreams.
	MaxStreams int
	// MaxStreamsPerClient caps those of one client, a source address (IP),
	// so that one client cannot hold them all; 0 means
	// DefaultMaxManifestStreamsPerClient.
	MaxStreamsPerClient int

	mu       sync.Mutex
	logs     map[string]*manifestLog
	ended    []string // ended sessions, oldest first
	streams  int
	byClient map[string]int // streams served per client address
	refused  uint64         // streams refused by either cap
	capLog   caplog.Limit
}

// manifestLog is the manifests of one session: a ring of the newest ones,
// consecutive in sequence number.
type manifestLog struct {
	alg     manifest.DigestAlg // set at Open, never changed
	mu      sync.Mutex
	ring    []manifestEntry
	head, n int
	bytes   int
	max     int
	ended   bool
	waiters map[chan struct{}]struct{}
	spare   [][]byte
	dropped uint64 // manifests dropped for memory
	reset   uint64 // sequence discontinuities (the log restarted)
}

type manifestEntry struct {
	seq         uint32
	first, last uint64 // packet numbers listed
	b           []byte
}

func (ms *Manifests) maxBytes() int {
	if ms.MaxBytes > 0 {
		return ms.MaxBytes
	}
	return DefaultManifestBytes
}

// Open starts keeping the manifests of session id (lower-case hex), whose
// profile names digest algorithm alg. Opening a running session again is
// harmless; opening one that ended starts a new log.
func (ms *Manifests) Open(id string, alg manifest.DigestAlg) {
	if ms == nil {
		return
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.logs == nil {
		ms.logs = make(map[string]*manifestLog)
	}
	if l := ms.logs[id]; l != nil {
		l.mu.Lock()
		ended := l.ended
		l.mu.Unlock()
		if !ended {
			return
		}
		// The ID of a session that ended long ago, used again: a new log.
		ms.ended = slices.DeleteFunc(ms.ended, func(e string) bool { return e == id })
	}
	ms.logs[id] = &manifestLog{alg: alg, max: ms.maxBytes(), waiters: make(map[chan struct{}]struct{})}
}

func (ms *Manifests) log(id string) *manifestLog {
	if ms == nil {
		return nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.logs[id]
}

// Has reports whether the manifests of session id are kept.
func (ms *Manifests) Has(id string) bool { return ms.log(id) != nil }

// Add records a signed manifest of session id, which must be open. The
// bytes are copied. Manifests must come in sequence-number order, one after
// the other, as a manifest.Signer makes them; a discontinuity restarts the
// session's log. In the steady state Add allocates nothing.
func (ms *Manifests) Add(id string, m []byte) error {
	l := ms.log(id)
	if l == nil {
		return fmt.Errorf("origin: manifests: %w: %q", ErrUnknownSession, id)
	}
	p, n, err := manifest.Parse(m, l.alg)
	if err != nil {
		return fmt.Errorf("origin: manifests: %w", err)
	}
	if n != len(m) {
		return fmt.Errorf("origin: manifests: %d bytes after the manifest", len(m)-n)
	}
	l.add(p.Seq, p.FirstPN, p.LastPN(), m)
	return nil
}

// Recorder returns the function that records the manifests of session id,
// for manifest.SignerConfig.OnManifest. Errors (a malformed manifest, a
// session no longer kept) drop the manifest.
func (ms *Manifests) Recorder(id string) func(m []byte) {
	return func(m []byte) { _ = ms.Add(id, m) }
}

// End marks session id ended: its streams end once they have sent every
// manifest kept, and its manifests are kept until MaxEnded later sessions
// have ended.
func (ms *Manifests) End(id string) {
	if ms == nil {
		return
	}
	ms.mu.Lock()
	l := ms.logs[id]
	if l == nil {
		ms.mu.Unlock()
		return
	}
	if !slices.Contains(ms.ended, id) {
		ms.ended = append(ms.ended, id)
	}
	limit := ms.MaxEnded
	if limit <= 0 {
		limit = DefaultMaxEnded
	}
	for len(ms.ended) > limit {
		delete(ms.logs, ms.ended[0])
		ms.ended = ms.ended[1:]
	}
	ms.mu.Unlock()
	l.mu.Lock()
	l.ended = true
	l.wakeLocked()
	l.mu.Unlock()
}

// discard forgets session id (a session that failed to start).
func (ms *Manifests) discard(id string) {
	if ms == nil {
		return
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	delete(ms.logs, id)
}

// ManifestStats describe the manifests kept for one session.
type ManifestStats struct {
	Kept           int    // manifests kept now
	Bytes          int    // their bytes
	First, Last    uint32 // their sequence numbers (valid when Kept > 0)
	Dropped        uint64 // dropped to stay within MaxBytes
	Restarts       uint64 // sequence-number discontinuities
	Ended          bool
	StreamsServing int // long-lived streams of all sessions served now
	// StreamsRefused counts the streams of all sessions refused (503)
	// because MaxStreams or MaxStreamsPerClient was reached.
	StreamsRefused uint64
}

// StreamStats count the long-lived manifest streams of all sessions.
type StreamStats struct {
	Serving int    // served now
	Refused uint64 // refused (503): MaxStreams or MaxStreamsPerClient reached
}

// Streams returns the counters of the manifest streams of all sessions.
func (ms *Manifests) Streams() StreamStats {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return StreamStats{Serving: ms.streams, Refused: ms.refused}
}

// Stats returns the counters of session id, and false if it is not kept.
func (ms *Manifests) Stats(id string) (ManifestStats, bool) {
	l := ms.log(id)
	if l == nil {
		return ManifestStats{}, false
	}
	ms.mu.Lock()
	streams, refused := ms.streams, ms.refused
	ms.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := ManifestStats{Kept: l.n, Bytes: l.bytes, Dropped: l.dropped, Restarts: l.reset, Ended: l.ended,
		StreamsServing: streams, StreamsRefused: refused}
	if l.n > 0 {
		st.First, st.Last = l.at(0).seq, l.at(l.n-1).seq
	}
	return st, true
}

func (l *manifestLog) at(i int) *manifestEntry { return &l.ring[(l.head+i)%len(l.ring)] }

func (l *manifestLog) add(seq uint32, first, last uint64, m []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 && seq != l.at(l.n-1).seq+1 {
		// Not the next manifest: what is kept cannot be indexed by
		// sequence number any more. Start again.
		l.reset++
		for l.n > 0 {
			l.dropOldestLocked()
		}
	}
	for l.n > 0 && l.bytes+len(m) > l.max {
		l.dropOldestLocked()
		l.dropped++
	}
	if l.n == len(l.ring) {
		grown := make([]manifestEntry, max(64, 2*len(l.ring)))
		for i := range l.n {
			grown[i] = *l.at(i)
		}
		l.ring, l.head = grown, 0
	}
	var b []byte
	for k := len(l.spare) - 1; k >= 0; k-- {
		if cap(l.spare[k]) >= len(m) {
			b = l.spare[k][:0]
			l.spare = slices.Delete(l.spare, k, k+1)
			break
		}
	}
	b = append(b, m...)
	*l.at(l.n) = manifestEntry{seq: seq, first: first, last: last, b: b}
	l.n++
	l.bytes += len(b)
	l.wakeLocked()
}

func (l *manifestLog) dropOldestLocked() {
	e := l.at(0)
	l.bytes -= len(e.b)
	if len(l.spare) < 64 {
		l.spare = append(l.spare, e.b[:0])
	}
	*e = manifestEntry{}
	l.head = (l.head + 1) % len(l.ring)
	l.n--
}

// wakeLocked tells the waiting streams that something changed.
func (l *manifestLog) wakeLocked() {
	for ch := range l.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// index returns the position of seq in the log: negative when it is older
// than the oldest kept, >= n when it is newer than the newest.
func (l *manifestLog) index(seq uint32) int {
	if l.n == 0 {
		return 0
	}
	return int(int32(seq - l.at(0).seq))
}

// manifestQuery is a parsed request for manifests.
type manifestQuery struct {
	kind     string // "live", "from", "seq" or "pn"
	from, to uint32 // from: from; seq: from..to
	pns      []ranges.Range
}

// parseManifestQuery reads the query of a manifests request: nothing (a
// stream from the newest manifest), from=N (a stream from sequence number
// N), seq=A-B (sequence numbers A to B, a range that may wrap, at most
// MaxSeqRange) or pn=A-B[,C-D...] (the manifests that list any of those
// packet numbers, at most wellknown.MaxPNRanges ranges).
func parseManifestQuery(raw string) (manifestQuery, error) {
	q := manifestQuery{kind: "live"}
	if raw == "" {
		return q, nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, fmt.Errorf("query: %w", err)
	}
	if len(vals) != 1 {
		return q, errors.New("query: want exactly one of from, seq and pn")
	}
	for k, vs := range vals {
		if len(vs) != 1 {
			return q, fmt.Errorf("query: %s given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "from":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return q, fmt.Errorf("from=%.64q: not a sequence number", v)
			}
			q.kind, q.from = "from", uint32(n)
		case "seq":
			a, b, ok := strings.Cut(v, "-")
			x, err1 := strconv.ParseUint(a, 10, 32)
			y, err2 := strconv.ParseUint(b, 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return q, fmt.Errorf("seq=%.64q: want FIRST-LAST", v)
			}
			if uint32(y)-uint32(x) >= MaxSeqRange {
				return q, fmt.Errorf("seq=%.64q: more than %d sequence numbers", v, MaxSeqRange)
			}
			q.kind, q.from, q.to = "seq", uint32(x), uint32(y)
		case "pn":
			var set ranges.Set
			parts := strings.Split(v, ",")
			if len(parts) > wellknown.MaxPNRanges {
				return q, fmt.Errorf("pn: %d ranges, at most %d", len(parts), wellknown.MaxPNRanges)
			}
			for _, p := range parts {
				a, b, ok := strings.Cut(p, "-")
				if !ok {
					b = a
				}
				x, err1 := strconv.ParseUint(a, 10, 64)
				y, err2 := strconv.ParseUint(b, 10, 64)
				if err1 != nil || err2 != nil || x > y || y > wire.MaxPacketNumber {
					return q, fmt.Errorf("pn=%.64q: want FIRST-LAST packet numbers", p)
				}
				set.Add(x, y+1)
			}
			q.kind, q.pns = "pn", slices.Clone(set.Ranges())
		default:
			return q, fmt.Errorf("query: unknown parameter %.64q", k)
		}
	}
	return q, nil
}

// serveManifests serves wellknown.ManifestsPath/<id>: a range of manifests, or a
// long-lived stream of them as they are signed.
func (s *Server) serveManifests(w http.ResponseWriter, r *http.Request, secure bool) {
	w.Header().Set("Cache-Control", "no-store")
	if !secure {
		http.Error(w, "h3m manifests are only served over TLS", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, wellknown.ManifestsPath+"/")
	nid, err := wellknown.ParseSessionID(id)
	l := s.Manifests.log(nid)
	if err != nil || l == nil {
		http.Error(w, "no manifests for this session", http.StatusNotFound)
		return
	}
	q, err := parseManifestQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", manifest.MediaType)
	if q.kind == "seq" || q.kind == "pn" {
		b := l.collect(q)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
		return
	}
	release, err := s.Manifests.takeStream(clientAddr(r.RemoteAddr))
	if err != nil {
		s.Manifests.capLog.Bit(s.logger(), slog.LevelWarn, "refusing a manifest stream", "remote", r.RemoteAddr, "err", err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer release()
	l.stream(w, r, q)
}

// takeStream counts a long-lived stream for client against both caps, or
// says which one it would exceed.
func (ms *Manifests) takeStream(client string) (release func(), err error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	limit, perClient := ms.MaxStreams, ms.MaxStreamsPerClient
	if limit <= 0 {
		limit = DefaultMaxManifestStreams
	}
	if perClient <= 0 {
		perClient = DefaultMaxManifestStreamsPerClient
	}
	switch {
	case ms.streams >= limit:
		ms.refused++
		return nil, fmt.Errorf("too many manifest streams (%d)", limit)
	case ms.byClient[client] >= perClient:
		ms.refused++
		return nil, fmt.Errorf("too many manifest streams from one client (%d)", perClient)
	}
	if ms.byClient == nil {
		ms.byClient = make(map[string]int)
	}
	ms.streams++
	ms.byClient[client]++
	return func() {
		ms.mu.Lock()
		defer ms.mu.Unlock()
		ms.streams--
		if ms.byClient[client]--; ms.byClient[client] <= 0 {
			delete(ms.byClient, client)
		}
	}, nil
}

// clientAddr is the client part of a remote address: its IP (the port
// changes with every connection).
func clientAddr(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().String()
	}
	return remote
}

// collect returns the manifests a range request asks for, back to back.
func (l *manifestLog) collect(q manifestQuery) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	switch q.kind {
	case "seq":
		for seq := q.from; ; seq++ {
			if i := l.index(seq); i >= 0 && i < l.n {
				out = append(out, l.at(i).b...)
			}
			if seq == q.to {
				break
			}
		}
	case "pn":
		// Packet numbers only grow from one manifest to the next: find the
		// first manifest that ends at or after each range.
		last := -1
		for _, rg := range q.pns {
			i := l.firstEndingAtOrAfter(rg.Start)
			for ; i < l.n && l.at(i).first < rg.End; i++ {
				if i > last {
					out = append(out, l.at(i).b...)
					last = i
				}
			}
		}
	}
	return out
}

// firstEndingAtOrAfter returns the index of the first manifest whose last
// packet number is at least pn.
func (l *manifestLog) firstEndingAtOrAfter(pn uint64) int {
	lo, hi := 0, l.n
	for lo < hi {
		mid := (lo + hi) / 2
		if l.at(mid).last < pn {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// maxStreamWrite bounds what a stream writes before flushing.
const maxStreamWrite = 256 << 10

// stream writes manifests as they come: from the newest kept one ("live")
// or from q.from, until the session has ended and everything was sent, or
// the client goes away. A client too slow to keep up skips what was dropped
// meanwhile (it sees the jump in sequence numbers).
func (l *manifestLog) stream(w http.ResponseWriter, r *http.Request, q manifestQuery) {
	flusher, _ := w.(http.Flusher)
	wake := make(chan struct{}, 1)
	l.mu.Lock()
	l.waiters[wake] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.waiters, wake)
		l.mu.Unlock()
	}()
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush() // the client sees the answer before the first manifest
	}
	next, haveNext := q.from, q.kind == "from"
	var buf []byte
	for {
		buf = buf[:0]
		l.mu.Lock()
		if !haveNext && l.n > 0 {
			next, haveNext = l.at(l.n-1).seq, true
		}
		if haveNext && l.n > 0 {
			i := l.index(next)
			if i < 0 {
				i, next = 0, l.at(0).seq
			}
			for ; i < l.n && len(buf) < maxStreamWrite; i++ {
				buf = append(buf, l.at(i).b...)
				next++
			}
		}
		ended := l.ended && (!haveNext || l.n == 0 || l.index(next) >= l.n)
		l.mu.Unlock()
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			continue
		}
		if ended {
			return
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
}
