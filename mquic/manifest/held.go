package manifest

import "time"

// EachHeld calls f for each packet held now, oldest first, with its packet
// number, when it was held, and whether it carries only MANIFEST frames,
// until f returns false. A receiver uses it to ask for the manifests it lacks
// over another channel (unicast) before the packets expire.
func (a *Authenticator) EachHeld(f func(pn uint64, since time.Time, manifestOnly bool) bool) {
	for i := a.heldQ.front(); i >= 0; i = a.heldQ.nodes[i].next {
		h := a.heldQ.at(i)
		if !f(h.pn, a.epoch.Add(time.Duration(h.at)), h.manifestOnly) {
			return
		}
	}
}

// OldestHeldData returns the packet number of the oldest held packet that
// carries more than MANIFEST frames (the packets of only MANIFEST frames
// are skipped), and false when none is held. Held packets are kept in
// arrival order, so this is the lowest packet number held unless the
// network reordered them.
func (a *Authenticator) OldestHeldData() (uint64, bool) {
	for i := a.heldQ.front(); i >= 0; i = a.heldQ.nodes[i].next {
		if h := a.heldQ.at(i); !h.manifestOnly {
			return h.pn, true
		}
	}
	return 0, false
}
