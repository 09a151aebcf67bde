package h3m_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/h3m-project/h3m/h3m"
)

func TestDirStorage(t *testing.T) {
	dir := t.TempDir()
	st := h3m.DirStorage{Dir: dir, MaxSize: 1000}
	if _, err := st.NewBody(nil, 2000); !errors.Is(err, h3m.ErrTooLarge) {
		t.Fatalf("over the cap: %v", err)
	}
	b, err := st.NewBody(nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	fb := b.(*h3m.FileBody)
	fb.WriteAt([]byte("world"), 5)
	fb.WriteAt([]byte("hello"), 0)
	final := filepath.Join(dir, "a", "b.txt")
	if _, err := os.Stat(final); err == nil {
		t.Fatal("final name exists before commit")
	}
	if err := fb.Commit(final); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(final)
	if !bytes.Equal(got, []byte("helloworld")) {
		t.Fatalf("%q", got)
	}
	b2, _ := st.NewBody(nil, 5)
	name := b2.(*h3m.FileBody).Name()
	b2.Discard()
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatal("discarded body left its file")
	}
	if _, err := fb.WriteAt(make([]byte, 10), 995); !errors.Is(err, h3m.ErrTooLarge) {
		t.Fatalf("write over the cap: %v", err)
	}
}
