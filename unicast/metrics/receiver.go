package metrics

import (
	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/prometheus/client_golang/prometheus"
)

// Receiver collects the metrics of a receiving client ("h3m receive", and
// the receiver inside "h3m gateway"): per joined session its packets, drops
// and verification failures; and how its resources came.
type Receiver struct {
	c *client.Client

	sessions, packets, bytes, dropped, lostPackets, verifyFailed family
	fecRecovered, fecUnrecovered                                 family
	resources, failed, duplicates                                family
	lostBytes, repairBytes, repairWireBytes, fetchBytes          family
	requests, requestErrors, badResponses                        family
	fallbackActive, fallbackEntered, joins, joinErrors           family
	manifestsFetched                                             family
	orphans, multicastRepairBytes                                family
}

// NewReceiver returns the collector of c.
func NewReceiver(c *client.Client) *Receiver {
	return &Receiver{
		c:              c,
		sessions:       gauge("h3m_receiver_sessions_joined", "Multicast sessions the receiver has joined now."),
		packets:        counter("h3m_receiver_packets_total", "Multicast packets accepted.", "session"),
		bytes:          counter("h3m_receiver_received_bytes_total", "UDP payload bytes of the multicast packets accepted.", "session"),
		dropped:        counter("h3m_receiver_dropped_packets_total", "Multicast datagrams dropped, by reason.", "session", "reason"),
		lostPackets:    counter("h3m_receiver_lost_packets_total", "Packet numbers skipped and never received.", "session"),
		fecRecovered:   counter("h3m_receiver_fec_recovered_packets_total", "Lost packets rebuilt from FEC repair packets (sessions with forward error correction).", "session"),
		fecUnrecovered: counter("h3m_receiver_fec_unrecovered_packets_total", "Lost packets of FEC blocks that could not be rebuilt.", "session"),
		verifyFailed:   counter("h3m_receiver_verification_failures_total", "Pushes and manifests that failed verification, by kind.", "session", "kind"),

		resources:  counter("h3m_receiver_resources_total", "Resources delivered, by how they came: multicast, repair (multicast with losses repaired over unicast) or fallback (fetched whole over unicast).", "via"),
		failed:     counter("h3m_receiver_resources_failed_total", "Resources given up."),
		duplicates: counter("h3m_receiver_duplicates_total", "Copies of resources already delivered, dropped."),

		lostBytes:       counter("h3m_receiver_lost_bytes_total", "Body bytes of delivered resources that multicast lost."),
		repairBytes:     counter("h3m_receiver_repaired_bytes_total", "Body bytes fetched by range requests to repair losses (merged gaps included)."),
		repairWireBytes: counter("h3m_receiver_repair_response_bytes_total", "Body bytes of the range responses (multipart framing included)."),
		fetchBytes:      counter("h3m_receiver_fetched_bytes_total", "Body bytes of resources fetched whole over unicast."),

		requests:      counter("h3m_receiver_unicast_requests_total", "Unicast requests made."),
		requestErrors: counter("h3m_receiver_unicast_request_errors_total", "Unicast requests that failed at the network or with a transient status."),
		badResponses:  counter("h3m_receiver_bad_responses_total", "Unicast responses refused (wrong ranges, digests that do not match, refusals)."),

		fallbackActive:   gauge("h3m_receiver_fallback_active", "1 while the receiver fetches everything over unicast because multicast does not arrive."),
		fallbackEntered:  counter("h3m_receiver_fallback_entered_total", "Switches to fallback."),
		joins:            counter("h3m_receiver_joins_total", "Multicast sessions joined."),
		joinErrors:       counter("h3m_receiver_join_errors_total", "Failed joins."),
		manifestsFetched: counter("h3m_receiver_manifests_fetched_total", "Signed manifests fetched over unicast (asymmetric sessions)."),

		orphans:              counter("h3m_receiver_orphans_total", "Push streams whose promise or header section was lost, by outcome: kept (their body bytes), matched (identified by the catalogue and repaired by range), fetched (fetched whole after all).", "outcome"),
		multicastRepairBytes: counter("h3m_receiver_multicast_repaired_bytes_total", "Lost body bytes filled by multicast repairs (the origin's partial pushes of what many receivers lost), not asked over unicast."),
	}
}

func (r *Receiver) all() []family {
	return []family{r.sessions, r.packets, r.bytes, r.dropped, r.lostPackets, r.verifyFailed, r.fecRecovered, r.fecUnrecovered,
		r.resources, r.failed, r.duplicates, r.lostBytes, r.repairBytes, r.repairWireBytes, r.fetchBytes,
		r.requests, r.requestErrors, r.badResponses, r.fallbackActive, r.fallbackEntered, r.joins, r.joinErrors,
		r.manifestsFetched, r.orphans, r.multicastRepairBytes}
}

// Describe implements prometheus.Collector.
func (r *Receiver) Describe(ch chan<- *prometheus.Desc) { describe(ch, r.all()...) }

// dropReasons name the reasons a datagram is dropped, as mquic.ReceiverStats
// counts them.
var dropReasons = []struct {
	name string
	n    func(*mquic.ReceiverStats) uint64
}{
	{"wrong_source", func(s *mquic.ReceiverStats) uint64 { return s.WrongSource }},
	{"not_short_header", func(s *mquic.ReceiverStats) uint64 { return s.NotShort }},
	{"wrong_session", func(s *mquic.ReceiverStats) uint64 { return s.WrongSession }},
	{"decrypt_failed", func(s *mquic.ReceiverStats) uint64 { return s.DecryptFailed }},
	{"duplicate", func(s *mquic.ReceiverStats) uint64 { return s.Duplicate }},
	{"stale", func(s *mquic.ReceiverStats) uint64 { return s.Stale }},
	{"unknown_frame", func(s *mquic.ReceiverStats) uint64 { return s.UnknownFrame }},
	{"bad_frame", func(s *mquic.ReceiverStats) uint64 { return s.BadFrame }},
	{"bad_manifest", func(s *mquic.ReceiverStats) uint64 { return s.BadManifest }},
	{"unauthenticated_expired", func(s *mquic.ReceiverStats) uint64 { return s.Auth.Expired }},
	{"unauthenticated_evicted", func(s *mquic.ReceiverStats) uint64 { return s.Auth.Evicted }},
	{"unconfirmed_manifest", func(s *mquic.ReceiverStats) uint64 { return s.Auth.UnconfirmedManifests }},
	{"repair_not_needed", func(s *mquic.ReceiverStats) uint64 { return s.FEC.RepairSkipped }},
}

