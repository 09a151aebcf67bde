package client

import (
	"net/http"
	"slices"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/mquic/ranges"
)

// This file takes multicast repairs: partial pushes (206 with
// Content-Range) that the origin sends once more on the session when many
// receivers ask for the same bytes (spec/unicast.md, "Multicast repair").
// A repair job waits a random time before it asks (Config.RepairDelay); the
// bytes a multicast repair brings meanwhile are not asked for, so most
// receivers of a loss shared by all never ask at all, as NORM's receivers
// suppress their NACKs.

// isRepairPush reports whether res is a multicast repair: its promised
// request asks for a range.
func isRepairPush(res *h3m.Resource) bool {
	req := res.Request()
	return req != nil && req.Header.Get("Range") != ""
}

// multicastRepair writes the bytes of repair push res (of path, fields h;
// complete: it arrived whole and verified) into every repair job of the
// same representation that waits for them, and discards it. Only jobs
// between attempts take bytes; the repaired resource is still verified
// whole against the digests it was pushed or listed with, so that bytes of
// a forged repair are caught there (and the resource fetched whole).
func (c *Client) multicastRepair(cs *csession, res *h3m.Resource, path string, h http.Header, complete bool) {
	body := res.Body()
	defer discard(body)
	resp := res.Response()
	etag := h.Get("Etag")
	if !complete || resp == nil || resp.Status != http.StatusPartialContent || !strongETag(etag) || body == nil {
		return
	}
	first, length, total := res.Span()
	if length <= 0 {
		return
	}
	lo, hi := uint64(first), uint64(first+length)
	c.mu.Lock()
	var jobs []*job
	for _, j := range c.jobs {
		if j.repair && !j.attempting && j.path == path && j.etag == etag && j.total == total {
			jobs = append(jobs, j)
		}
	}
	c.mu.Unlock()
	buf := make([]byte, partBuffer)
	var used bool
	for _, j := range jobs {
		n := c.fill(j, body, lo, hi, buf)
		used = used || n > 0
	}
	if used {
		c.count(func(st *Stats) { st.MulticastRepairs++ })
		c.log.Debug("multicast repair taken", "path", path, "session", cs.id, "push_id", res.PushID, "first", first, "length", length)
	}
}

// fill writes the bytes [lo, hi) of a repair push (body) that repair job
// j still asks for into its copy, unless an attempt of j has begun, and
// returns how many it wrote.
func (c *Client) fill(j *job, body h3m.Body, lo, hi uint64, buf []byte) int64 {
	j.fillMu.Lock() // beginAttempt waits for this copy
	defer j.fillMu.Unlock()
	c.mu.Lock()
	busy := j.attempting || !j.repair
	c.mu.Unlock()
	if busy {
		return 0
	}
	var filled []ranges.Range
	var n int64
	for _, r := range j.d.RepairRanges {
		a, b := max(r.Start, lo), min(r.End, hi)
		if a >= b || !copyRange(body, int64(a-lo), j.res.Body(), int64(a)-j.first, int64(b-a), buf) {
			continue
		}
		filled = append(filled, ranges.Range{Start: a, End: b})
		n += int64(b - a)
	}
	c.mu.Lock()
	j.filled = append(j.filled, filled...)
	c.stats.MulticastRepairBytes += n
	c.mu.Unlock()
	return n
}

// copyRange copies n bytes from src at off to dst at to through buf, and
// reports whether it could.
func copyRange(src h3m.Body, off int64, dst h3m.Body, to, n int64, buf []byte) bool {
	if dst == nil {
		return false
	}
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := src.ReadAt(buf[:k], off); err != nil {
			return false
		}
		if _, err := dst.WriteAt(buf[:k], to); err != nil {
			return false
		}
		off, to, n = off+k, to+k, n-k
	}
	return true
}

// beginAttempt marks j as attempting, and takes the ranges multicast
// repairs filled since its last attempt out of what it asks for.
func (c *Client) beginAttempt(j *job) {
	j.fillMu.Lock()
	c.mu.Lock()
	j.attempting = true
	filled := j.filled
	j.filled = nil
	repair := j.repair
	c.mu.Unlock()
	j.fillMu.Unlock()
	if len(filled) == 0 || !repair {
		return
	}
	var left ranges.Set
	for _, r := range j.remaining {
		left.Add(r.Start, r.End)
	}
	for _, r := range filled {
		left.Remove(r.Start, r.End)
	}
	j.remaining = slices.Clone(left.Ranges())
}

// endAttempt marks the end of j's attempt.
func (c *Client) endAttempt(j *job) {
	c.mu.Lock()
	j.attempting = false
	c.mu.Unlock()
}
