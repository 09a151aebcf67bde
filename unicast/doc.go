// Package unicast holds the unicast side of h3m, built on quic-go's
// HTTP/3, in sub-packages by role:
//
//   - origin is the sender's side: the unicast HTTP/3 server that announces
//     the multicast sessions (Alt-Svc and /.well-known/h3m), delivers their
//     keys over TLS and serves repairs and fallback; the registries it
//     publishes (sessions, catalogue, signed manifests, signature keys);
//     the file server; and the publisher that runs the multicast sessions,
//     pushes resources and rolls sessions over. origin.New wires them all,
//     as "h3m serve" does.
//   - client is the receiver's side: discovery, joining the sessions,
//     repairing what multicast lost with range requests, fetching what it
//     missed, falling back to unicast while multicast is silent, and
//     fetching lost manifests and signature keys.
//   - gateway serves what a client receives to local players over HTTP.
//   - metrics exports the counters of origin, client and gateway as
//     Prometheus metrics, read from their own statistics at scrape time.
//   - wellknown is the vocabulary both sides share: the well-known document
//     (sessions, catalogue entries, keys), its paths and limits.
//
// The well-known document is specified in spec/unicast.md.
package unicast
