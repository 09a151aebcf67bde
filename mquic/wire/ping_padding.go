package wire

// AppendPing appends a PING frame (RFC 9000 §19.2), the sender's keep-alive.
func AppendPing(b []byte) []byte { return append(b, byte(FrameTypePing)) }

// AppendPadding appends n PADDING frames (RFC 9000 §19.1), i.e. n zero
// bytes. n <= 0 appends nothing.
func AppendPadding(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	b = append(b, make([]byte, n)...) // the compiler turns this into a grow + clear, no allocation
	return b
}
