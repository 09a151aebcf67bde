package h3frame

import (
	"errors"
	"fmt"
	"io"

	"github.com/quic-go/qpack"
)

// Field is one field line of a field section.
type Field struct{ Name, Value string }

// IsPseudo reports whether f is a pseudo-header field (":method", ...).
func (f Field) IsPseudo() bool { return len(f.Name) > 0 && f.Name[0] == ':' }

// Size is the field's size as RFC 9114 §4.2.2 counts it for
// SETTINGS_MAX_FIELD_SECTION_SIZE: name and value lengths plus 32.
func (f Field) Size() int { return len(f.Name) + len(f.Value) + 32 }

// DefaultMaxFieldSectionSize is the limit ParseFieldSection applies when it
// is given none.
const DefaultMaxFieldSectionSize = 64 << 10

// ErrFieldSectionTooLarge is wrapped by ParseFieldSection's error when the
// decoded section exceeds its size limit.
var ErrFieldSectionTooLarge = errors.New("h3frame: field section too large")

// appendWriter lets qpack's Encoder write into a caller's slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// AppendFieldSection appends the QPACK encoding of fields (RFC 9204): a
// prefix with Required Insert Count 0 and Base 0, then every field as a
// static-table index where name and value match an entry, otherwise as a
// literal with a static name reference or a literal name, Huffman-coded.
// It refuses what a receiver would treat as malformed (RFC 9114 §4.2, §4.3):
// names that are empty, contain upper-case or other non-token characters,
// values with NUL, CR or LF, and pseudo-headers after regular fields.
func AppendFieldSection(b []byte, fields []Field) ([]byte, error) {
	if err := checkFields(fields); err != nil {
		return b, err
	}
	if len(fields) == 0 {
		// qpack writes the prefix with the first field; an empty section
		// still needs it.
		return append(b, 0, 0), nil
	}
	w := appendWriter{b: b}
	enc := qpack.NewEncoder(&w)
	for _, f := range fields {
		if err := enc.WriteField(qpack.HeaderField{Name: f.Name, Value: f.Value}); err != nil {
			return b, fmt.Errorf("h3frame: encoding field %q: %w", f.Name, err)
		}
	}
	if err := enc.Close(); err != nil {
		return b, fmt.Errorf("h3frame: encoding field section: %w", err)
	}
	return w.b, nil
}

// FieldEncoder does what AppendFieldSection does, but keeps its QPACK
// encoder between calls, so encoding allocates nothing once warm. The zero
// value is ready to use; a FieldEncoder must not be copied after first use
// and is not safe for concurrent use.
type FieldEncoder struct {
	w   appendWriter
	enc *qpack.Encoder
}

// Append is AppendFieldSection with a reused encoder.
func (e *FieldEncoder) Append(b []byte, fields []Field) ([]byte, error) {
	if err := checkFields(fields); err != nil {
		return b, err
	}
	if len(fields) == 0 {
		return append(b, 0, 0), nil
	}
	return e.encode(b, fields)
}

func (e *FieldEncoder) encode(b []byte, fields []Field) ([]byte, error) {
	if e.enc == nil {
		e.enc = qpack.NewEncoder(&e.w)
	}
	e.w.b = b
	defer func() { e.w.b = nil }() // do not keep the caller's buffer alive
	for _, f := range fields {
		if err := e.enc.WriteField(qpack.HeaderField{Name: f.Name, Value: f.Value}); err != nil {
			_ = e.enc.Close()
			return b, fmt.Errorf("h3frame: encoding field %q: %w", f.Name, err)
		}
	}
	if err := e.enc.Close(); err != nil {
		return b, fmt.Errorf("h3frame: encoding field section: %w", err)
	}
	return e.w.b, nil
}

