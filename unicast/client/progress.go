package client

import (
	"sort"

	"github.com/h3m-project/h3m/h3m"
)

// Progress is a resource being received over multicast.
type Progress struct {
	Path     string
	Received int64 // body bytes arrived so far
	Size     int64 // -1 until the response headers say
}

// InProgress lists the resources the joined sessions are receiving now,
// largest first, for progress displays.
func (c *Client) InProgress() []Progress {
	var out []Progress
	for _, rcv := range c.receivers() {
		for _, res := range rcv.Resources() {
			if st, _ := res.State(); st != h3m.StateReceiving || res.Path() == "" {
				continue
			}
			_, length, _ := res.Span()
			var got int64
			for _, r := range res.Received() {
				got += int64(r.Len())
			}
			out = append(out, Progress{Path: res.Path(), Received: got, Size: length})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Size > out[j].Size })
	return out
}

// receivers returns the receivers of the joined sessions.
func (c *Client) receivers() []*h3m.Receiver {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rcvs []*h3m.Receiver
	for _, cs := range c.sessions {
		cs.mu.Lock()
		if cs.rcv != nil {
			rcvs = append(rcvs, cs.rcv)
		}
		cs.mu.Unlock()
	}
	return rcvs
}

// Outstanding is what the client still expects: resources being received
// and resources the catalogue listed that are not settled yet, with their
// bytes still to come.
type Outstanding struct {
	Resources int
	Bytes     int64
}

// Outstanding returns what is still expected, for progress displays (an
// estimate: a catalogue lists what was pushed so far, not what will be).
func (c *Client) Outstanding() Outstanding {
	var o Outstanding
	busy := map[string]bool{}
	for _, p := range c.InProgress() {
		o.Resources++
		busy[p.Path] = true
		if p.Size > p.Received {
			o.Bytes += p.Size - p.Received
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.catalog {
		e := &c.catalog[i]
		if c.settledEntryLocked(e) || busy[e.Path] || !c.expectedLocked(e) {
			continue
		}
		o.Resources++
		o.Bytes += e.Size
	}
	return o
}
