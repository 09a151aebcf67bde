package h3m

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/h3m-project/h3m/mquic/ranges"
)

// DefaultWriteBuffer is how many bytes of a body's contiguous writes a
// FileBody holds in memory by default before it writes them in one call.
const DefaultWriteBuffer = 256 << 10

// pageSize aligns buffered writes: the kernel must zero, or read back, the
// rest of every page a write covers only in part.
const pageSize = 4096

// maxHeldGap is the largest gap a FileBody holds across: a write that
// starts at most this far past the bytes held continues them, the gap held
// as zeros, when nothing was ever written there. A lost packet then does
// not split the writes around it in two (at 10 % loss, runs of about ten
// packets, each written on its own, its first and last pages in part); the
// repair writes the gap's bytes later, over the zeros.
const maxHeldGap = 16 << 10

// DirStorage writes bodies to temporary files in Dir, so that a large
// resource never has to fit in memory. A complete body is given its final
// name with FileBody.Commit; nothing ever appears under a final name
// half-written.
type DirStorage struct {
	Dir string
	// MaxSize caps a body (0: no cap).
	MaxSize int64
	// WriteBuffer is how many bytes of contiguous writes each body holds in
	// memory, to write them in one call at page boundaries (0 means
	// DefaultWriteBuffer, negative writes every call through). A push
	// arrives in writes of about a packet each; writing each at its offset
	// costs a system call and makes the kernel zero the rest of every page
	// it starts.
	WriteBuffer int
}

// NewBody implements Storage.
func (d DirStorage) NewBody(_ *Resource, size int64) (Body, error) {
	if d.MaxSize > 0 && size > d.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, size, d.MaxSize)
	}
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("h3m: body storage: %w", err)
	}
	f, err := os.CreateTemp(d.Dir, ".h3m-*.partial")
	if err != nil {
		return nil, fmt.Errorf("h3m: body storage: %w", err)
	}
	if size > 0 {
		// Give the file its size now: a file system that cannot hold it
		// says so here, not midway.
		if err := f.Truncate(size); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("h3m: body storage: %w", err)
		}
	}
	buf := d.WriteBuffer
	if buf == 0 {
		buf = DefaultWriteBuffer
	}
	if size >= 0 && int64(buf) > size {
		buf = int(size) // a small body needs no more
	}
	return &FileBody{f: f, max: d.MaxSize, bufSize: max(buf, 0)}, nil
}

// FileBody is a body in a temporary file. Writes that continue one another,
// or follow them past a small gap where nothing was written yet (a lost
// packet, held as zeros until its repair), are gathered in memory
// (DirStorage.WriteBuffer) and written in one call at page boundaries; the
// bytes held are written before any read, commit or truncation, and
// dropped only by Discard. A read of bytes never written returns zeros, as
// from a file that was only truncated to its size.
type FileBody struct {
	mu   sync.Mutex
	f    *os.File
	max  int64
	done bool
	// run holds the bytes [runOff, runOff+len(run)) written but not yet in
	// the file (gaps held as zeros); bufSize is its capacity (0: write every
	// call through).
	run     []byte
	runOff  int64
	bufSize int
	// inFile are the byte ranges written to the file so far: a gap held
	// as zeros must not cover any of them.
	inFile ranges.Set
	// writes counts the write calls to the file.
	writes int
}

