package metrics

import (
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

// Gateway collects the metrics of a gateway's service to players ("h3m
// gateway"; its receiver is collected by Receiver): what players were
// served, and how, and the requests held for live segments.
type Gateway struct {
	status func() gateway.Status

	requests, bytes, held, heldOutcome                        family
	passthrough, upstreamErrors, notModified, refused         family
	storeEntries, storeBytes, storeMax, storeEvicted, waiting family
}

// NewGateway returns the collector of the gateway whose status status
// reports (gateway.Gateway.Status).
func NewGateway(status func() gateway.Status) *Gateway {
	return &Gateway{
		status:      status,
		requests:    counter("h3m_gateway_player_requests_total", "Player requests answered with a resource, by how the gateway got it (multicast, repair, fallback, or unicast when passed to the origin).", "via"),
		bytes:       counter("h3m_gateway_player_sent_bytes_total", "Body bytes served to players, by how the gateway got them.", "via"),
		held:        counter("h3m_gateway_held_requests_total", "Player requests for live segments held until the segment arrives."),
		heldOutcome: counter("h3m_gateway_held_outcomes_total", "Held requests by outcome: arrived (by multicast in time) or fetched (over unicast after the hold timeout).", "outcome"),

		passthrough:    counter("h3m_gateway_passthrough_requests_total", "Player requests passed to the origin."),
		upstreamErrors: counter("h3m_gateway_upstream_errors_total", "Requests to the origin that failed."),
		notModified:    counter("h3m_gateway_not_modified_total", "Player requests answered 304 Not Modified."),
		refused:        counter("h3m_gateway_refused_requests_total", "Player requests for the session description, which the gateway never serves."),

		storeEntries: gauge("h3m_gateway_store_resources", "Resources the gateway holds for players."),
		storeBytes:   gauge("h3m_gateway_store_bytes", "Bytes of the resources held."),
		storeMax:     gauge("h3m_gateway_store_max_bytes", "Bytes the store may hold (--cache)."),
		storeEvicted: counter("h3m_gateway_store_evictions_total", "Resources evicted to stay within the store's size."),
		waiting:      gauge("h3m_gateway_waiting_requests", "Player requests waiting for a resource now."),
	}
}

func (g *Gateway) all() []family {
	return []family{g.requests, g.bytes, g.held, g.heldOutcome, g.passthrough, g.upstreamErrors, g.notModified,
		g.refused, g.storeEntries, g.storeBytes, g.storeMax, g.storeEvicted, g.waiting}
}

// Describe implements prometheus.Collector.
func (g *Gateway) Describe(ch chan<- *prometheus.Desc) { describe(ch, g.all()...) }

// Collect implements prometheus.Collector.
func (g *Gateway) Collect(ch chan<- prometheus.Metric) {
	st := g.status()
	for _, via := range []string{client.ViaMulticast, client.ViaRepair, client.ViaFallback, gateway.ViaUnicast} {
		g.requests.emit(ch, float64(st.Served[via]), via)
		g.bytes.emit(ch, float64(st.ServedBytes[via]), via)
	}
	g.held.emit(ch, float64(st.Held))
	g.heldOutcome.emit(ch, float64(st.HeldArrived), "arrived")
	g.heldOutcome.emit(ch, float64(st.HeldTimeout), "fetched")
	g.passthrough.emit(ch, float64(st.Passthrough))
	g.upstreamErrors.emit(ch, float64(st.UpstreamErr))
	g.notModified.emit(ch, float64(st.NotModified))
	g.refused.emit(ch, float64(st.Refused))
	g.storeEntries.emit(ch, float64(st.Store.Entries))
	g.storeBytes.emit(ch, float64(st.Store.Bytes))
	g.storeMax.emit(ch, float64(st.Store.MaxSize))
	g.storeEvicted.emit(ch, float64(st.Store.Evicted))
	g.waiting.emit(ch, float64(st.Store.Waiting))
}