// verifyKinds name the verification failures of a session: its pushes'
// digests and signatures (h3m.ReceiverStats), and its manifests
// (manifest.AuthStats).
var verifyKinds = []struct {
	name string
	n    func(*client.SessionInfo) uint64
}{
	{h3m.IntegrityDigest, func(s *client.SessionInfo) uint64 { return s.Pushes.DigestFailed }},
	{h3m.IntegritySignature, func(s *client.SessionInfo) uint64 { return s.Pushes.SignatureFailed }},
	{"manifest_signature", func(s *client.SessionInfo) uint64 { return s.Transport.Auth.BadSignature }},
	{"manifest_key", func(s *client.SessionInfo) uint64 { return s.Transport.Auth.WrongKey }},
	{"manifest_conflict", func(s *client.SessionInfo) uint64 { return s.Transport.Auth.Conflicting }},
}

// Collect implements prometheus.Collector.
func (r *Receiver) Collect(ch chan<- prometheus.Metric) {
	joined := 0
	for _, s := range r.c.Sessions() {
		if !s.Joined {
			continue
		}
		joined++
		t := &s.Transport
		r.packets.emit(ch, float64(t.Packets), s.ID)
		r.bytes.emit(ch, float64(t.Bytes), s.ID)
		r.lostPackets.emit(ch, float64(t.LostPackets), s.ID)
		r.fecRecovered.emit(ch, float64(t.FEC.Recovered), s.ID)
		r.fecUnrecovered.emit(ch, float64(t.FEC.Unrecovered), s.ID)
		for _, d := range dropReasons {
			r.dropped.emit(ch, float64(d.n(t)), s.ID, d.name)
		}
		for _, k := range verifyKinds {
			r.verifyFailed.emit(ch, float64(k.n(&s)), s.ID, k.name)
		}
	}
	r.sessions.emit(ch, float64(joined))

	st := r.c.Stats()
	r.resources.emit(ch, float64(st.Multicast), client.ViaMulticast)
	r.resources.emit(ch, float64(st.Repaired), client.ViaRepair)
	r.resources.emit(ch, float64(st.Fallback), client.ViaFallback)
	r.failed.emit(ch, float64(st.Failed))
	r.duplicates.emit(ch, float64(st.Duplicates))
	r.lostBytes.emit(ch, float64(st.LostBytes))
	r.repairBytes.emit(ch, float64(st.RepairBytes))
	r.repairWireBytes.emit(ch, float64(st.RepairWireBytes))
	r.fetchBytes.emit(ch, float64(st.FetchBytes))
	r.requests.emit(ch, float64(st.Requests))
	r.requestErrors.emit(ch, float64(st.RequestErrors))
	r.badResponses.emit(ch, float64(st.BadResponses))
	active := 0.0
	if st.FallbackActive {
		active = 1
	}
	r.fallbackActive.emit(ch, active)
	r.fallbackEntered.emit(ch, float64(st.FallbackEntered))
	r.joins.emit(ch, float64(st.Joins))
	r.joinErrors.emit(ch, float64(st.JoinErrors))
	r.manifestsFetched.emit(ch, float64(st.ManifestsFetched))
	r.orphans.emit(ch, float64(st.Orphans), "kept")
	r.orphans.emit(ch, float64(st.OrphansMatched), "matched")
	r.orphans.emit(ch, float64(st.OrphansFetched), "fetched")
	r.multicastRepairBytes.emit(ch, float64(st.MulticastRepairBytes))
}

// Deliveries is the histogram of the time from a push's promise to the
// delivery of its resource, by how it came. Unlike the other metrics it
// is observed as deliveries are made: call Observe from
// client.Config.OnResource.
type Deliveries struct {
	h *prometheus.HistogramVec
}

// NewDeliveries returns an empty histogram.
func NewDeliveries() *Deliveries {
	d := &Deliveries{h: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "h3m_receiver_promise_to_complete_seconds",
		Help: "Time from a push's promise to the delivery of its resource, complete and verified, by how it came.",
		// From a small resource on loopback (1 ms) to a large one
		// repaired or fetched over a slow link (150 s).
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
	}, []string{"via"})}
	for _, via := range []string{client.ViaMulticast, client.ViaRepair, client.ViaFallback} {
		d.h.WithLabelValues(via) // exported from the start, empty
	}
	return d
}

// Observe records d, if it was delivered and its promise was seen.
func (d *Deliveries) Observe(dl client.Delivery) {
	if dl.Err != nil || dl.Promised.IsZero() || dl.Time.Before(dl.Promised) {
		return
	}
	d.h.WithLabelValues(dl.Via).Observe(dl.Time.Sub(dl.Promised).Seconds())
}

// Describe implements prometheus.Collector.
func (d *Deliveries) Describe(ch chan<- *prometheus.Desc) { d.h.Describe(ch) }

// Collect implements prometheus.Collector.
func (d *Deliveries) Collect(ch chan<- prometheus.Metric) { d.h.Collect(ch) }
