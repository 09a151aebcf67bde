package h3m

// ReceiverRunning reports whether Run has started r's worker, so that a
// test feeding packets by hand knows HandlePacket leaves the off-path work
// to it.
func ReceiverRunning(r *Receiver) bool { return r.running.Load() }

// FileWrites is how many write calls b made to its file.
func FileWrites(b *FileBody) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writes
}
