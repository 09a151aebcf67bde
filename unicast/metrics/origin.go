package metrics

import (
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/prometheus/client_golang/prometheus"
)

// Origin collects the metrics of an origin ("h3m serve"): its sessions,
// the running session's transport, its pushes and what its unicast server
// answered.
type Origin struct {
	o *origin.Origin

	sessions, packets, bytes, streamBytes, pings, paceWait, rate, queue family
	fecRepair, manifestsSigned, manifestFrames                          family
	pushes, pushBytes, pushErrors                                       family
	descriptions, keys, manifestRequests, manifestBytes                 family
	manifestStreams, manifestStreamsRefused                             family
	repairRequests, repairBytes, wholeRequests, wholeBytes              family
	notModified, rejected, rangesIgnored                                family
	descNotModified, mrepairPushes, mrepairBytes                        family
	catalogEntries                                                      family
	fecOverhead, fecChanges, fecLoss                                    family
}

// NewOrigin returns the collector of o.
func NewOrigin(o *origin.Origin) *Origin {
	return &Origin{
		o:           o,
		sessions:    gauge("h3m_origin_sessions", "Multicast sessions the origin describes, by state.", "state"),
		packets:     counter("h3m_origin_packets_sent_total", "Multicast packets sent in the running session.", "session"),
		bytes:       counter("h3m_origin_sent_bytes_total", "UDP payload bytes of multicast packets sent in the running session.", "session"),
		streamBytes: counter("h3m_origin_stream_sent_bytes_total", "Stream data bytes sent in the running session.", "session"),
		pings:       counter("h3m_origin_keepalive_packets_total", "Keep-alive PING packets sent in the running session.", "session"),
		paceWait:    counter("h3m_origin_pace_wait_seconds_total", "Time the multicast writer waited for the pacer.", "session"),
		rate:        gauge("h3m_origin_pacing_rate_bytes_per_second", "Advertised peak flow rate the running session is paced to.", "session"),
		queue:       gauge("h3m_origin_send_queue_packets", "Sealed packets waiting for the multicast writer (backlog).", "session"),
		fecRepair:   counter("h3m_origin_fec_repair_packets_total", "FEC repair packets sent in the running session.", "session"),

		manifestsSigned: counter("h3m_origin_inband_manifests_total", "Manifests signed for in-band delivery (asymmetric sessions).", "session"),
		manifestFrames:  counter("h3m_origin_inband_manifest_frames_total", "MANIFEST frames sent in-band, copies included.", "session"),

		pushes:     counter("h3m_origin_pushes_total", "Resources pushed over multicast."),
		pushBytes:  counter("h3m_origin_pushed_bytes_total", "Body bytes of the resources pushed over multicast."),
		pushErrors: counter("h3m_origin_push_errors_total", "Pushes that failed."),

		descriptions:           counter("h3m_origin_descriptions_served_total", "Session descriptions (/.well-known/h3m) served."),
		keys:                   counter("h3m_origin_keys_served_total", "Public keys of resource signatures served."),
		catalogEntries:         counter("h3m_origin_catalog_entries_served_total", "Signed catalogue entries served alone (to caches, or receivers)."),
		manifestRequests:       counter("h3m_origin_manifest_requests_total", "Requests for signed manifests over unicast answered (streams included)."),
		manifestBytes:          counter("h3m_origin_manifest_served_bytes_total", "Bytes of signed manifests served over unicast."),
		manifestStreams:        gauge("h3m_origin_manifest_streams_open", "Long-lived manifest streams served now."),
		manifestStreamsRefused: counter("h3m_origin_manifest_streams_refused_total", "Manifest streams refused because too many were open."),
		repairRequests:         counter("h3m_origin_repair_requests_total", "Range requests answered with part of a resource (receivers repairing losses)."),
		repairBytes:            counter("h3m_origin_repair_served_bytes_total", "Body bytes of range responses (multipart framing included)."),
		wholeRequests:          counter("h3m_origin_fallback_requests_total", "GET requests answered with a whole resource (receivers fetching what multicast did not bring)."),
		wholeBytes:             counter("h3m_origin_fallback_served_bytes_total", "Body bytes of whole-resource responses."),
		notModified:            counter("h3m_origin_not_modified_total", "Conditional requests answered 304 Not Modified."),
		rejected:               counter("h3m_origin_rejected_requests_total", "Requests refused with an error status, by reason.", "reason"),
		rangesIgnored:          counter("h3m_origin_ranges_ignored_total", "Range requests answered whole because they asked for too many ranges."),
		descNotModified:        counter("h3m_origin_descriptions_not_modified_total", "Reads of the session description answered 304 Not Modified (the receiver's copy was current)."),
		mrepairPushes:          counter("h3m_origin_multicast_repair_pushes_total", "Partial pushes of byte ranges that many receivers asked to repair, sent once more on the session (serve --mcast-repair)."),
		mrepairBytes:           counter("h3m_origin_multicast_repair_bytes_total", "Body bytes of those multicast repairs."),
		fecOverhead:            gauge("h3m_origin_fec_repair_overhead", "Repair packets per source packet of the FEC blocks the running session sends now (0: none).", "session"),
		fecChanges:             counter("h3m_origin_fec_overhead_changes_total", "Changes of the repair overhead by the adaptive FEC policy (serve --fec auto)."),
		fecLoss:                gauge("h3m_origin_fec_loss_estimate", "Per-receiver loss behind the adaptive FEC policy's repair overhead (0 while it sends none)."),
	}
}

