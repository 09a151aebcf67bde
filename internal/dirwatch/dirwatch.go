// Package dirwatch finds the files of a folder that are new or changed and
// no longer being written: what `h3m serve --watch` pushes when a packager
// (ffmpeg, a DASH packager) writes a live stream into the folder.
package dirwatch

import (
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File is a complete file found in the folder.
type File struct {
	Path    string // slash-separated, relative to the folder, no leading slash
	Size    int64
	ModTime time.Time
}

// Options tune a Watcher.
type Options struct {
	// Interval between scans; 0 means 100 ms.
	Interval time.Duration
	// Settle is how long a file's size and modification time must stay the
	// same before it counts as written; 0 means 300 ms.
	Settle time.Duration
	// Skip reports names (base names) never to push; nil means SkipTemp.
	Skip func(name string) bool
	// Last reports files to hand out after the others found in the same
	// scan: manifests, so that they never reference a segment not yet sent.
	// Nil means IsManifest.
	Last func(name string) bool
}

// SkipTemp skips hidden files and the temporary names packagers write to
// before renaming (*.tmp, *.part, *~).
func SkipTemp(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") ||
		strings.HasSuffix(name, ".part") || strings.HasSuffix(name, "~")
}

// IsManifest reports DASH and HLS manifests.
func IsManifest(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".mpd" || ext == ".m3u8"
}

// Watcher scans a folder.
type Watcher struct {
	root string
	opt  Options
	seen map[string]state // what was last reported, or is settling
}

type state struct {
	size     int64
	mod      time.Time
	since    time.Time // when size/mod were first seen like this
	reported bool
}

// New returns a watcher of root. Nothing is reported until Scan.
func New(root string, opt Options) *Watcher {
	if opt.Interval == 0 {
		opt.Interval = 100 * time.Millisecond
	}
	if opt.Settle == 0 {
		opt.Settle = 300 * time.Millisecond
	}
	if opt.Skip == nil {
		opt.Skip = SkipTemp
	}
	if opt.Last == nil {
		opt.Last = IsManifest
	}
	return &Watcher{root: root, opt: opt, seen: map[string]state{}}
}

// Scan walks the folder once and returns the files that became ready
// (complete and new or changed since last reported), sorted by name with
// manifests last. With settle false every file present is ready at once:
// the first scan of a folder that is not being written.
func (w *Watcher) Scan(now time.Time, settle bool) ([]File, error) {
	var ready, last []File
	present := map[string]bool{}
	err := filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == w.root {
				return err
			}
			return nil // a file vanished while walking
		}
		if d.IsDir() {
			if p != w.root && w.opt.Skip(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || w.opt.Skip(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(w.root, p)
		rel = filepath.ToSlash(rel)
		present[rel] = true
		st, ok := w.seen[rel]
		if !ok || st.size != info.Size() || !st.mod.Equal(info.ModTime()) {
			st = state{size: info.Size(), mod: info.ModTime(), since: now}
		}
		if !st.reported && (!settle || now.Sub(st.since) >= w.opt.Settle) {
			st.reported = true
			f := File{Path: rel, Size: info.Size(), ModTime: info.ModTime()}
			if w.opt.Last(d.Name()) {
				last = append(last, f)
			} else {
				ready = append(ready, f)
			}
		}
		w.seen[rel] = st
		return nil
	})
	for p := range w.seen {
		if !present[p] {
			delete(w.seen, p)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].Path < ready[j].Path })
	sort.Slice(last, func(i, j int) bool { return last[i].Path < last[j].Path })
	return append(ready, last...), err
}

// Watch scans every interval until ctx ends and calls fn with each batch of
// ready files. The first scan reports every file present without waiting
// for it to settle when initial is true.
func (w *Watcher) Watch(ctx context.Context, initial bool, fn func([]File) error) error {
	files, err := w.Scan(time.Now(), !initial)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		if err := fn(files); err != nil {
			return err
		}
	}
	t := time.NewTicker(w.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			files, err := w.Scan(now, true)
			if err != nil {
				if _, serr := os.Stat(w.root); serr != nil {
					return err
				}
				continue
			}
			if len(files) > 0 {
				if err := fn(files); err != nil {
					return err
				}
			}
		}
	}
}
