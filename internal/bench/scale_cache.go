package bench

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/h3m-project/h3m/interop"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// The scale bench's cache tier: an nginx cache host on the bridge
// (interop.StartNginxCache) that receivers repair and fall back through
// (the origin lists it: h3m serve --repair-url), fetching from the origin's
// TCP listener (h3m serve --tcp-listen) on a miss. The origin's unicast
// bytes are counted at the sender's bridge port as in every run: what it
// sends the cache and, when the cache fails them, the receivers.

// The cache tiers.
const (
	// TierSlice: nginx caches slices of interop.CacheSlice bytes;
	// receivers align repairs to those blocks (h3m receive's default), so
	// that every receiver asks for the same ranges whatever it lost in a
	// block.
	TierSlice = "slice"
	// TierExact: nginx caches each range asked as its own object and asks
	// the origin for exactly that range; receivers ask for exactly what they
	// lost (--repair-block 1). Loss upstream of every receiver makes them
	// ask the same ranges.
	TierExact = "exact"
)

// originTCPPort is the origin's TCP listener for the cache.
const originTCPPort = 4434

// CacheFigures are what a run through the cache shows in its log.
type CacheFigures struct {
	// OriginFetches are the cache's fetches from the origin (slices or
	// ranges), and MostFetches the most fetches of any one slice or range
	// (1: each was fetched once, whatever the number of receivers).
	OriginFetches, MostFetches int
	// UpstreamBytes is what the cache received from the origin, WholeBytes
	// the part of it for requests of whole resources (no Range: fallback
	// fetches) and EntryBytes for signed catalogue entries, the rest being
	// for repairs.
	UpstreamBytes, WholeBytes, EntryBytes int64
	// Entries counts the signed catalogue entries the cache fetched from
	// the origin.
	Entries int
}

// prepareCacheRuns creates the certificate the origin and the cache share
// (the receivers are given it as their CA), valid for both hosts.
func prepareCacheRuns(dir string, tiers []string) error {
	for _, t := range tiers {
		if t != TierSlice && t != TierExact {
			return fmt.Errorf("scale: unknown cache tier %q (want %s or %s)", t, TierSlice, TierExact)
		}
	}
	if err := interop.NginxAvailable(); err != nil {
		return fmt.Errorf("scale: the cache tier: %w", err)
	}
	_, err := origin.LoadOrCreateCertificate(filepath.Join(dir, "h3m-cert.pem"), filepath.Join(dir, "h3m-key.pem"),
		[]string{"10.77.0.1", "10.77.0.2", "fd77::1", "fd77::2"})
	return err
}

// startTier starts a cold cache for one run and adds the flags that put
// it between the receivers and the origin.
func startTier(ctx context.Context, host interop.Host, dir, runDir, tier string, p *PeersOptions) (*interop.NginxCache, error) {
	cache, err := interop.StartNginxCache(ctx, host, interop.NginxOptions{
		Upstream: "https://" + netip.AddrPortFrom(netip.MustParseAddr("10.77.0.1"), originTCPPort).String(),
		Cert:     filepath.Join(dir, "h3m-cert.pem"), Key: filepath.Join(dir, "h3m-key.pem"),
		Dir:         runDir + "-nginx",
		ExactRanges: tier == TierExact,
	})
	if err != nil {
		return nil, fmt.Errorf("scale: %w", err)
	}
	// The origin logs each request it serves at debug level: what each
	// receiver and the cache cost it (--scale-dir keeps the logs).
	p.ServeArgs = append(p.ServeArgs, "--log-level", "debug", "--tcp-listen", fmt.Sprintf("10.77.0.1:%d", originTCPPort), "--repair-url", cache.URL)
	if tier == TierExact {
		p.ReceiveArgs = append(p.ReceiveArgs, "--repair-block", "1")
	}
	return cache, nil
}

// read takes the figures of the cache's log; a log that cannot be read
// fails the run.
func (f *CacheFigures) read(cache *interop.NginxCache, run *PeerRun) {
	log, err := cache.CacheLog()
	if err != nil {
		if run.Err == nil {
			run.Err = fmt.Errorf("the cache's log: %w", err)
		}
		return
	}
	for _, e := range log {
		f.UpstreamBytes += e.UpstreamBytes
		switch {
		case strings.HasPrefix(e.URI, wellknown.CatalogPath+"/"):
			f.EntryBytes += e.UpstreamBytes
			if e.Fetched() {
				f.Entries++
			}
		case e.Range == "":
			f.WholeBytes += e.UpstreamBytes
		}
	}
	for _, n := range interop.SliceFetches(log) {
		f.OriginFetches += n
		f.MostFetches = max(f.MostFetches, n)
	}
}
