package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ErrGivenUp is wrapped by Delivery.Err of a resource that kept getting bad
// answers: nothing was delivered for it.
var ErrGivenUp = errors.New("client: resource given up")

// job gets one resource over unicast: a range repair of a multicast copy,
// or a whole fetch.
type job struct {
	key    string
	path   string
	etag   string // the pushed or listed ETag ("" unknown)
	repair bool   // range repair (false: whole fetch)
	reason string

	// The multicast copy (repair; for a fetch only a hint for Storage).
	res      *h3m.Resource
	verifier *h3m.Verifier // the session's checks, for a repaired copy
	session  string
	pushID   uint64
	prof     h3m.Profile
	header   http.Header // pushed fields
	first    int64       // the copy's first representation byte
	length   int64
	total    int64 // representation size (-1 unknown)
	// remaining are the representation ranges still to fetch.
	remaining  []ranges.Range
	reprDigest string // Repr-Digest of the repair responses

	// expect holds digests a fetched body must match when its ETag is etag.
	expect http.Header

	d   Delivery // counters and problems so far
	bad int
	// tier is the job's use of the repair URLs (repairurls.go).
	tier tierState

	// also are the keys of other pushes and catalogue entries of the path
	// merged into this fetch: settled with it (guarded by Client.mu).
	also []string
	// superseded is set (under Client.mu) when a later push of the same
	// path in the same session was promised: the job's representation is
	// obsolete (a live manifest updated meanwhile) and is not fetched.
	superseded bool
	// Multicast repair (mrepair.go), under Client.mu: attempting is set
	// while an attempt runs (nothing else writes the body then); filled
	// are the ranges multicast repairs wrote since the last attempt.
	// fillMu (set by addJobLocked) is held while one is written, and by
	// beginAttempt.
	attempting bool
	filled     []ranges.Range
	fillMu     *sync.Mutex
}

// maxAlso bounds the keys a fetch settles besides its own; pushes merged
// beyond are still not fetched again while it runs.
const maxAlso = 64

func (j *job) alsoLocked(key string) {
	if key != j.key && len(j.also) < maxAlso {
		j.also = append(j.also, key)
	}
}

