package client

import (
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/wellknown"
)

// TestIncrementalCatalog: the client adds what an incremental read lists
// to the catalogue it has instead of replacing it, and forgets entries
// older than its retention.
func TestIncrementalCatalog(t *testing.T) {
	t0 := time.Now().Add(-time.Minute).Round(0)
	var entries []wellknown.CatalogEntry
	for i, p := range []string{"/a", "/b", "/c"} {
		entries = append(entries, wellknown.CatalogEntry{Path: p, Size: 1, ETag: `"e` + p[1:] + `"`, Pushed: t0.Add(time.Duration(i) * 10 * time.Second), Session: "01", PushID: uint64(i)})
	}
	delta := &wellknown.Description{Resources: entries[1:], ResourcesAfter: t0.Add(10 * time.Second)}
	c := &Client{cfg: Config{MaxCatalog: DefaultMaxCatalog, CatalogRetention: DefaultCatalogRetention}}
	now := time.Now()
	c.mergeCatalogLocked(&wellknown.Description{Resources: entries[:2]}, now)
	c.mergeCatalogLocked(delta, now)
	if len(c.catalog) != 3 {
		t.Fatalf("merged catalogue %+v", c.catalog)
	}
	// Entries older than the retention are forgotten at the next merge.
	old := wellknown.CatalogEntry{Path: "/old", ETag: `"o"`, Pushed: now.Add(-DefaultCatalogRetention - time.Minute)}
	c.catalog = append(c.catalog, old)
	c.mergeCatalogLocked(&wellknown.Description{ResourcesAfter: now}, now)
	for _, e := range c.catalog {
		if e.Path == "/old" {
			t.Fatal("an entry older than the retention was kept")
		}
	}
}