// WriteAt implements io.WriterAt.
func (b *FileBody) WriteAt(p []byte, off int64) (int, error) {
	if b.max > 0 && off+int64(len(p)) > b.max {
		return 0, fmt.Errorf("%w: write up to byte %d, cap %d", ErrTooLarge, off+int64(len(p)), b.max)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, fmt.Errorf("h3m: write to a body already committed or discarded")
	}
	if len(b.run) > 0 && !b.holdsLocked(off) {
		// Neither inside nor shortly after what is held: that goes first,
		// so that a later write over the same bytes wins.
		if err := b.flushLocked(false); err != nil {
			return 0, err
		}
	}
	if len(b.run) == 0 && len(p) >= b.bufSize {
		return b.writeFileLocked(p, off)
	}
	if len(b.run) == 0 {
		if b.run == nil {
			b.run = make([]byte, 0, b.bufSize)
		}
		b.runOff = off
	}
	n := len(p)
	for len(p) > 0 {
		at := int(off - b.runOff)
		if at > len(b.run) {
			// A gap where nothing was written: held as zeros.
			clear(b.run[len(b.run):at])
			b.run = b.run[:at]
		}
		k := copy(b.run[at:cap(b.run)], p)
		b.run = b.run[:max(len(b.run), at+k)]
		p, off = p[k:], off+int64(k)
		if len(b.run) == cap(b.run) {
			if err := b.flushLocked(true); err != nil {
				return n - len(p), err // the bytes taken stay held
			}
		}
	}
	return n, nil
}

// holdsLocked reports whether a write at off goes into the bytes held: it
// starts inside them, or after them by a gap of at most maxHeldGap that
// still fits the buffer and where nothing was written to the file.
func (b *FileBody) holdsLocked(off int64) bool {
	end := b.runOff + int64(len(b.run))
	switch {
	case off < b.runOff:
		return false
	case off <= end:
		return true
	}
	return off-end <= maxHeldGap && off-b.runOff < int64(cap(b.run)) &&
		!b.inFile.Overlaps(uint64(end), uint64(off))
}

// writeFileLocked writes p at off to the file and notes the range.
func (b *FileBody) writeFileLocked(p []byte, off int64) (int, error) {
	b.writes++
	n, err := b.f.WriteAt(p, off)
	b.inFile.Add(uint64(off), uint64(off)+uint64(n))
	return n, err
}

// flushLocked writes the bytes held. With aligned, it writes only up to the
// last page boundary they reach and keeps the rest, to be continued.
func (b *FileBody) flushLocked(aligned bool) error {
	if len(b.run) == 0 {
		return nil
	}
	n := len(b.run)
	if aligned {
		end := (b.runOff + int64(n)) &^ (pageSize - 1)
		if end > b.runOff {
			n = int(end - b.runOff)
		}
	}
	if _, err := b.writeFileLocked(b.run[:n], b.runOff); err != nil {
		return fmt.Errorf("h3m: write body: %w", err)
	}
	rest := copy(b.run, b.run[n:])
	b.run = b.run[:rest]
	b.runOff += int64(n)
	return nil
}

// ReadAt implements io.ReaderAt. It first writes the bytes held.
func (b *FileBody) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	err := b.flushLocked(false)
	b.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return b.f.ReadAt(p, off)
}

// Name is the temporary file's path.
func (b *FileBody) Name() string { return b.f.Name() }

// Truncate sets the body's size (for a body whose length was not known).
func (b *FileBody) Truncate(size int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.flushLocked(false); err != nil {
		return err
	}
	return b.f.Truncate(size)
}

// Discard implements Body: it drops the bytes held and removes the
// temporary file.
func (b *FileBody) Discard() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	b.run = nil
	b.f.Close()
	return os.Remove(b.f.Name())
}

// Commit writes the bytes held, syncs the body and renames it to path
// (creating its folder), replacing any file there. The body can still be
// read afterwards.
func (b *FileBody) Commit(path string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return fmt.Errorf("h3m: commit %s: body already committed or discarded", path)
	}
	if err := b.flushLocked(false); err != nil {
		return fmt.Errorf("h3m: commit %s: %w", path, err)
	}
	b.run = nil
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("h3m: commit %s: %w", path, err)
	}
	// Temporary files are private; the finished file gets the usual mode.
	if err := b.f.Chmod(0o644); err != nil {
		return fmt.Errorf("h3m: commit %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("h3m: commit %s: %w", path, err)
	}
	if err := os.Rename(b.f.Name(), path); err != nil {
		return fmt.Errorf("h3m: commit %s: %w", path, err)
	}
	b.done = true
	return nil
}
