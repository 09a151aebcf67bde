package gateway

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/h3m-project/h3m/internal/mediatype"
	"github.com/h3m-project/h3m/unicast/client"
)

// How much the status keeps of what happened recently.
const (
	recentResources = 50
	recentRequests  = 50
)

// Status is what the status page shows; as JSON (StatusJSONPath) every
// name is snake_case.
type Status struct {
	Now           time.Time `json:"now"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	// Sessions are the multicast sessions the receiver knows.
	Sessions []SessionStatus `json:"sessions"`
	// Receiver is the receiver's own account (nil without Config.Receiver).
	Receiver *ReceiverStatus `json:"receiver,omitempty"`
	// Served counts the requests answered with a resource (and their body
	// bytes), by how the gateway got it: client.ViaMulticast, ViaRepair,
	// ViaFallback or ViaUnicast.
	Served      map[string]uint64 `json:"requests_by_via"`
	ServedBytes map[string]uint64 `json:"bytes_by_via"`
	// MulticastShare is the share of the body bytes served to players that
	// the receiver got from multicast (repaired resources included), 0 to 1.
	MulticastShare float64 `json:"multicast_share"`
	Held           uint64  `json:"held_requests"`
	HeldArrived    uint64  `json:"held_then_arrived"`
	HeldTimeout    uint64  `json:"held_then_fetched"`
	Passthrough    uint64  `json:"passed_to_upstream"`
	UpstreamErr    uint64  `json:"upstream_errors"`
	NotModified    uint64  `json:"not_modified"`
	// Refused counts requests for the session description, which the
	// gateway never serves.
	Refused uint64     `json:"refused_well_known"`
	Store   StoreStats `json:"store"`
	// Manifests are the stream manifests (.mpd, .m3u8) the store holds.
	Manifests      []string        `json:"manifests"`
	Recent         []EntryStatus   `json:"recent_resources"`
	RecentRequests []RequestStatus `json:"recent_requests"`
}

// SessionStatus describes one multicast session.
type SessionStatus struct {
	ID       string `json:"id"`
	Protocol string `json:"protocol"`
	Group    string `json:"group"`
	Source   string `json:"source,omitempty"`
	State    string `json:"state"`
	Joined   bool   `json:"joined"`
	// Channel is the path prefix the session carries ("" for any); Idle
	// says it is not joined because no player uses that channel now.
	Channel    string `json:"channel,omitempty"`
	Idle       bool   `json:"idle,omitempty"`
	Asymmetric bool   `json:"asymmetric"`
	Refused    bool   `json:"refused"`
	JoinError  string `json:"join_error,omitempty"`
	// PeakFlowRate is the advertised rate; ReceiveRate what arrived
	// since the status was last read (at least a second before), both in
	// bit/s of UDP payload.
	PeakFlowRate uint64 `json:"peak_flow_rate_bps"`
	ReceiveRate  uint64 `json:"receive_rate_bps"`
	Packets      uint64 `json:"packets"`
	Bytes        uint64 `json:"bytes"`
	// SinceLastPacket is how long ago the packet count last grew, in
	// seconds (-1: never).
	SinceLastPacket float64 `json:"seconds_since_last_packet"`
}

// ReceiverStatus is the receiver's account (client.Stats).
type ReceiverStatus struct {
	Multicast       int   `json:"multicast"`
	Repaired        int   `json:"repaired"`
	Fallback        int   `json:"fallback"`
	Failed          int   `json:"failed"`
	Duplicates      int   `json:"duplicates"`
	LostBytes       int64 `json:"lost_bytes"`
	RepairBytes     int64 `json:"repair_bytes"`
	FetchBytes      int64 `json:"fetch_bytes"`
	Requests        int   `json:"requests"`
	RequestErrors   int   `json:"request_errors"`
	BadResponses    int   `json:"bad_responses"`
	Joins           int   `json:"joins"`
	JoinErrors      int   `json:"join_errors"`
	Leaves          int   `json:"leaves"`
	IdleLeaves      int   `json:"idle_leaves"`
	Refused         int   `json:"refused_sessions"`
	ManifestsFetch  int64 `json:"manifests_fetched"`
	FallbackActive  bool  `json:"fallback_active"`
	FallbackEntered int   `json:"fallback_entered"`
}

func receiverStatus(s client.Stats) *ReceiverStatus {
	return &ReceiverStatus{
		Multicast: s.Multicast, Repaired: s.Repaired, Fallback: s.Fallback, Failed: s.Failed, Duplicates: s.Duplicates,
		LostBytes: s.LostBytes, RepairBytes: s.RepairBytes, FetchBytes: s.FetchBytes,
		Requests: s.Requests, RequestErrors: s.RequestErrors, BadResponses: s.BadResponses,
		Joins: s.Joins, JoinErrors: s.JoinErrors, Leaves: s.Leaves, IdleLeaves: s.IdleLeaves, Refused: s.Refused, ManifestsFetch: s.ManifestsFetched,
		FallbackActive: s.FallbackActive, FallbackEntered: s.FallbackEntered,
	}
}

// EntryStatus describes one stored resource.
type EntryStatus struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Via     string `json:"via"`
	Session string `json:"session,omitempty"`
	// Age is how long ago it was delivered, in seconds.
	Age float64 `json:"age_seconds"`
}

// RequestStatus describes one request a player made.
type RequestStatus struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Via    string    `json:"via"`
	Bytes  int64     `json:"bytes"`
}

func (g *Gateway) remember(rs RequestStatus) {
	g.recentMu.Lock()
	defer g.recentMu.Unlock()
	if len(g.recent) < recentRequests {
		g.recent = append(g.recent, rs)
		return
	}
	g.recent[g.next] = rs
	g.next = (g.next + 1) % recentRequests
}

// recentRequests returns the remembered requests, newest first.
func (g *Gateway) recentRequests() []RequestStatus {
	g.recentMu.Lock()
	defer g.recentMu.Unlock()
	out := make([]RequestStatus, 0, len(g.recent))
	for i := range g.recent {
		out = append(out, g.recent[(g.next-1-i+2*len(g.recent))%len(g.recent)])
	}
	return out
}

// Status returns the gateway's figures.
func (g *Gateway) Status() Status {
	now := g.cfg.Now()
	st := Status{
		Now:           now.UTC(),
		UptimeSeconds: int64(now.Sub(g.started) / time.Second),
		Sessions:      []SessionStatus{},
		Served:        map[string]uint64{},
		ServedBytes:   map[string]uint64{},
		Held:          g.held.Load(),
		HeldArrived:   g.heldHit.Load(),
		HeldTimeout:   g.heldFallback.Load(),
		Passthrough:   g.passthrough.Load(),
		UpstreamErr:   g.upstreamErrors.Load(),
		NotModified:   g.notModified.Load(),
		Refused:       g.refused.Load(),
		Store:         g.cfg.Store.Stats(),
		Manifests:     []string{},
		Recent:        []EntryStatus{},
	}
	var total, fromMulticast uint64
	for k, c := range g.served {
		st.Served[k] = c.requests.Load()
		b := c.bytes.Load()
		st.ServedBytes[k] = b
		total += b
		if k == client.ViaMulticast || k == client.ViaRepair {
			fromMulticast += b
		}
	}
	if total > 0 {
		st.MulticastShare = float64(fromMulticast) / float64(total)
	}
	if rc := g.cfg.Receiver; rc != nil {
		st.Receiver = receiverStatus(rc.Stats())
		sessions := rc.Sessions()
		keep := make(map[string]bool, len(sessions))
		for _, s := range sessions {
			keep[s.ID] = true
			ss := SessionStatus{
				ID: s.ID, Protocol: s.Protocol, Group: s.Group.String(), State: string(s.State),
				Joined: s.Joined, Channel: s.Channel, Idle: s.Idle, Asymmetric: s.Asymmetric, Refused: s.Refused, JoinError: s.JoinError,
				PeakFlowRate: s.PeakFlowRate, Packets: s.Packets, Bytes: s.Bytes, SinceLastPacket: -1,
				ReceiveRate: g.rates.observe(s.ID, now, s.Bytes),
			}
			if s.Source.IsValid() {
				ss.Source = s.Source.String()
			}
			if !s.LastPacket.IsZero() {
				ss.SinceLastPacket = math.Round(now.Sub(s.LastPacket).Seconds()*10) / 10
			}
			st.Sessions = append(st.Sessions, ss)
		}
		g.rates.prune(keep)
	}
	for _, e := range g.cfg.Store.Entries() {
		if mediatype.IsManifest(e.Path) {
			st.Manifests = append(st.Manifests, e.Path)
		}
		if len(st.Recent) < recentResources {
			st.Recent = append(st.Recent, EntryStatus{Path: e.Path, Size: e.Size, Via: e.Via, Session: e.Session,
				Age: math.Round(now.Sub(e.ModTime).Seconds()*10) / 10})
		}
	}
	sort.Strings(st.Manifests)
	st.RecentRequests = g.recentRequests()
	return st
}

// rateMeter turns growing byte counts into rates: each reading at least a
// second after the previous one of its key gives a new rate; readings in
// between give the last rate.
type rateMeter struct {
	mu   sync.Mutex
	last map[string]rateSample
}

type rateSample struct {
	at   time.Time
	n    uint64
	rate uint64 // bit/s
}

func (m *rateMeter) observe(key string, now time.Time, n uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.last[key]
	if !ok || n < s.n || now.Before(s.at) {
		m.last[key] = rateSample{at: now, n: n}
		return 0
	}
	dt := now.Sub(s.at)
	if dt < time.Second {
		return s.rate
	}
	rate := uint64(float64(n-s.n) * 8 / dt.Seconds())
	m.last[key] = rateSample{at: now, n: n, rate: rate}
	return rate
}

// prune forgets the keys not in keep.
func (m *rateMeter) prune(keep map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.last {
		if !keep[k] {
			delete(m.last, k)
		}
	}
}
