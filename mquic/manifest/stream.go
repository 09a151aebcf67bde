package manifest

import (
	"github.com/h3m-project/h3m/mquic/wire"

	"errors"
	"fmt"
	"io"
)

// MediaType is the media type of a manifest stream over HTTP: manifests back
// to back, nothing between them (AMBI's application/ambi). Each manifest
// delimits itself, so the stream needs no other framing.
const MediaType = "application/ambi"

// MaxLen is the length of the longest manifest the format can encode: a full
// TLV space, MaxDigests digests and a 65535-byte signature.
const MaxLen = HeaderLen + 2 + 0xffff + SaltLen + MaxDigests*DigestLen + TrailerLen + 0xffff

// ErrTooLong is returned by StreamReader.Next for a manifest longer than the
// reader's limit.
var ErrTooLong = errors.New("manifest: longer than the stream reader's limit")

// StreamReader reads the manifests of an application/ambi stream one after
// the other, as they arrive: each manifest is returned as soon as its last
// byte is read, so that a long-lived stream delivers manifests with no more
// delay than the connection adds.
type StreamReader struct {
	r          io.Reader
	alg        DigestAlg
	max        int
	buf        []byte
	start, end int
	err        error
}

// NewStreamReader returns a reader of the manifests in r, of a session whose
// profile names digest algorithm alg. maxLen bounds one manifest (and the
// reader's buffer); 0 means MaxLen.
func NewStreamReader(r io.Reader, alg DigestAlg, maxLen int) *StreamReader {
	if maxLen <= 0 || maxLen > MaxLen {
		maxLen = MaxLen
	}
	return &StreamReader{r: r, alg: alg, max: maxLen, buf: make([]byte, min(maxLen, 4096))}
}

// Next returns the next manifest, parsed, and its encoding. Both alias the
// reader's buffer and stay valid until the next call. At the end of the
// stream Next returns io.EOF if the stream ended between two manifests and
// io.ErrUnexpectedEOF if it ended inside one. A malformed manifest is a
// *ParseError, one longer than the limit ErrTooLong; after any error Next
// returns the same error again.
func (s *StreamReader) Next() (Manifest, []byte, error) {
	if s.err != nil {
		return Manifest{}, nil, s.err
	}
	for {
		if s.end > s.start {
			m, n, err := Parse(s.buf[s.start:s.end], s.alg)
			if err == nil {
				b := s.buf[s.start : s.start+n : s.start+n]
				s.start += n
				return m, b, nil
			}
			if !errors.Is(err, wire.ErrTruncated) {
				s.err = err
				return Manifest{}, nil, err
			}
			if s.end-s.start >= s.max {
				s.err = fmt.Errorf("%w: more than %d bytes", ErrTooLong, s.max)
				return Manifest{}, nil, s.err
			}
		}
		if s.end == len(s.buf) {
			// Make room: move the partial manifest to the front, then grow.
			n := copy(s.buf, s.buf[s.start:s.end])
			s.start, s.end = 0, n
			if n == len(s.buf) {
				nb := make([]byte, min(2*len(s.buf), s.max))
				copy(nb, s.buf[:n])
				s.buf = nb
			}
		} else if s.start == s.end {
			s.start, s.end = 0, 0
		}
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if n > 0 {
			continue
		}
		if err == io.EOF {
			if s.start == s.end {
				s.err = io.EOF
			} else {
				s.err = io.ErrUnexpectedEOF
			}
			return Manifest{}, nil, s.err
		}
		if err != nil {
			s.err = err
			return Manifest{}, nil, err
		}
	}
}