// attemptError classifies the failure of one attempt.
type attemptError struct {
	err        error
	bad        bool // a wrong answer, not a network failure
	retryAfter time.Duration
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

func transientErr(err error) error { return &attemptError{err: err} }
func badErr(err error) error       { return &attemptError{err: err, bad: true} }

func (c *Client) addJobLocked(j *job) {
	j.fillMu = new(sync.Mutex)
	c.jobs[j.key] = j
	c.busy[j.path]++
	if !j.repair {
		c.fetching[j.path] = j
		// Why a resource costs its whole size over unicast, said where an
		// operator looks: "fallback" then means only that.
		c.log.Info("fetching a resource whole", "path", wellknown.Truncate(j.path), "session", j.session, "push_id", j.pushID, "why", j.reason)
	}
}

// roomLocked reports whether a push may start one more job (MaxJobs); when
// not, it counts the push as dropped and logs.
func (c *Client) roomLocked(path string) bool {
	if len(c.jobs) < c.cfg.MaxJobs {
		return true
	}
	c.stats.JobsDropped++
	c.jobsLog.Bit(c.log, slog.LevelWarn, "too many unicast jobs; not acting on a push (the catalogue's entries are still fetched)",
		"path", wellknown.Truncate(path), "max_jobs", c.cfg.MaxJobs)
	return false
}

// doneLocked reports whether the resource of key was delivered or given
// up.
func (c *Client) doneLocked(key string) bool {
	_, ok := c.settled[key]
	return ok
}

// currentDoneLocked reports whether the catalogue's current entry of path
// is delivered or being fetched: a failed push of the path needs no fetch
// of its own then.
func (c *Client) currentDoneLocked(path string) bool {
	e, ok := c.currentLocked(path)
	if !ok {
		return false
	}
	return c.settledEntryLocked(&e) || c.jobs[entryKey(&e)] != nil
}

// startRepair starts the range repair of an incomplete multicast resource
// of cs, checked with verifier once repaired.
func (c *Client) startRepair(ctx context.Context, cs *csession, verifier *h3m.Verifier, res *h3m.Resource, path string, h http.Header) {
	key := deliveryKey(path, h, cs.id, res.PushID)
	first, length, total := res.Span()
	missing := res.Missing()
	var lost uint64
	for _, r := range missing {
		lost += r.Len()
	}
	if c.origin == nil {
		discard(res.Body())
		c.noOrigin(cs, res, path, h, fmt.Sprintf("multicast lost %d bytes of it", lost), int64(lost))
		return
	}
	c.mu.Lock()
	if _, dup := c.settled[key]; dup || c.jobs[key] != nil || ctx.Err() != nil || !c.roomLocked(path) {
		if dup {
			c.stats.Duplicates++
		}
		c.mu.Unlock()
		discard(res.Body())
		return
	}
	j := &job{
		key: key, path: path, etag: h.Get("Etag"), repair: true, reason: "multicast lost bytes",
		res: res, verifier: verifier, session: cs.id, pushID: res.PushID, prof: h3m.ProfileOf(&cs.ad), header: h,
		first: first, length: length, total: total,
		remaining: c.alignRepair(mergeRanges(missing, uint64(c.cfg.MergeGap)), first, length, total, h),
	}
	j.d.LostBytes = int64(lost)
	j.d.Promised = res.Promised()
	j.d.RepairRanges = slices.Clone(j.remaining)
	c.addJobLocked(j)
	c.mu.Unlock()
	c.log.Debug("repairing", "path", path, "session", cs.id, "push_id", res.PushID, "lost", lost, "ranges", len(j.remaining))
	c.startJob(ctx, j)
}

// startFetch starts the whole fetch of a resource whose push failed,
// unless a fetch of the same path is under way (it brings the resource: the
// push is merged into it) or the catalogue's current version of the path
// is already here or coming: 50 failed pushes of /big.bin cost one
// download.
func (c *Client) startFetch(ctx context.Context, cs *csession, res *h3m.Resource, path string, h http.Header, why error) {
	if c.origin == nil {
		c.noOrigin(cs, res, path, h, fmt.Sprintf("its multicast push failed: %v", why), 0)
		return
	}
	key := deliveryKey(path, h, cs.id, res.PushID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doneLocked(key) || c.jobs[key] != nil || ctx.Err() != nil {
		return
	}
	if f := c.fetching[path]; f != nil || c.currentDoneLocked(path) {
		if f != nil {
			f.alsoLocked(key)
		}
		c.stats.Merged++
		return
	}
	if !c.roomLocked(path) {
		return
	}
	j := &job{
		key: key, path: path, etag: h.Get("Etag"), res: res, session: cs.id, pushID: res.PushID,
		reason: fmt.Sprintf("multicast push failed: %v", why), header: h,
	}
	j.d.Promised = res.Promised()
	j.first, j.length, j.total = res.Span()
	// The digests of a failed push (its headers arrived) check the
	// unicast copy only when that carries none of its own and is the same
	// representation (readWhole): the push may have failed because they
	// were wrong, and then the copy is refused, never wrongly accepted.
	c.addJobLocked(j)
	c.startJob(ctx, j)
}

// noOrigin gives up a resource of cs that multicast did not deliver whole,
// for a client with no origin to get it from.
func (c *Client) noOrigin(cs *csession, res *h3m.Resource, path string, h http.Header, what string, lost int64) {
	key := deliveryKey(path, h, cs.id, res.PushID)
	c.mu.Lock()
	_, done := c.settled[key]
	if !done {
		c.settleLocked(key, time.Now())
		c.settlePushLocked(cs.id, res.PushID, time.Now())
	}
	c.mu.Unlock()
	if done {
		return
	}
	c.giveUp(&Delivery{Path: path, ETag: h.Get("Etag"), Session: cs.id, PushID: res.PushID, LostBytes: lost,
		Err: fmt.Errorf("%w: %s: %s: %w", ErrGivenUp, path, what, ErrNoOrigin)})
}

// startJob runs j on a goroutine of its own until it settles or ctx ends.
func (c *Client) startJob(ctx context.Context, j *job) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.runJob(ctx, j)
	}()
}