func (c *Origin) all() []family {
	return []family{c.sessions, c.packets, c.bytes, c.streamBytes, c.pings, c.paceWait, c.rate, c.queue,
		c.fecRepair, c.manifestsSigned, c.manifestFrames, c.pushes, c.pushBytes, c.pushErrors,
		c.descriptions, c.keys, c.manifestRequests, c.manifestBytes, c.manifestStreams, c.manifestStreamsRefused,
		c.repairRequests, c.repairBytes, c.wholeRequests, c.wholeBytes, c.notModified, c.rejected, c.rangesIgnored,
		c.descNotModified, c.mrepairPushes, c.mrepairBytes, c.catalogEntries, c.fecOverhead, c.fecChanges, c.fecLoss}
}

// Describe implements prometheus.Collector.
func (c *Origin) Describe(ch chan<- *prometheus.Desc) { describe(ch, c.all()...) }

// Collect implements prometheus.Collector.
func (c *Origin) Collect(ch chan<- prometheus.Metric) {
	byState := map[wellknown.SessionState]int{wellknown.StateAnnounced: 0, wellknown.StateActive: 0, wellknown.StateEnded: 0}
	for _, s := range c.o.Sessions.List() {
		byState[s.State]++
	}
	for st, n := range byState {
		c.sessions.emit(ch, float64(n), string(st))
	}

	// The main publisher and each channel's (serve --channels): pushes
	// summed, transport figures per session.
	var pushes, pushBytes, pushErrors uint64
	for _, p := range append([]*origin.Publisher{c.o.Publisher}, c.o.Channels()...) {
		ps := p.Stats()
		pushes, pushBytes, pushErrors = pushes+ps.Pushes, pushBytes+ps.PushBytes, pushErrors+ps.PushErrors
		id := ps.Session
		if id == "" {
			continue
		}
		s := &ps.Sender
		c.packets.emit(ch, float64(s.Packets), id)
		c.bytes.emit(ch, float64(s.Bytes), id)
		c.streamBytes.emit(ch, float64(s.StreamBytes), id)
		c.pings.emit(ch, float64(s.Pings), id)
		c.paceWait.emit(ch, s.PaceWait.Seconds(), id)
		c.rate.emit(ch, float64(ps.PeakFlowRate)/8, id)
		c.queue.emit(ch, float64(s.Queued), id)
		c.fecRepair.emit(ch, float64(s.FEC.RepairPackets), id)
		c.fecOverhead.emit(ch, s.FEC.Overhead, id)
		c.manifestsSigned.emit(ch, float64(s.Manifests.Manifests), id)
		c.manifestFrames.emit(ch, float64(s.Manifests.Frames), id)
	}
	c.pushes.emit(ch, float64(pushes))
	c.pushBytes.emit(ch, float64(pushBytes))
	c.pushErrors.emit(ch, float64(pushErrors))

	ss := c.o.Server.Stats()
	c.descriptions.emit(ch, float64(ss.Descriptions))
	c.keys.emit(ch, float64(ss.Keys))
	c.catalogEntries.emit(ch, float64(ss.CatalogEntries))
	c.manifestRequests.emit(ch, float64(ss.ManifestRequests))
	c.manifestBytes.emit(ch, float64(ss.ManifestBytes))
	c.repairRequests.emit(ch, float64(ss.RepairRequests))
	c.repairBytes.emit(ch, float64(ss.RepairBytes))
	c.wholeRequests.emit(ch, float64(ss.WholeRequests))
	c.wholeBytes.emit(ch, float64(ss.WholeBytes))
	c.notModified.emit(ch, float64(ss.NotModified))
	c.descNotModified.emit(ch, float64(ss.DescriptionsNotModified))
	var rs origin.MulticastRepairStats
	if c.o.Repair != nil {
		rs = c.o.Repair.Stats()
	}
	c.mrepairPushes.emit(ch, float64(rs.Pushes))
	c.mrepairBytes.emit(ch, float64(rs.PushedBytes))
	var fs origin.AutoFECStats
	if c.o.AutoFEC != nil {
		fs = c.o.AutoFEC.Stats()
	}
	c.fecChanges.emit(ch, float64(fs.Changes))
	c.fecLoss.emit(ch, fs.Loss)
	for _, r := range origin.RejectReasons {
		c.rejected.emit(ch, float64(ss.Rejected[r]), r)
	}
	c.rangesIgnored.emit(ch, float64(c.o.Files.Stats().RangesIgnored))

	ms := c.o.Manifests.Streams()
	c.manifestStreams.emit(ch, float64(ms.Serving))
	c.manifestStreamsRefused.emit(ch, float64(ms.Refused))
}
