package h3m

// ReceiverRunning reports whether Run has started r's worker, so that a
// test feeding packets by hand knows HandlePacket leaves the off-path work
// to it.
func ReceiverRunning(r *Receiver) bool { return r.running.Load() }