// runJob runs a job to its end: attempts spread over [0, RepairDelay) at
// first, then retried with jittered exponential back-off. Network failures
// and transient statuses are retried while the client runs; bad answers
// switch a repair to a whole fetch and are given up after MaxBadResponses.
func (c *Client) runJob(ctx context.Context, j *job) {
	settled := false
	defer func() { c.finishJob(j, settled) }()
	if !sleep(ctx, spread(c.cfg.RepairDelay)) {
		return
	}
	backoff := c.cfg.RepairBackoff
	for {
		if c.isSuperseded(j) {
			if j.repair {
				discard(j.res.Body())
			}
			c.log.Debug("not fetching an obsolete representation: a later push of its path came", "path", j.path, "session", j.session, "push_id", j.pushID)
			c.count(func(st *Stats) { st.Superseded++ })
			settled = true
			return
		}
		if j.etag != "" && c.isDelivered(j.path, j.etag) {
			// Delivered meanwhile (the other session of a rollover).
			if j.repair {
				discard(j.res.Body())
			}
			settled = true
			return
		}
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if c.isSuperseded(j) { // a later push came while the job waited
			<-c.sem
			continue
		}
		c.beginAttempt(j)
		d, err := c.attempt(ctx, j)
		c.endAttempt(j)
		<-c.sem
		if err == nil {
			if !c.deliver(d) {
				discard(d.Body)
			}
			settled = true
			return
		}
		if ctx.Err() != nil {
			return
		}
		if len(j.d.Problems) < 32 {
			j.d.Problems = append(j.d.Problems, unwrapAttempt(err))
		}
		var ae *attemptError
		isBad := errors.As(err, &ae) && ae.bad
		var wait time.Duration
		if isBad {
			j.bad++
			c.mu.Lock()
			c.stats.BadResponses++
			c.mu.Unlock()
			if j.bad >= c.cfg.MaxBadResponses {
				c.log.Warn("bad unicast response; giving up", "path", j.path, "err", err)
				if j.repair {
					discard(j.res.Body())
				}
				d := j.d
				d.Path, d.ETag, d.Session, d.PushID = j.path, j.etag, j.session, j.pushID
				d.Err = fmt.Errorf("%w: %s: %d bad responses, the last: %w", ErrGivenUp, j.path, j.bad, unwrapAttempt(err))
				c.giveUp(&d)
				settled = true
				return
			}
			if j.repair {
				c.log.Warn("repair failed; fetching the resource whole", "path", j.path, "err", err)
				discard(j.res.Body())
				c.mu.Lock()
				j.repair = false
				c.mu.Unlock()
			} else {
				c.log.Warn("bad unicast response; fetching again", "path", j.path, "err", err)
			}
			wait = jitter(c.cfg.RepairBackoff)
		} else {
			c.mu.Lock()
			c.stats.RequestErrors++
			c.mu.Unlock()
			wait = jitter(backoff)
			if ae != nil && ae.retryAfter > wait {
				wait = min(ae.retryAfter, 4*c.cfg.MaxBackoff)
			}
			backoff = min(2*backoff, c.cfg.MaxBackoff)
			level := slog.LevelInfo
			if len(j.d.Problems) > 1 {
				level = slog.LevelDebug // the first failure was logged
			}
			c.log.Log(ctx, level, "unicast request failed; retrying with back-off", "path", j.path, "in", wait.Round(time.Millisecond), "err", err)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

func unwrapAttempt(err error) error {
	if ae, ok := err.(*attemptError); ok {
		return ae.err
	}
	return err
}

func (c *Client) isSuperseded(j *job) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return j.superseded
}

// supersedeLocked marks the jobs of path older than push pushID of
// session as superseded.
func (c *Client) supersedeLocked(path, session string, pushID uint64) {
	if c.busy[path] == 0 {
		return // no job for path
	}
	for _, j := range c.jobs {
		if j.path == path && j.session == session && j.pushID < pushID {
			j.superseded = true
		}
	}
}

func (c *Client) isDelivered(path, etag string) bool {
	h := http.Header{"Etag": {etag}}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.settled[deliveryKey(path, h, "", 0)]
	return ok
}

func (c *Client) finishJob(j *job, settled bool) {
	c.mu.Lock()
	if c.jobs[j.key] == j {
		delete(c.jobs, j.key)
	}
	if c.fetching[j.path] == j {
		delete(c.fetching, j.path)
	}
	c.unbusyLocked(j.path)
	abandoned := c.abandoned
	if settled || abandoned != nil {
		// The push is dealt with, whatever representation came (a repair
		// may have met a newer one): its catalogue entry, which has the
		// same key, is not fetched again; nor are those merged into it.
		now := time.Now()
		c.settleLocked(j.key, now)
		c.settlePushLocked(j.session, j.pushID, now)
		for _, k := range j.also {
			c.settleLocked(k, now)
		}
	}
	c.mu.Unlock()
	c.notify()
	if settled || abandoned == nil {
		return
	}
	// Stopped unsettled because the client finished without its origin.
	if j.repair {
		discard(j.res.Body())
	}
	d := j.d
	d.Path, d.ETag, d.Session, d.PushID = j.path, j.etag, j.session, j.pushID
	d.Err = fmt.Errorf("%w: %s: %s: %w", ErrGivenUp, j.path, j.reason, abandoned)
	if n := len(j.d.Problems); n > 0 {
		d.Err = fmt.Errorf("%w (last: %w)", d.Err, j.d.Problems[n-1])
	}
	c.giveUp(&d)
}

func (c *Client) attempt(ctx context.Context, j *job) (*Delivery, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	d, err := c.attemptOnce(rctx, j)
	if err != nil && ctx.Err() == nil { // not the client stopping
		err = c.cacheFailed(j, err)
	}
	return d, err
}

func (c *Client) attemptOnce(ctx context.Context, j *job) (*Delivery, error) {
	if j.repair {
		return c.repairAttempt(ctx, j)
	}
	resp, err := c.get(ctx, j, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusErr(j.path, resp)
	}
	return c.readWhole(j, resp)
}

// get sends one GET for j.path.
func (c *Client) get(ctx context.Context, j *job, hdr http.Header) (*http.Response, error) {
	t, err := wellknown.ParseTarget(j.path)
	if err != nil {
		return nil, badErr(err)
	}
	u := c.pick(j, t)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, badErr(err)
	}
	maps.Copy(req.Header, hdr)
	j.d.Requests++
	c.mu.Lock()
	c.stats.Requests++
	if j.fromCache() {
		c.stats.CacheRequests++
	}
	c.mu.Unlock()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transientErr(fmt.Errorf("client: GET %s: %w", u.Redacted(), err))
	}
	if j.fromCache() {
		resp.Body = &cacheBody{ReadCloser: resp.Body, c: c}
		return resp, nil
	}
	c.contact()
	c.noteAltSvc(resp.Header)
	return resp, nil
}

