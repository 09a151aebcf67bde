package h3m

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// DefaultWriteBuffer is how many bytes of a body's contiguous writes a
// FileBody holds in memory by default before it writes them in one call.
const DefaultWriteBuffer = 256 << 10

// pageSize aligns buffered writes: the kernel must zero, or read back, the
// rest of every page a write covers only in part.
const pageSize = 4096

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

// FileBody is a body in a temporary file. Writes that continue one another
// are gathered in memory (DirStorage.WriteBuffer) and written in one call
// at page boundaries; the bytes held are written before any read, commit or
// truncation, and dropped only by Discard.
type FileBody struct {
	mu   sync.Mutex
	f    *os.File
	max  int64
	done bool
	// run holds the bytes [runOff, runOff+len(run)) written but not yet in
	// the file; bufSize is its capacity (0: write every call through).
	run     []byte
	runOff  int64
	bufSize int
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
	if len(b.run) > 0 && off != b.runOff+int64(len(b.run)) {
		// Not a continuation: what is held goes first, so that a later
		// write over the same bytes wins.
		if err := b.flushLocked(false); err != nil {
			return 0, err
		}
	}
	if len(p) >= b.bufSize {
		if err := b.flushLocked(false); err != nil {
			return 0, err
		}
		return b.f.WriteAt(p, off)
	}
	if len(b.run) == 0 {
		if b.run == nil {
			b.run = make([]byte, 0, b.bufSize)
		}
		b.runOff = off
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(b.run[len(b.run):cap(b.run)], p)
		b.run = b.run[:len(b.run)+k]
		p = p[k:]
		if len(b.run) == cap(b.run) {
			if err := b.flushLocked(true); err != nil {
				return n - len(p), err // the bytes taken stay held
			}
		}
	}
	return n, nil
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
	if _, err := b.f.WriteAt(b.run[:n], b.runOff); err != nil {
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
