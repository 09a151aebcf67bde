package bench

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/interop"
)

// TestCacheTier runs Debian's nginx as a CDN cache between 4 receivers and
// the origin, on the scale bench's bridge with 10 % correlated loss (every
// receiver loses the same packets), h3m serve and receive run black-box:
//
//   - slices: the first repair URL the origin lists is down (nothing
//     listens: it costs a retry), the second is nginx slicing 64 KiB; every
//     file arrives intact, the cache's log shows each slice fetched from
//     the origin once, and the cache served the receivers more than it
//     fetched;
//   - poisoned: nginx keyed on exact ranges, its cache files tampered with
//     (the last body byte of each flipped as soon as nginx writes it): the
//     receivers catch the tampered bytes with the session's digests, skip
//     the cache and get those resources from the origin, intact.
func TestCacheTier(t *testing.T) {
	if err := ScaleAvailable(); err != nil {
		t.Skipf("cache tier: skipping: %v", err)
	}
	if err := interop.NginxAvailable(); err != nil {
		t.Skipf("cache tier: skipping (.ci/run installs nginx-light): %v", err)
	}
	bin := buildH3M(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	p := PeersOptions{H3M: bin, Size: 3 << 20, Files: 6, Rate: 100_000_000, Wait: DefaultPeersWait, Timeout: time.Minute}
	files, err := writeContent(filepath.Join(dir, "content"), p.Size, p.Files)
	if err != nil {
		t.Fatal(err)
	}
	if err := prepareCacheRuns(dir, []string{TierSlice, TierExact}); err != nil {
		t.Fatal(err)
	}
	net, err := interop.NewNetwork(ctx, interop.ModeNetns, interop.Topology{Receivers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	cacheHost, err := net.AddCache(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sw := switchHost(net)
	t.Run("slices", func(t *testing.T) {
		runDir := filepath.Join(dir, "slices")
		q := p
		// Nothing listens on the cache host's next port: a cache that is
		// down, listed first.
		down := fmt.Sprintf("https://10.77.0.2:%d", interop.CachePort+1)
		if err := setBridgeRules(ctx, sw, 10); err != nil { // zeroes the counters too
			t.Fatal(err)
		}
		q.ServeArgs = append(q.ServeArgs, "--repair-url", down)
		cache, err := startTier(ctx, cacheHost, dir, runDir, TierSlice, &q)
		if err != nil {
			t.Fatal(err)
		}
		run := q.runH3M(ctx, net, runDir, files, 0)
		cache.Stop()
		var fig CacheFigures
		fig.read(cache, &run)
		origin := bridgeUnicast(ctx, sw)
		t.Logf("deliveries %+v; cache: %+v; origin unicast %d bytes", run.H3M, fig, origin)
		if run.Err != nil {
			t.Fatal(run.Err)
		}
		if run.H3M.Repaired == 0 || run.H3M.CacheRequests == 0 {
			t.Fatalf("nothing repaired through the cache at 10 %% correlated loss: %+v", run.H3M)
		}
		if fig.OriginFetches == 0 || fig.MostFetches != 1 {
			t.Errorf("the cache fetched %d slices from the origin, one of them %d times; want each once", fig.OriginFetches, fig.MostFetches)
		}
		// The origin's own count (its bridge port) agrees with the cache's
		// log: what it sent is what the cache fetched, plus the receivers'
		// descriptions, keys and QUIC, not the content again.
		if int64(origin) > fig.UpstreamBytes*5/4+256<<10 {
			t.Errorf("the origin sent %d bytes over unicast for %d the cache fetched: receivers went around the cache", origin, fig.UpstreamBytes)
		}
		if run.H3M.CacheBytes <= fig.UpstreamBytes {
			t.Errorf("the cache served the receivers %d bytes for %d from the origin: nothing shared", run.H3M.CacheBytes, fig.UpstreamBytes)
		}
		// Each receiver meets the cache that is down once or a few times
		// (its requests in flight then), not once per resource.
		if run.H3M.CacheErrors == 0 || run.H3M.CacheErrors > 4*4 {
			t.Errorf("the cache that is down cost %d failed requests over 4 receivers", run.H3M.CacheErrors)
		}
	})

	t.Run("poisoned", func(t *testing.T) {
		runDir := filepath.Join(dir, "poisoned")
		q := p
		if err := setBridgeRules(ctx, sw, 10); err != nil {
			t.Fatal(err)
		}
		cache, err := startTier(ctx, cacheHost, dir, runDir, TierExact, &q)
		if err != nil {
			t.Fatal(err)
		}
		pctx, stopPoison := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		var poisoned int
		go func() {
			defer wg.Done()
			poisoned = poisonCache(pctx, filepath.Join(cache.Dir, "cache"))
		}()
		run := q.runH3M(ctx, net, runDir, files, 0)
		stopPoison()
		wg.Wait()
		cache.Stop()
		var fig CacheFigures
		fig.read(cache, &run)
		t.Logf("deliveries %+v; cache: %+v; %d cache files poisoned", run.H3M, fig, poisoned)
		if run.Err != nil {
			t.Fatal(run.Err) // a tampered byte reached a file
		}
		if poisoned == 0 || run.H3M.CacheRejected == 0 {
			t.Errorf("%d cache files poisoned, %d answers rejected: the test did not test", poisoned, run.H3M.CacheRejected)
		}
	})
}

func bridgeUnicast(ctx context.Context, sw interop.Host) uint64 {
	b, _ := bridgeCounter(ctx, sw, "unicast")
	return b
}

// poisonCache flips a byte in the middle of the body of every file nginx stores
// in its cache under dir, as soon as it appears under its final name (32
// hex digits), until ctx ends; it returns how many it changed.
func poisonCache(ctx context.Context, dir string) int {
	done := map[string]bool{}
	for {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || done[path] {
				return nil
			}
			if b, err := hex.DecodeString(d.Name()); err != nil || len(b) != 16 {
				return nil // a temporary file nginx is still writing
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return nil
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil || st.Size() == 0 {
				return nil
			}
			b := make([]byte, st.Size())
			if _, err := f.ReadAt(b, 0); err != nil {
				return nil
			}
			// The body follows the stored response's header block.
			body := bytes.Index(b, []byte("\r\n\r\n"))
			if body < 0 || body+4 >= len(b) {
				return nil
			}
			body += 4
			at := int64(body + (len(b)-body)/2)
			if _, err := f.WriteAt([]byte{b[at] ^ 0x01}, at); err == nil {
				done[path] = true
			}
			return nil
		})
		select {
		case <-ctx.Done():
			return len(done)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