// statusErr classifies a status the client did not expect: server errors,
// 408 and 429 are transient (honouring Retry-After), the rest bad.
func statusErr(path string, resp *http.Response) error {
	err := &StatusError{Path: path, Code: resp.StatusCode, Status: resp.Status}
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		ae := &attemptError{err: err}
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			ae.retryAfter = time.Duration(s) * time.Second
		}
		return ae
	}
	return badErr(err)
}

// repairAttempt fetches the remaining missing ranges, at most MaxRanges
// per request, writes them into the multicast copy and verifies it.
func (c *Client) repairAttempt(ctx context.Context, j *job) (*Delivery, error) {
	body := j.res.Body()
	if body == nil {
		return nil, badErr(fmt.Errorf("client: %s: the multicast copy has no body to repair", j.path))
	}
	for len(j.remaining) > 0 {
		batch := j.remaining[:min(len(j.remaining), c.rangesPerRequest(j))]
		whole, err := c.rangeRequest(ctx, j, body, batch)
		if err != nil {
			return nil, err
		}
		if whole != nil {
			discard(body) // superseded by the whole resource
			return whole, nil
		}
		j.remaining = j.remaining[len(batch):]
	}
	if err := j.verifier.Verify(j.res, j.prof); err != nil {
		return nil, badErr(fmt.Errorf("client: %s: repaired resource: %w", j.path, err))
	}
	whole := j.first == 0 && j.length == j.total
	checked := j.header.Get("Digest") != "" || (j.header.Get("Content-Digest") != "" && whole)
	// The origin's Repr-Digest is the pushed Content-Digest when the
	// representation did not change: Verify has just checked the body
	// against that very value, and a second pass would hash it again.
	if j.reprDigest != "" && whole && !sameDigestChecked(j) {
		if err := integrity.VerifyContentDigest(j.reprDigest, io.NewSectionReader(body, 0, j.length), nil); err != nil && !errors.Is(err, integrity.ErrNoSupportedDigest) {
			return nil, badErr(fmt.Errorf("%w: unicast: %s: repaired resource: Repr-Digest: %w", h3m.ErrIntegrity, j.path, err))
		}
		checked = true
	}
	if c.cfg.RequireDigest && !checked {
		return nil, badErr(fmt.Errorf("%w: unicast: %s: repaired resource carries no digest", h3m.ErrIntegrity, j.path))
	}
	d := j.d
	d.Path, d.ETag, d.Via, d.Session, d.PushID = j.path, j.etag, ViaRepair, j.session, j.pushID
	d.Status, d.Size, d.Header, d.Body = j.res.Response().Status, j.length, j.header, body
	return &d, nil
}

