package client

import (
	"net/netip"
	"sort"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// SessionInfo describes a multicast session the client knows, for status
// displays (a gateway's status page).
type SessionInfo struct {
	ID       string
	Protocol string // the advertisement's protocol-id, e.g. "h3m-11"
	Group    netip.AddrPort
	Source   netip.Addr
	State    wellknown.SessionState
	// PeakFlowRate is the advertised peak flow rate in bit/s (0: none).
	PeakFlowRate uint64
	Asymmetric   bool
	// Joined says whether a receiver runs for it now; JoinedAt is when it
	// started.
	Joined   bool
	JoinedAt time.Time
	// Channel is the path prefix the session carries ("" for any path);
	// Idle says it is not joined because its channel is unused
	// (Config.ChannelIdle).
	Channel string
	Idle    bool
	// Refused: symmetric while Config.RequireAsymmetric is set.
	Refused bool
	// JoinError is the last join failure ("" after a successful join).
	JoinError string
	// Packets and Bytes (UDP payload) are what the current receiver
	// accepted since it joined; LastPacket is when the client last saw
	// the packet count grow.
	Packets, Bytes uint64
	LastPacket     time.Time
	// Transport and Pushes are the current receiver's counters, of its
	// packets and of its pushes (zero when not joined).
	Transport mquic.ReceiverStats
	Pushes    h3m.ReceiverStats
}

// Sessions lists the sessions the client knows, by ID.
func (c *Client) Sessions() []SessionInfo {
	c.mu.Lock()
	sessions := make([]*csession, 0, len(c.sessions))
	for _, cs := range c.sessions {
		sessions = append(sessions, cs)
	}
	c.mu.Unlock()
	out := make([]SessionInfo, 0, len(sessions))
	rcvs := make([]*h3m.Receiver, 0, len(sessions))
	for _, cs := range sessions {
		p := cs.ad.Session
		si := SessionInfo{
			ID: cs.id, Protocol: cs.ad.ProtocolID, Group: p.Group, Source: p.Source,
			PeakFlowRate: p.PeakFlowRate, Asymmetric: p.HasExtension(manifest.ExtensionID),
		}
		cs.mu.Lock()
		si.State, si.Refused, si.LastPacket = cs.state, cs.refused, cs.lastPacket
		si.Joined, si.JoinedAt = cs.rcv != nil, cs.joinedAt
		si.Channel, si.Idle = cs.od.name, cs.od.parked
		if cs.joinErr != nil {
			si.JoinError = cs.joinErr.Error()
		}
		rcvs = append(rcvs, cs.rcv)
		cs.mu.Unlock()
		out = append(out, si)
	}
	// The receivers' counters are read with no lock of ours held, as the
	// monitor does: their event handlers take ours.
	for i, rcv := range rcvs {
		if rcv != nil {
			st := rcv.Transport().Stats()
			out[i].Packets, out[i].Bytes = st.Packets, st.Bytes
			out[i].Transport, out[i].Pushes = st, rcv.Stats()
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
