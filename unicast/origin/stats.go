package origin

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/h3m-project/h3m/mquic"

	"github.com/h3m-project/h3m/unicast/internal/httpmeter"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ServerStats count what a Server answered. Responses are counted once the
// handler returns (the bytes of a manifest stream as they are written).
type ServerStats struct {
	// Descriptions counts session descriptions served (200).
	Descriptions uint64
	// Keys counts public keys served (200).
	Keys uint64
	// CatalogEntries counts signed catalogue entries served (200), to
	// caches or receivers.
	CatalogEntries uint64
	// ManifestRequests counts manifest requests answered 200 (streams
	// included), ManifestBytes the bytes of manifests they carried.
	ManifestRequests, ManifestBytes uint64
	// RepairRequests count the range requests for content answered with a
	// part of it (206), RepairBytes their body bytes (multipart framing
	// included): receivers repairing what multicast lost.
	RepairRequests, RepairBytes uint64
	// WholeRequests count the GET requests for content answered whole
	// (200), WholeBytes their body bytes: receivers fetching what multicast
	// did not bring, or that do not receive multicast at all.
	WholeRequests, WholeBytes uint64
	// NotModified counts conditional requests answered 304;
	// DescriptionsNotModified those of them for the session description
	// (a receiver's copy was current).
	NotModified, DescriptionsNotModified uint64
	// Rejected counts the requests answered with an error status, by
	// reason (RejectReasons).
	Rejected map[string]uint64
}

// RejectReasons are the keys of ServerStats.Rejected: the reasons a
// request is refused, from its status code.
var RejectReasons = []string{"bad_request", "forbidden", "not_found", "method", "range", "busy", "server_error", "other"}

// rejectReason names the reason of an error status.
func rejectReason(status int) int {
	switch {
	case status == http.StatusBadRequest:
		return 0
	case status == http.StatusForbidden:
		return 1
	case status == http.StatusNotFound:
		return 2
	case status == http.StatusMethodNotAllowed:
		return 3
	case status == http.StatusRequestedRangeNotSatisfiable:
		return 4
	case status == http.StatusServiceUnavailable, status == http.StatusTooManyRequests:
		return 5
	case status >= 500:
		return 6
	}
	return 7
}

// serverCounters are a Server's counters (ServerStats).
type serverCounters struct {
	descriptions, keys              atomic.Uint64
	catalogEntries                  atomic.Uint64
	manifestRequests, manifestBytes atomic.Uint64
	repairRequests, repairBytes     atomic.Uint64
	wholeRequests, wholeBytes       atomic.Uint64
	notModified, descNotModified    atomic.Uint64
	rejected                        [8]atomic.Uint64 // by rejectReason
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	c := &s.counters
	st := ServerStats{
		Descriptions: c.descriptions.Load(), Keys: c.keys.Load(), CatalogEntries: c.catalogEntries.Load(),
		ManifestRequests: c.manifestRequests.Load(), ManifestBytes: c.manifestBytes.Load(),
		RepairRequests: c.repairRequests.Load(), RepairBytes: c.repairBytes.Load(),
		WholeRequests: c.wholeRequests.Load(), WholeBytes: c.wholeBytes.Load(),
		NotModified: c.notModified.Load(), DescriptionsNotModified: c.descNotModified.Load(),
		Rejected: make(map[string]uint64, len(RejectReasons)),
	}
	for i, r := range RejectReasons {
		st.Rejected[r] = c.rejected[i].Load()
	}
	return st
}

// route is what a request asked the server for.
type route int

const (
	routeContent route = iota
	routeDescription
	routeManifests
	routeKeys
	routeCatalog
)

func routeOf(path string) route {
	switch {
	case path == wellknown.Path:
		return routeDescription
	case strings.HasPrefix(path, wellknown.ManifestsPath+"/"):
		return routeManifests
	case strings.HasPrefix(path, wellknown.KeysPath+"/"):
		return routeKeys
	case strings.HasPrefix(path, wellknown.CatalogPath+"/"):
		return routeCatalog
	}
	return routeContent
}

// count records the response w wrote for a request of route rt.
func (c *serverCounters) count(rt route, method string, w *httpmeter.Writer) {
	status := w.Status
	if status == 0 {
		status = http.StatusOK
	}
	switch {
	case status >= 400:
		c.rejected[rejectReason(status)].Add(1)
	case status == http.StatusNotModified:
		c.notModified.Add(1)
		if rt == routeDescription {
			c.descNotModified.Add(1)
		}
	case status != http.StatusOK && status != http.StatusPartialContent:
	case rt == routeDescription:
		c.descriptions.Add(1)
	case rt == routeKeys:
		c.keys.Add(1)
	case rt == routeCatalog:
		c.catalogEntries.Add(1)
	case rt == routeManifests:
		c.manifestRequests.Add(1)
	case status == http.StatusPartialContent:
		c.repairRequests.Add(1)
		c.repairBytes.Add(uint64(w.Bytes))
	case method == http.MethodGet:
		c.wholeRequests.Add(1)
		c.wholeBytes.Add(uint64(w.Bytes))
	}
}

// PublisherStats count what a Publisher pushed.
type PublisherStats struct {
	// Pushes counts the resources pushed, PushBytes their body bytes;
	// PushErrors the pushes that failed.
	Pushes, PushBytes, PushErrors uint64
	// Session is the ID of the running session ("" if none), PeakFlowRate
	// its advertised rate in bit/s and Sender its transport's counters.
	Session      string
	PeakFlowRate uint64
	Sender       mquic.SenderStats
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() PublisherStats {
	p.mu.Lock()
	ps := p.current
	p.mu.Unlock()
	st := PublisherStats{Pushes: p.pushes.Load(), PushBytes: p.pushBytes.Load(), PushErrors: p.pushErrors.Load()}
	if ps != nil {
		st.Session, st.PeakFlowRate, st.Sender = ps.id, ps.ad.Session.PeakFlowRate, ps.snd.Stats()
	}
	return st
}