// sameDigestChecked reports whether j's Repr-Digest is the Content-Digest
// the push carried on a whole (200) response, which Verify checks: then
// the Repr-Digest holds nothing Verify has not.
func sameDigestChecked(j *job) bool {
	cd := j.header.Get("Content-Digest")
	return cd != "" && cd == j.reprDigest && j.res.Response().Status == http.StatusOK
}

// rangeRequest asks for batch with If-Range on the pushed ETag and writes
// what comes back into body. A 206 must cover every range asked, with
// parts inside the batch and of the pushed representation's size; a 200
// (the server ignored Range, or the representation changed) is taken as
// the whole resource and returned.
func (c *Client) rangeRequest(ctx context.Context, j *job, body h3m.Body, batch []ranges.Range) (*Delivery, error) {
	hdr := http.Header{"Range": {rangeHeader(batch)}}
	if strongETag(j.etag) {
		hdr.Set("If-Range", j.etag)
	}
	resp, err := c.get(ctx, j, hdr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return c.readWhole(j, resp)
	case http.StatusRequestedRangeNotSatisfiable, http.StatusPreconditionFailed:
		return nil, badErr(fmt.Errorf("%w: %s: asked %s, server answered %s", ErrRangeMismatch, j.path, hdr.Get("Range"), resp.Status))
	default:
		return nil, statusErr(j.path, resp)
	}
	if et := resp.Header.Get("Etag"); j.etag != "" && et != "" && et != j.etag {
		return nil, badErr(fmt.Errorf("%w: %s: partial content of representation %s, asked %s", ErrRangeMismatch, j.path, et, j.etag))
	}
	cr := &countingReader{r: resp.Body}
	resp.Body = io.NopCloser(cr)
	span := batch[len(batch)-1].End - batch[0].Start
	var covered ranges.Set
	var wrote int64
	var got []string
	buf := make([]byte, partBuffer)
	err = partialParts(resp, func(p rangePart) error {
		got = append(got, fmt.Sprintf("%d-%d/%d", p.cr.First, p.cr.Last, p.cr.Complete))
		if j.total >= 0 && p.cr.Complete != j.total {
			return fmt.Errorf("%w: %s: asked %s of a %d-byte representation, got bytes %d-%d of %d", ErrRangeMismatch, j.path, hdr.Get("Range"), j.total, p.cr.First, p.cr.Last, p.cr.Complete)
		}
		if uint64(p.cr.Len()) > span || !overlaps(batch, uint64(p.cr.First), uint64(p.cr.Last)+1) {
			return fmt.Errorf("%w: %s: asked %s, got bytes %d-%d", ErrRangeMismatch, j.path, hdr.Get("Range"), p.cr.First, p.cr.Last)
		}
		// Through a bounded buffer: each piece read goes where it
		// overlaps the ranges asked.
		return copyPart(p, buf, func(off int64, b []byte) error {
			start, end := uint64(off), uint64(off)+uint64(len(b))
			for _, r := range batch {
				lo, hi := max(r.Start, start), min(r.End, end)
				if lo >= hi {
					continue
				}
				if _, err := body.WriteAt(b[lo-start:hi-start], int64(lo)-j.first); err != nil {
					return badErr(fmt.Errorf("client: %s: storing repaired bytes: %w", j.path, err))
				}
				wrote += int64(covered.Add(lo, hi))
			}
			return nil
		})
	})
	j.d.RepairBytes += wrote
	j.d.RepairWireBytes += cr.n
	c.wroteFromCache(j, wrote)
	if err != nil {
		var ae *attemptError
		if errors.As(err, &ae) {
			return nil, err
		}
		if errors.Is(err, ErrRangeMismatch) || errors.Is(err, ErrMalformedResponse) {
			return nil, badErr(err)
		}
		return nil, transientErr(fmt.Errorf("client: %s: reading ranges: %w", j.path, err))
	}
	for _, r := range batch {
		if !covered.Contains(r.Start, r.End) {
			return nil, badErr(fmt.Errorf("%w: %s: asked %s, got %v", ErrRangeMismatch, j.path, hdr.Get("Range"), got))
		}
	}
	if v := resp.Header.Get("Repr-Digest"); v != "" && !j.fromCache() {
		j.reprDigest = v
	}
	return nil, nil
}

