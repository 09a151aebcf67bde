// Package origin is the sender's side of h3m's unicast HTTP/3: the origin
// that announces multicast sessions, delivers their keys over TLS, and
// serves what receivers repair or fetch.
//
//   - Sessions is the registry of multicast sessions (announced, active,
//     ended, with rollover successors). The Server advertises the live ones
//     in an Alt-Svc field on every response and describes them all, with the
//     Catalog of recently pushed resources, in the well-known document.
//     Session keys travel only over TLS.
//   - FileServer serves a folder with strong content-derived ETags,
//     Content-Digest/Repr-Digest/Digest fields and byte ranges (including
//     multipart/byteranges and If-Range), so that a repair is always taken
//     from the representation that was pushed.
//   - Publisher runs the multicast sessions (mquic.Sender and h3m.Pusher),
//     pushes files with the same ETag and digests the FileServer serves,
//     records every push in the Catalog and rolls sessions over (Rollover,
//     or every PublisherConfig.Rollover). For asymmetric sessions
//     (PublisherConfig.Asymmetric, MakeAsymmetric) it signs
//     manifests of packet digests and records them in Manifests, which the
//     Server serves; the key of its resource signer goes in Keys.
//   - NewSession builds the advertisement of a session with fresh keys
//     (Rekey draws new ones for a successor); New wires a Server and a
//     Publisher over one folder and the four registries, as "h3m serve"
//     does.
package origin