// ParseFieldSection decodes a QPACK field section that uses only the static
// table. It rejects, with errors wrapping ErrMalformed: a non-zero Required
// Insert Count or Base (the dynamic table is never used in h3m sessions),
// references to the dynamic table, malformed representations and Huffman
// codes, field names with upper-case or non-token characters, values with
// NUL, CR or LF, and pseudo-headers after regular fields. A section whose
// decoded size (Field.Size summed) exceeds maxSize is refused with
// ErrFieldSectionTooLarge; maxSize <= 0 means DefaultMaxFieldSectionSize.
func ParseFieldSection(block []byte, maxSize int) ([]Field, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxFieldSectionSize
	}
	ric, rest, ok := readPrefixInt(block, 8)
	if !ok {
		return nil, malformed("field section prefix: truncated or overlong Required Insert Count")
	}
	if ric != 0 {
		return nil, malformed("field section prefix: Encoded Required Insert Count %d is not 0, but h3m sessions never use the dynamic table", ric)
	}
	if len(rest) == 0 {
		return nil, malformed("field section prefix: missing Base")
	}
	sign := rest[0]&0x80 != 0
	deltaBase, _, ok := readPrefixInt(rest, 7)
	if !ok {
		return nil, malformed("field section prefix: truncated or overlong Delta Base")
	}
	if sign || deltaBase != 0 {
		return nil, malformed("field section prefix: Base is not 0 (sign %t, delta %d), but h3m sessions never use the dynamic table", sign, deltaBase)
	}
	fields := make([]Field, 0, 8) // one allocation for a typical section
	size := 0
	regular := false
	next := qpack.NewDecoder().Decode(block)
	for i := 0; ; i++ {
		hf, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, malformed("field line %d: %v", i, err)
		}
		f := Field{Name: hf.Name, Value: hf.Value}
		if size += f.Size(); size > maxSize {
			return nil, fmt.Errorf("%w: more than %d bytes at field line %d", ErrFieldSectionTooLarge, maxSize, i)
		}
		if err := checkField(f, regular); err != nil {
			return nil, malformed("field line %d: %v", i, err)
		}
		regular = regular || !f.IsPseudo()
		fields = append(fields, f)
	}
	return fields, nil
}

func checkFields(fields []Field) error {
	regular := false
	for i, f := range fields {
		if err := checkField(f, regular); err != nil {
			return fmt.Errorf("h3frame: field %d: %w", i, err)
		}
		regular = regular || !f.IsPseudo()
	}
	return nil
}

// checkField applies RFC 9114 §4.2/§4.3/§10.3 to one field; afterRegular
// tells whether a regular field came before it.
func checkField(f Field, afterRegular bool) error {
	name := f.Name
	if f.IsPseudo() {
		if afterRegular {
			return fmt.Errorf("pseudo-header %q after regular fields", name)
		}
		name = name[1:]
	}
	if name == "" {
		return fmt.Errorf("empty field name %q", f.Name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			return fmt.Errorf("upper-case character in field name %q", f.Name)
		}
		if !isTchar(c) {
			return fmt.Errorf("character %q not allowed in field name %q", c, f.Name)
		}
	}
	for i := 0; i < len(f.Value); i++ {
		if c := f.Value[i]; c == 0 || c == '\r' || c == '\n' {
			return fmt.Errorf("character %q not allowed in the value of %q", c, f.Name)
		}
	}
	return nil
}

// isTchar reports whether c is an RFC 9110 tchar.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// readPrefixInt reads an RFC 7541 §5.1 integer with an n-bit prefix, limited
// to 62 bits.
func readPrefixInt(b []byte, n uint) (v uint64, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	mask := uint64(1)<<n - 1
	v = uint64(b[0]) & mask
	if v < mask {
		return v, b[1:], true
	}
	for i, shift := 1, uint(0); i < len(b); i, shift = i+1, shift+7 {
		if shift > 55 {
			return 0, nil, false
		}
		v += uint64(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			return v, b[i+1:], true
		}
	}
	return 0, nil, false
}