// overlaps reports whether [lo, hi) overlaps any range of rs.
func overlaps(rs []ranges.Range, lo, hi uint64) bool {
	for _, r := range rs {
		if max(r.Start, lo) < min(r.End, hi) {
			return true
		}
	}
	return false
}

// readWhole reads a 200 response into a new body and verifies it against
// the digests it carries and, when it is the representation expected (same
// ETag), against the expected digests.
func (c *Client) readWhole(j *job, resp *http.Response) (*Delivery, error) {
	size, limit := resp.ContentLength, c.cfg.MaxResourceSize
	if limit > 0 && size > limit {
		return nil, badErr(fmt.Errorf("%w: unicast: %s: %d bytes, cap %d", h3m.ErrTooLarge, j.path, size, limit))
	}
	body, err := c.storage.NewBody(j.res, size)
	if err != nil {
		return nil, badErr(fmt.Errorf("client: %s: %w", j.path, err))
	}
	var src io.Reader = resp.Body
	if limit > 0 {
		src = io.LimitReader(resp.Body, limit+1)
	}
	n, rerr, werr := copyAt(body, src)
	fail := func(err error) (*Delivery, error) {
		discard(body)
		return nil, err
	}
	switch {
	case werr != nil:
		return fail(badErr(fmt.Errorf("client: %s: storing the body: %w", j.path, werr)))
	case rerr != nil:
		return fail(transientErr(fmt.Errorf("client: %s: reading the body: %w", j.path, rerr)))
	case limit > 0 && n > limit:
		return fail(badErr(fmt.Errorf("%w: unicast: %s: over %d bytes", h3m.ErrTooLarge, j.path, limit)))
	case size >= 0 && n != size:
		return fail(transientErr(fmt.Errorf("client: %s: body of %d bytes, content-length %d", j.path, n, size)))
	}
	h := h3frame.MergeTrailer(resp.Header, resp.Trailer)
	checked, err := verifyDigests(j.path, h, body, n, true)
	if err != nil {
		return fail(badErr(err))
	}
	etag := h.Get("Etag")
	proven := false // by what the origin gave, not by the response's own fields
	if j.expect != nil && j.etag != "" && etag == j.etag {
		c2, err := verifyDigests(j.path, j.expect, body, n, true)
		if err != nil {
			return fail(badErr(fmt.Errorf("%w (the digest the catalogue lists)", err)))
		}
		checked = checked || c2
		proven = c2
	}
	why := ""
	if !checked || (j.fromCache() && !proven) {
		// The digests the push carried, when this is its representation.
		var pushed http.Header
		pushed, why = j.pushedDigests(h, n)
		if pushed != nil {
			c2, err := verifyDigests(j.path, pushed, body, n, true)
			if err != nil {
				return fail(badErr(fmt.Errorf("%w (the digest the push carried, for the same representation)", err)))
			}
			checked, proven = checked || c2, proven || c2
		}
	}
	if j.fromCache() && !proven {
		return fail(badErr(fmt.Errorf("%w: %s: ETag %s (the origin's is %s): %s", ErrUnproven, j.path, orNone(etag), orNone(j.etag), orNone(why))))
	}
	if c.cfg.RequireDigest && !checked {
		return fail(badErr(fmt.Errorf("%w: unicast: %s: refused (digests are required): the response carries no digest, and %s", h3m.ErrIntegrity, j.path, why)))
	}
	d := j.d
	d.Path, d.ETag, d.Via, d.Session, d.PushID = j.path, etag, ViaFallback, j.session, j.pushID
	d.Status, d.Size, d.Header, d.Body = resp.StatusCode, n, h, body
	d.FetchBytes += n
	return &d, nil
}

