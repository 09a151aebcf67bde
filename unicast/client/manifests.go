package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ManifestMode says how a client fetches the manifests of asymmetric
// sessions over unicast.
type ManifestMode int

const (
	// ManifestsAuto fetches manifests only when in-band ones are missing:
	// the manifests of packets held longer than ManifestWait are fetched
	// by packet number, and when in-band manifests are evidently not
	// arriving (under 90 % of the recent ones came in-band) the client
	// streams the session's manifests until in-band delivery recovers
	// (99 %). A receiver whose in-band manifests arrive costs the server
	// nothing.
	ManifestsAuto ManifestMode = iota
	// ManifestsStream streams every manifest over unicast for as long as
	// the session is joined (about 3 % of the session's bytes).
	ManifestsStream
	// ManifestsOff never fetches manifests: packets whose in-band manifests
	// were lost expire and their bytes are repaired like lost ones.
	ManifestsOff
)

// String names the mode as the command line does.
func (m ManifestMode) String() string {
	switch m {
	case ManifestsAuto:
		return "auto"
	case ManifestsStream:
		return "stream"
	case ManifestsOff:
		return "off"
	}
	return "ManifestMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseManifestMode reads "auto", "stream" or "off".
func ParseManifestMode(s string) (ManifestMode, error) {
	for _, m := range []ManifestMode{ManifestsAuto, ManifestsStream, ManifestsOff} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("manifest mode %q: want auto, stream or off", s)
}

// Defaults of the manifest fetcher.
const (
	// DefaultManifestWait is how long a packet waits for its in-band
	// manifest before the client asks for it over unicast: in-band copies
	// come within about 10 ms (the signer's 5 ms delay and the copy after
	// it), and packets are held for 2 s at most. A stream hole that such a
	// packet may fill waits ManifestWait + manifestFetchTime before it is
	// reported as a gap (mquic.ReceiverConfig.AuthReorderDelay).
	DefaultManifestWait = 50 * time.Millisecond
	// manifestFetchTime is what a fetch of manifests is given to arrive
	// before the holes it would fill are reported as gaps.
	manifestFetchTime = 400 * time.Millisecond
	// DefaultManifestStreamMin is how long a manifest stream that
	// ManifestsAuto opened runs at least before it may be closed; it checks
	// then every 2/5 of it.
	DefaultManifestStreamMin = 5 * time.Second
	// Coverage thresholds of ManifestsAuto (in percent of the recent
	// manifests whose in-band copy arrived).
	streamOpenBelow  = 90
	streamCloseAbove = 99
	// coverageMin is how many recent manifests the coverage needs to mean
	// anything.
	coverageMin     = 16
	coverageEvalMin = 64
)

// errManifestsNotServed means the origin does not serve the session's
// manifests (404): the client stops asking.
var errManifestsNotServed = errors.New("client: the server does not serve this session's manifests")

// manifestFetcher gets the manifests of one joined asymmetric session over
// unicast, for its transport receiver.
type manifestFetcher struct {
	c    *Client
	cs   *csession
	tr   *mquic.Receiver
	path string
	mode ManifestMode
	wait time.Duration

	mu          sync.Mutex
	pnBusy      bool
	lastPN      time.Time
	stopped     bool // the origin does not serve manifests
	streaming   bool
	stopStream  context.CancelFunc
	streamSince time.Time
	lastEval    time.Time
	streamRetry time.Time
	backoff     time.Duration
	next        uint32 // the sequence number the stream should resume at
	haveNext    bool
}

// runManifests fetches the manifests of cs while ctx (the receiver's
// lifetime) lasts.
func (c *Client) runManifests(ctx context.Context, cs *csession, tr *mquic.Receiver, path string) {
	defer c.wg.Done()
	f := &manifestFetcher{c: c, cs: cs, tr: tr, path: path, mode: c.cfg.Manifests, wait: c.cfg.ManifestWait, backoff: c.cfg.RepairBackoff}
	tick := time.NewTicker(max(f.wait/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			f.mu.Lock()
			if f.stopStream != nil {
				f.stopStream()
			}
			f.mu.Unlock()
			return
		case <-tick.C:
		}
		if !f.step(ctx, time.Now()) {
			return
		}
	}
}

// step looks at the receiver once and starts the fetches it needs. It
// reports false when there is nothing more to do for the session.
func (f *manifestFetcher) step(ctx context.Context, now time.Time) bool {
	st, ok := f.tr.ManifestStatus(now.Add(-f.wait), wellknown.MaxPNRanges)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	waiting := mergeWaiting(st.Waiting)
	switch {
	case f.streaming && f.mode == ManifestsAuto:
		if least := f.c.cfg.ManifestStreamMin; now.Sub(f.streamSince) >= least && now.Sub(f.lastEval) >= least*2/5 {
			f.lastEval = now
			if st.Recent >= coverageEvalMin && st.RecentInBand*100 >= st.Recent*streamCloseAbove {
				f.c.log.Info("in-band manifests arrive again: closing the manifest stream", "session", f.cs.id,
					"in_band", st.RecentInBand, "of", st.Recent)
				f.stopStream()
				f.c.mu.Lock()
				f.c.stats.ManifestStreamsClosed++
				f.c.mu.Unlock()
			}
		}
	case f.streaming, now.Before(f.streamRetry):
	case f.mode == ManifestsStream,
		len(waiting) > 0 && (st.Recent < coverageMin || st.RecentInBand*100 < st.Recent*streamOpenBelow):
		if f.mode == ManifestsAuto {
			f.c.log.Info("in-band manifests are not arriving: streaming them over unicast", "session", f.cs.id,
				"in_band", st.RecentInBand, "of", st.Recent, "waiting", len(st.Waiting))
		}
		if !f.haveNext && st.HaveTop {
			f.next, f.haveNext = st.Top+1, true
		}
		sctx, cancel := context.WithCancel(ctx)
		f.streaming, f.stopStream, f.streamSince, f.lastEval = true, cancel, now, now
		f.pnBusy, f.lastPN = true, now // the stream fetches what waits first
		f.c.wg.Add(1)
		go f.stream(sctx, waiting)
		return true
	}
	if len(waiting) > 0 && !f.pnBusy && now.Sub(f.lastPN) >= f.wait/2 {
		f.pnBusy, f.lastPN = true, now
		f.c.wg.Add(1)
		go f.fetchPN(ctx, waiting)
	}
	return true
}

// url returns the manifests URL with query q.
func (f *manifestFetcher) url(q string) (string, error) {
	u, err := f.c.pathURL(f.path, q)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// mergeWaiting merges the packet-number ranges of waiting packets that are
// less than mergePNGap apart: the manifests between them cost less than
// another round of requests, and one request then covers the hole.
func mergeWaiting(rs []ranges.Range) []ranges.Range {
	var out []ranges.Range
	for _, r := range rs {
		if n := len(out); n > 0 && r.Start-out[n-1].End <= mergePNGap {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// mergePNGap is how close two waiting ranges must be to be asked for as one.
const mergePNGap = 256

// fetchPN asks for the manifests that list the waiting packets.
func (f *manifestFetcher) fetchPN(ctx context.Context, waiting []ranges.Range) {
	defer f.c.wg.Done()
	f.fetchWaiting(ctx, waiting)
	f.mu.Lock()
	f.pnBusy = false
	f.mu.Unlock()
}

// fetchWaiting asks for the manifests that list the waiting packets and
// returns the sequence number of the last one it got.
func (f *manifestFetcher) fetchWaiting(ctx context.Context, waiting []ranges.Range) (last uint32, ok bool) {
	parts := make([]string, len(waiting))
	for i, r := range waiting {
		parts[i] = fmt.Sprintf("%d-%d", r.Start, r.End-1)
	}
	q := "pn=" + strings.Join(parts, ",")
	n, last, err := f.fetch(ctx, q, false)
	if err != nil && ctx.Err() == nil {
		f.c.log.Debug("fetching manifests failed", "session", f.cs.id, "query", q, "err", err)
	} else if err == nil {
		f.c.log.Debug("fetched manifests of held packets", "session", f.cs.id, "query", q, "manifests", n)
	}
	return last, n > 0
}

// stream reads the long-lived manifest stream until it ends, then lets
// step start it again (after a back-off) if it is still wanted. The
// manifests of the packets waiting now are fetched first, and the stream
// starts right after the last of them, so that packets are released in
// packet-number order.
func (f *manifestFetcher) stream(ctx context.Context, waiting []ranges.Range) {
	defer f.c.wg.Done()
	if len(waiting) > 0 {
		last, ok := f.fetchWaiting(ctx, waiting)
		f.mu.Lock()
		if ok && (!f.haveNext || int32(last+1-f.next) > 0) {
			f.next, f.haveNext = last+1, true
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.pnBusy = false
	q := ""
	if f.haveNext {
		q = "from=" + strconv.FormatUint(uint64(f.next), 10)
	}
	f.mu.Unlock()
	f.c.mu.Lock()
	f.c.stats.ManifestStreams++
	f.c.stats.ManifestStreamsOpen++
	f.c.mu.Unlock()
	n, _, err := f.fetch(ctx, q, true)
	f.c.mu.Lock()
	f.c.stats.ManifestStreamsOpen--
	f.c.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streaming = false
	if ctx.Err() != nil {
		f.backoff = f.c.cfg.RepairBackoff
		return // closed on purpose, or the session was left
	}
	if n > 0 {
		f.backoff = f.c.cfg.RepairBackoff
	}
	f.streamRetry = time.Now().Add(jitter(f.backoff))
	f.backoff = min(2*f.backoff, f.c.cfg.MaxBackoff)
	f.c.log.Debug("manifest stream ended", "session", f.cs.id, "manifests", n, "err", err)
}

// fetch GETs the manifests resource with query q and hands every manifest
// in the answer to the receiver, as it arrives. It returns how many
// manifests it read and the sequence number of the last.
func (f *manifestFetcher) fetch(ctx context.Context, q string, long bool) (n int, last uint32, err error) {
	u, err := f.url(q)
	if err != nil {
		return 0, 0, err
	}
	if !long {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.c.cfg.RequestTimeout)
		defer cancel()
	}
	f.c.mu.Lock()
	f.c.stats.Requests++
	f.c.stats.ManifestRequests++
	f.c.mu.Unlock()
	resp, err := get(ctx, f.c.hc, http.MethodGet, u)
	if err != nil {
		f.c.mu.Lock()
		f.c.stats.RequestErrors++
		f.c.mu.Unlock()
		return 0, 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusGone:
		f.mu.Lock()
		if !f.stopped {
			f.stopped = true
			f.c.log.Warn("the server does not serve this session's manifests: relying on in-band ones", "session", f.cs.id)
		}
		f.mu.Unlock()
		return 0, 0, errManifestsNotServed
	case resp.StatusCode != http.StatusOK:
		return 0, 0, &StatusError{Path: f.path, Code: resp.StatusCode, Status: resp.Status}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, manifest.MediaType) {
		return 0, 0, fmt.Errorf("client: %s: content type %q, want %s", f.path, ct, manifest.MediaType)
	}
	sr := manifest.NewStreamReader(resp.Body, f.tr.ManifestDigest(), 0)
	var rejected int
	for {
		m, raw, err := sr.Next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return n, last, err
		}
		n, last = n+1, m.Seq
		herr := f.tr.HandleManifest(raw)
		f.c.mu.Lock()
		f.c.stats.ManifestsFetched++
		f.c.stats.ManifestBytes += int64(len(raw))
		f.c.mu.Unlock()
		if long {
			f.mu.Lock()
			f.next, f.haveNext = m.Seq+1, true
			f.mu.Unlock()
		}
		if herr != nil && !errors.Is(herr, manifest.ErrRepeat) {
			// A signed manifest the session's key does not verify, from
			// the origin itself: log it, the signature protects us.
			if rejected++; rejected == 1 {
				f.c.log.Warn("a manifest from the server was rejected", "session", f.cs.id, "seq", m.Seq, "err", herr)
			}
		}
	}
}
