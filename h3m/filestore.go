package h3m

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// DirStorage writes bodies to temporary files in Dir, so that a large
// resource never has to fit in memory. A complete body is given its final
// name with FileBody.Commit; nothing ever appears under a final name
// half-written.
type DirStorage struct {
	Dir string
	// MaxSize caps a body (0: no cap).
	MaxSize int64
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
		// Reserve the space now: a full disk shows up here, not midway.
		if err := f.Truncate(size); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("h3m: body storage: %w", err)
		}
	}
	return &FileBody{f: f, max: d.MaxSize}, nil
}

// FileBody is a body in a temporary file.
type FileBody struct {
	mu   sync.Mutex
	f    *os.File
	max  int64
	done bool
}

// WriteAt implements io.WriterAt.
func (b *FileBody) WriteAt(p []byte, off int64) (int, error) {
	if b.max > 0 && off+int64(len(p)) > b.max {
		return 0, fmt.Errorf("%w: write up to byte %d, cap %d", ErrTooLarge, off+int64(len(p)), b.max)
	}
	return b.f.WriteAt(p, off)
}

// ReadAt implements io.ReaderAt.
func (b *FileBody) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// Name is the temporary file's path.
func (b *FileBody) Name() string { return b.f.Name() }

// Truncate sets the body's size (for a body whose length was not known).
func (b *FileBody) Truncate(size int64) error { return b.f.Truncate(size) }

// Discard implements Body: it removes the temporary file.
func (b *FileBody) Discard() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	b.f.Close()
	return os.Remove(b.f.Name())
}

// Commit syncs the body and renames it to path (creating its folder),
// replacing any file there. The body can still be read afterwards.
func (b *FileBody) Commit(path string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return fmt.Errorf("h3m: commit %s: body already committed or discarded", path)
	}
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