// pushedDigests returns the digest fields of the push that j gets again
// when the response (fields h, n bytes) is the pushed representation — the
// same ETag, or with no ETag on either side the same Last-Modified and
// length — and otherwise why none applies. Content-Digest counts only when
// the push carried the whole representation.
func (j *job) pushedDigests(h http.Header, n int64) (http.Header, string) {
	if j.header == nil {
		switch {
		case j.expect == nil:
			return nil, "no push of it brought a digest to check it with"
		case j.etag != "" && h.Get("Etag") == j.etag:
			return nil, "the catalogue lists no digest for it"
		}
		return nil, fmt.Sprintf("its ETag %s is not the %s the catalogue lists", orNone(h.Get("Etag")), orNone(j.etag))
	}
	pushed := http.Header{}
	for _, f := range []string{integrity.FieldDigest, "Repr-Digest"} {
		if v := j.header.Get(f); v != "" {
			pushed.Set(f, v)
		}
	}
	if v := j.header.Get(integrity.FieldContentDigest); v != "" && j.first == 0 && j.length == j.total {
		pushed.Set(integrity.FieldContentDigest, v)
	}
	if len(pushed) == 0 {
		return nil, "the push carried no digest either"
	}
	pe, re := j.header.Get("Etag"), h.Get("Etag")
	switch {
	case pe != "" || re != "":
		if pe != re {
			return nil, fmt.Sprintf("its ETag %s is not the pushed %s, so the push's digest does not apply", orNone(re), orNone(pe))
		}
	case j.header.Get("Last-Modified") == "" || j.header.Get("Last-Modified") != h.Get("Last-Modified"):
		return nil, fmt.Sprintf("with no ETag, its Last-Modified %s is not the pushed %s", orNone(h.Get("Last-Modified")), orNone(j.header.Get("Last-Modified")))
	case j.total >= 0 && j.total != n:
		return nil, fmt.Sprintf("with no ETag, its %d bytes are not the pushed %d", n, j.total)
	}
	return pushed, ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// verifyDigests checks every digest field of h over the n bytes of body:
// Content-Digest (when the body is the whole content), Repr-Digest and
// Digest. Fields whose algorithms are all unsupported are skipped. It
// reports whether any digest was checked.
func verifyDigests(path string, h http.Header, body io.ReaderAt, n int64, whole bool) (bool, error) {
	checked := false
	for _, f := range []struct {
		name    string
		content bool
		verify  func(string, io.Reader, []string) error
	}{
		{integrity.FieldContentDigest, true, integrity.VerifyContentDigest},
		{"Repr-Digest", false, integrity.VerifyContentDigest},
		{integrity.FieldDigest, false, integrity.VerifyDigest},
	} {
		v := h.Get(f.name)
		if v == "" || (f.content && !whole) {
			continue
		}
		err := f.verify(v, io.NewSectionReader(body, 0, n), nil)
		if errors.Is(err, integrity.ErrNoSupportedDigest) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("%w: unicast: %s: %s: %w", h3m.ErrIntegrity, path, f.name, err)
		}
		checked = true
	}
	return checked, nil
}

// copyAt copies r into w from offset 0; rerr and werr say which side failed.
func copyAt(w io.WriterAt, r io.Reader) (n int64, rerr, werr error) {
	buf := make([]byte, 32<<10)
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if _, werr = w.WriteAt(buf[:m], n); werr != nil {
				return n, nil, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// strongETag reports whether s is a strong entity tag (usable in If-Range).
func strongETag(s string) bool {
	return wellknown.ValidETag(s) && !strings.HasPrefix(s, "W/")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
