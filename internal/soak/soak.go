// Package soak runs a live DASH-like stream through the whole of h3m for a
// long time, in one process: an origin (unicast/origin) pushing thousands
// of small segments and manifest updates over loopback multicast, with
// packets dropped at its socket; a gateway (unicast/client feeding
// unicast/gateway) receiving them; and a player asking the gateway for
// every segment as a live player does. The caches and catalogues of every
// part can be made small (Options), so that a run of minutes goes many
// times past each of them, as days of a real session would.
//
// It reports what the issue of long sessions is about: how each segment
// came (multicast, repair, fallback), whether anything that arrived by
// multicast was fetched again over unicast, repaired bytes against lost
// bytes, the heap and goroutines over time, and whether the player got
// every segment. The soak test (soak_test.go) asserts on it; "h3m bench
// --what soak" runs it in real time for an hour and prints it.
package soak

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// Options shape a run. Zero values take the defaults of a compressed run
// (DefaultOptions); RealTime gives those of a real-time one.
type Options struct {
	// Segments is how many media segments are pushed; one is pushed every
	// Interval, each of MinSize to MaxSize bytes; every ManifestEvery
	// segments the manifest (manifest.mpd) is pushed again, changed.
	Segments         int
	Interval         time.Duration
	MinSize, MaxSize int
	ManifestEvery    int
	// Window is how long a segment stays on the origin's disk (the live
	// window a player can still ask for).
	Window time.Duration
	// Loss is the fraction of multicast packets dropped at the sender's
	// socket.
	Loss float64
	Seed uint64
	// FEC, if positive, gives the session forward error correction at
	// this overhead (serve --fec).
	FEC float64
	// Bursts of loss: every BurstEvery segments (0: none), BurstSegments
	// segments are sent with BurstLoss of their packets dropped, enough
	// for Breaker (the client's circuit breaker; zero fields take its
	// defaults) to trip, leave the session and fetch over unicast until
	// its back-off ends.
	BurstEvery, BurstSegments int
	BurstLoss                 float64
	Breaker                   client.BreakerConfig

	// The bounds to go past: the origin's catalogue and the
	// representations it remembers, the client's copy of the catalogue and
	// its deliveries, and the gateway's store.
	CatalogEntries   int
	OriginFiles      int
	CatalogAge       time.Duration
	ClientCatalog    int
	ClientRetention  time.Duration
	MaxDeliveries    int
	StoreBytes       int64
	PeakFlowRate     uint64
	Group            netip.AddrPort
	Interface        string
	RealTimeTimings  bool // the client's default timings instead of test ones
	SampleEvery      int  // segments between two samples of heap and goroutines
	Logger           *slog.Logger
	Progress         func(Sample)
	DisablePlayer    bool // no player (to measure without one)
	PlayerHoldWindow time.Duration
}

// DefaultOptions is a compressed run: 2400 segments of 5–7 KiB, 80 per
// second (a live window of 8 s), every bound set far below what the run
// goes through.
func DefaultOptions() Options {
	return Options{
		Segments: 2400, Interval: 12 * time.Millisecond, MinSize: 5 << 10, MaxSize: 7 << 10, ManifestEvery: 10,
		Window: 8 * time.Second, Seed: 1,
		CatalogEntries: 96, OriginFiles: 128, CatalogAge: 4 * time.Second, ClientCatalog: 160, ClientRetention: 6 * time.Second,
		MaxDeliveries: 48, StoreBytes: 2 << 20, PeakFlowRate: 100_000_000, Interface: "lo", SampleEvery: 100,
	}
}

// RealTime is a real-time live stream of d: a segment (16–400 KB) every
// second, the manifest pushed after every two, the gateway command's 256
// deliveries, a 128 MB store (gateway --cache 128000000: full within ten
// minutes) and every other bound at its default (the catalogue's 10
// minutes are passed after 10 minutes).
func RealTime(d time.Duration) Options {
	return Options{
		Segments: int(d / time.Second), Interval: time.Second, MinSize: 16 << 10, MaxSize: 400 << 10, ManifestEvery: 2,
		Window: time.Minute, Seed: 1, MaxDeliveries: 256,
		StoreBytes: 128 << 20, PeakFlowRate: 100_000_000, Interface: "lo", SampleEvery: 60, RealTimeTimings: true,
	}
}

func (o *Options) setDefaults() {
	d := DefaultOptions()
	if o.Segments == 0 {
		o.Segments = d.Segments
	}
	if o.Interval == 0 {
		o.Interval = d.Interval
	}
	if o.MinSize == 0 {
		o.MinSize = d.MinSize
	}
	if o.MaxSize < o.MinSize {
		o.MaxSize = max(o.MinSize, d.MaxSize)
	}
	if o.ManifestEvery == 0 {
		o.ManifestEvery = d.ManifestEvery
	}
	if o.Window == 0 {
		o.Window = d.Window
	}
	if o.StoreBytes == 0 {
		o.StoreBytes = d.StoreBytes
	}
	if o.PeakFlowRate == 0 {
		o.PeakFlowRate = d.PeakFlowRate
	}
	if o.Interface == "" {
		o.Interface = "lo"
	}
	if !o.Group.IsValid() {
		o.Group = mcasttest.Group()
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = d.SampleEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PlayerHoldWindow == 0 {
		o.PlayerHoldWindow = time.Minute
	}
}

// Sample is the state of the process after a number of segments.
type Sample struct {
	Segments   int
	Elapsed    time.Duration
	HeapBytes  uint64 // live heap after a collection
	Goroutines int
	// Settled is how many resources the client remembers as received.
	Deliveries int
}

// Report is what a run measured.
type Report struct {
	Options  Options
	Duration time.Duration
	// Pushed counts the pushes: segments and manifest updates.
	Pushed, Manifests int
	// Via counts the client's deliveries by how they came; Failed those
	// given up. SegmentDeliveries and ManifestDeliveries count them by kind.
	Via                                   map[string]int
	Failed                                int
	SegmentDeliveries, ManifestDeliveries int
	Client                                client.Stats
	// DroppedPackets and DroppedBytes are what the sender's socket dropped.
	DroppedPackets, DroppedBytes, SentPackets int
	// WholeFetches and RangeRequests are the client's unicast requests the
	// origin saw (the description's polls apart); RefetchedMulticast the
	// unicast requests for a resource the client had received, or went on
	// to deliver, by multicast — zero when nothing is fetched twice.
	WholeFetches, RangeRequests, RefetchedMulticast int
	Refetched                                       []string // the first few of those, for the report
	// ManifestRaces are requests for a version of the manifest that were
	// answered with a later one (see ledger); ManifestWholeFetches the
	// whole fetches of the manifest, which may be too.
	ManifestRaces, ManifestWholeFetches int
	// Played counts the segments the player got from the gateway, by the
	// gateway's X-H3m-Via; PlayerErrors are its failures (wrong bytes,
	// statuses), the first few of them.
	Played       map[string]int
	PlayedOK     int
	PlayerErrors []string
	Gateway      gateway.Status
	// Samples are the heap and goroutines every SampleEvery segments;
	// WarmUp is the index of the first sample taken after every bound was
	// passed.
	Samples []Sample
	WarmUp  int
	// FECRecovered and FECUnrecovered are the lost packets the receivers
	// rebuilt from FEC repair packets, and those they could not (read
	// after every segment: a receiver's counts since the last reading
	// before the breaker stopped it are missed).
	FECRecovered, FECUnrecovered uint64
	// BurstDropped are the packets dropped during the bursts of loss.
	BurstDropped int
}

// Run runs a soak until every segment is pushed and played (or ctx ends).
func Run(ctx context.Context, o Options) (*Report, error) {
	o.setDefaults()
	log := o.Logger
	dir, err := os.MkdirTemp("", "h3m-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Options: o, Via: map[string]int{}, Played: map[string]int{}}
	led := &ledger{byKey: map[string]*keyRecord{}}

	// The origin, its sockets dropping o.Loss of the multicast packets.
	org, err := newLossyOrigin(dir, www, o.Interface, o.Loss, o.Seed, log)
	if err != nil {
		return nil, err
	}
	defer org.Close(context.WithoutCancel(ctx))
	caFile := org.CAFile
	org.Catalog.MaxEntries, org.Catalog.MaxAge = o.CatalogEntries, o.CatalogAge
	org.Files.MaxCached = o.OriginFiles
	org.Server.Handler = &requestCounter{next: org.Files, led: led}
	org.Serve()
	ad, err := origin.NewSession(origin.SessionConfig{Group: o.Group, Source: netip.MustParseAddr("127.0.0.1"), Interface: o.Interface,
		Suite: protect.SuiteAES128GCM, PeakFlowRate: o.PeakFlowRate, MaxConcurrentResources: 16, IdleTimeout: 3 * time.Second, FEC: o.FEC})
	if err != nil {
		return nil, err
	}
	if _, err := org.Publisher.Start(ad); err != nil {
		return nil, err
	}

	// The gateway: a client delivering into a store, served over HTTP.
	store := gateway.NewStore(o.StoreBytes)
	var viaMu sync.Mutex // rep.Via and rep.Failed
	cfg := client.Config{
		URL: org.URL(), CAFile: caFile, Interface: o.Interface, RecvBuffer: 64 << 20,
		MaxDeliveries: o.MaxDeliveries, MaxCatalog: o.ClientCatalog, CatalogRetention: o.ClientRetention,
		Storage: h3m.MemoryStorage{MaxSize: 16 << 20}, RequireDigest: true, ExitOnEnd: true, Breaker: o.Breaker,
		Logger: log.With("part", "client"),
		OnResource: func(d client.Delivery) {
			viaMu.Lock()
			switch {
			case d.Err != nil:
				rep.Failed++
			case d.Path == manifestPath:
				rep.ManifestDeliveries++
			default:
				rep.SegmentDeliveries++
			}
			if d.Err == nil {
				rep.Via[d.Via]++
			}
			viaMu.Unlock()
			if d.Err != nil {
				return
			}
			led.delivered(d.Path, d.ETag, d.Via)
			store.Put(gateway.EntryOf(&d))
		},
	}
	if !o.RealTimeTimings {
		compressTimings(&cfg)
	}
	rc, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	upstream := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: mustPool(caFile)}}
	defer upstream.Close()
	originURL, _ := url.Parse(org.URL())
	gw, err := gateway.New(gateway.Config{Store: store, Upstream: originURL, Transport: markGateway{upstream},
		HoldTimeout: o.PlayerHoldWindow, Logger: log.With("part", "gateway")})
	if err != nil {
		return nil, err
	}
	gwURL, closeGateway, err := serveHTTP(gw)
	if err != nil {
		return nil, err
	}
	defer closeGateway()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clientDone := make(chan error, 1)
	go func() { clientDone <- rc.Run(ctx) }()
	// The player and the producer start once the client has joined.
	for rc.Stats().Joins == 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-clientDone:
			return nil, fmt.Errorf("soak: the client stopped before joining: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	start := time.Now()
	pushed := make(chan int, o.Segments) // segment numbers, as pushed
	playerDone := make(chan struct{})
	if o.DisablePlayer {
		close(playerDone)
	} else {
		go func() {
			defer close(playerDone)
			play(ctx, rep, gwURL, o, pushed)
		}()
	}
	warm := warmUpSegments(o)
	sample := func(n int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := Sample{Segments: n, Elapsed: time.Since(start), HeapBytes: ms.HeapAlloc, Goroutines: runtime.NumGoroutine(),
			Deliveries: len(rc.Resources())}
		if rep.WarmUp == 0 && n >= warm {
			rep.WarmUp = len(rep.Samples)
		}
		rep.Samples = append(rep.Samples, s)
		if o.Progress != nil {
			o.Progress(s)
		}
	}
	sample(0)
	var perr error
	next := start
	// The representations pushed, oldest first: each is checked against
	// the requests the origin saw for it once it has left the window (and
	// forgotten, so the run's own records stay bounded).
	type pushedRep struct {
		key string
		at  time.Time
	}
	var window []pushedRep
	track := func(e wellknown.CatalogEntry) {
		now := time.Now()
		window = append(window, pushedRep{e.Path + "\x00" + e.ETag, now})
		for len(window) > 0 && now.Sub(window[0].at) > o.Window {
			led.finalize(window[0].key)
			window = window[1:]
		}
	}
	fec := fecTally{last: map[string][2]uint64{}}
	inBurst := false
	burstFrom := 0
	for i := range o.Segments {
		if burst := o.BurstEvery > 0 && i%o.BurstEvery >= o.BurstEvery-o.BurstSegments; burst != inBurst {
			inBurst = burst
			rate := o.Loss
			if burst {
				rate = o.BurstLoss
			}
			dropped := org.SetRate(rate)
			if burst {
				burstFrom = dropped
			} else {
				rep.BurstDropped += dropped - burstFrom
			}
		}
		if o.FEC > 0 {
			fec.read(rc.Sessions())
		}
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		next = next.Add(o.Interval)
		if ctx.Err() != nil {
			perr = ctx.Err()
			break
		}
		e, err := writeAndPush(ctx, org.Origin, www, o, i)
		if perr = err; perr != nil {
			break
		}
		track(e)
		rep.Pushed++
		pushed <- i
		if (i+1)%o.ManifestEvery == 0 {
			e, err := pushManifest(ctx, org.Origin, www, o, i)
			if perr = err; perr != nil {
				break
			}
			track(e)
			rep.Pushed++
			rep.Manifests++
		}
		removeOld(www, o, i)
		if (i+1)%o.SampleEvery == 0 {
			sample(i + 1)
		}
	}
	close(pushed)
	if perr != nil {
		cancel()
		<-playerDone
		<-clientDone
		return rep, fmt.Errorf("soak: pushing: %w", perr)
	}
	// The player gets the last segments; then the session ends and the
	// client, told at once by the in-band end, settles and returns.
	<-playerDone
	fec.read(rc.Sessions())
	rep.FECRecovered, rep.FECUnrecovered = fec.totals()
	if err := org.Publisher.Close(ctx); err != nil {
		return rep, err
	}
	select {
	case err = <-clientDone:
	case <-ctx.Done():
		err = ctx.Err()
		<-clientDone
	}
	rep.Duration = time.Since(start)
	rep.Client = rc.Stats()
	rep.Gateway = gw.Status()
	rep.DroppedPackets, rep.DroppedBytes, rep.SentPackets = org.Counts()
	for _, p := range window {
		led.finalize(p.key)
	}
	rep.WholeFetches, rep.RangeRequests, rep.RefetchedMulticast, rep.ManifestRaces, rep.ManifestWholeFetches, rep.Refetched = led.totals()
	sample(o.Segments)
	return rep, err
}

// warmUpSegments is how many segments go past every bound the run sets,
// with room to spare: samples from there on must be flat.
func warmUpSegments(o Options) int {
	entries := func(n, def int, age, defAge time.Duration) int {
		if n == 0 {
			n = def
		}
		if age == 0 {
			age = defAge
		}
		return min(n, int(age/o.Interval)) // whichever bound comes first
	}
	n := max(entries(o.CatalogEntries, origin.DefaultCatalogEntries, o.CatalogAge, origin.DefaultCatalogAge),
		entries(o.ClientCatalog, client.DefaultMaxCatalog, o.ClientRetention, client.DefaultCatalogRetention),
		o.OriginFiles, o.MaxDeliveries, client.DefaultMaxPushes, int(o.Window/o.Interval),
		int(o.StoreBytes/int64(o.MinSize+o.MaxSize)*2)) // the store full
	return min(n+n/4, o.Segments/2)
}

// fecTally adds up the FEC counts of the receivers a session had: each
// counts from its join, so a count lower than the last one read is a new
// receiver's.
type fecTally struct {
	last map[string][2]uint64 // session ID -> recovered, unrecovered last read
	done [2]uint64            // of the receivers that ended
}

func (f *fecTally) read(sessions []client.SessionInfo) {
	for _, s := range sessions {
		cur := [2]uint64{s.Transport.FEC.Recovered, s.Transport.FEC.Unrecovered}
		last := f.last[s.ID]
		if cur[0] < last[0] || cur[1] < last[1] {
			f.done[0], f.done[1] = f.done[0]+last[0], f.done[1]+last[1]
		}
		f.last[s.ID] = cur
	}
}

func (f *fecTally) totals() (recovered, unrecovered uint64) {
	recovered, unrecovered = f.done[0], f.done[1]
	for _, l := range f.last {
		recovered, unrecovered = recovered+l[0], unrecovered+l[1]
	}
	return recovered, unrecovered
}

// manifestPath is the live manifest's path.
const manifestPath = "/manifest.mpd"

// segmentName is the path of segment i.
func segmentName(i int) string { return fmt.Sprintf("/seg-%06d.m4s", i) }

// segment returns the bytes of segment i: reproducible from the seed, so
// that the player can check them without the run keeping them.
func segment(o Options, i int) []byte {
	rng := mrand.New(mrand.NewPCG(o.Seed, uint64(i)))
	b := make([]byte, o.MinSize+rng.IntN(o.MaxSize-o.MinSize+1))
	for j := 0; j < len(b); j += 8 {
		v := rng.Uint64()
		for k := 0; k < 8 && j+k < len(b); k++ {
			b[j+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func writeAndPush(ctx context.Context, org *origin.Origin, www string, o Options, i int) (wellknown.CatalogEntry, error) {
	name := segmentName(i)
	if err := writeFile(filepath.Join(www, name[1:]), segment(o, i)); err != nil {
		return wellknown.CatalogEntry{}, err
	}
	return org.Publisher.PushFile(ctx, name)
}

// writeFile writes b under a temporary name and renames it, as a packager
// does.
func writeFile(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// pushManifest writes and pushes a live MPD that lists the segments of
// the window up to segment last.
func pushManifest(ctx context.Context, org *origin.Origin, www string, o Options, last int) (wellknown.CatalogEntry, error) {
	first := max(0, last-int(o.Window/o.Interval)+1)
	mpd := fmt.Sprintf(`<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT%.3fS" publishTime="%s">
  <Period id="0" start="PT0S"><AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="1000000">
    <SegmentTemplate media="seg-$Number%%06d$.m4s" startNumber="%d" duration="%d" timescale="1000"/>
  </Representation></AdaptationSet></Period>
</MPD>
`, o.Interval.Seconds()*float64(o.ManifestEvery), time.Now().UTC().Format(time.RFC3339Nano), first, o.Interval.Milliseconds())
	if err := writeFile(filepath.Join(www, manifestPath[1:]), []byte(mpd)); err != nil {
		return wellknown.CatalogEntry{}, err
	}
	return org.Publisher.PushFile(ctx, manifestPath)
}

// removeOld deletes the segment that left the window.
func removeOld(www string, o Options, i int) {
	if old := i - int(o.Window/o.Interval); old >= 0 {
		os.Remove(filepath.Join(www, segmentName(old)[1:]))
	}
}

// play asks the gateway for every segment as it is pushed, one request at
// a time as a live player does (a request may come before the segment:
// the gateway holds it), and the manifest after each of its updates.
func play(ctx context.Context, rep *Report, base string, o Options, pushed <-chan int) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	defer hc.CloseIdleConnections()
	fail := func(format string, args ...any) {
		if len(rep.PlayerErrors) < 20 {
			rep.PlayerErrors = append(rep.PlayerErrors, fmt.Sprintf(format, args...))
		}
	}
	for i := range pushed {
		if ctx.Err() != nil {
			return
		}
		name := segmentName(i)
		body, viaHdr, status, err := get(ctx, hc, base+name)
		switch {
		case err != nil:
			fail("%s: %v", name, err)
			continue
		case status != http.StatusOK:
			fail("%s: status %d", name, status)
			continue
		case sha256.Sum256(body) != sha256.Sum256(segment(o, i)):
			fail("%s: %d bytes differ from the segment (via %s)", name, len(body), viaHdr)
			continue
		}
		rep.Played[viaHdr]++
		rep.PlayedOK++
		if (i+1)%o.ManifestEvery == 0 {
			if _, _, status, err := get(ctx, hc, base+manifestPath); err != nil || status != http.StatusOK {
				fail("manifest.mpd: status %d, %v", status, err)
			}
		}
	}
}

func get(ctx context.Context, hc *http.Client, u string) ([]byte, string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.Header.Get("X-H3m-Via"), resp.StatusCode, err
}

// markGateway marks the gateway's own requests to the origin, so that the
// origin's counts keep them apart from the client's.
type markGateway struct{ rt http.RoundTripper }

const gatewayMark = "X-Soak-Gateway"

func (m markGateway) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(gatewayMark, "1")
	return m.rt.RoundTrip(r)
}

// requestCounter passes the client's unicast requests to the origin's
// files and records them in the ledger by the representation served.
type requestCounter struct {
	next http.Handler
	led  *ledger
}

func (c *requestCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(gatewayMark) != "" {
		c.next.ServeHTTP(w, r)
		return
	}
	c.next.ServeHTTP(w, r)
	c.led.requested(r.URL.Path, w.Header().Get("Etag"), r.Header.Get("Range") != "", r.Header.Get("If-Range"))
}

// ledger joins, for each representation pushed, how the client delivered
// it with the unicast requests the origin served for it (by the
// representation served). A request counts as a refetch when the client
// had already received the representation it asked for by multicast (a
// range request for it, or a whole fetch) or by repair (a whole fetch).
// The manifest is the one path whose representation changes: a request
// for a version of it that got a later one (the repair of an old version,
// answered whole; a whole fetch that met a newer version multicast
// brought too) is a race of the update with the request, counted apart.
// Each representation is forgotten once it has left the live window
// (finalize), so that the run's own records stay bounded.
type ledger struct {
	mu    sync.Mutex
	byKey map[string]*keyRecord // path + "\x00" + ETag

	whole, ranged, refetched, races int
	// manifestWhole counts the whole fetches of the manifest: each may be
	// answered with a later version than the one asked for (a whole fetch
	// names none), which the client then delivers in its place.
	manifestWhole int
	examples      []string
}

type keyRecord struct {
	via           string
	whole, ranges int
}

func (l *ledger) recordLocked(path, etag string) *keyRecord {
	k := path + "\x00" + etag
	r := l.byKey[k]
	if r == nil {
		r = &keyRecord{}
		l.byKey[k] = r
	}
	return r
}

func (l *ledger) delivered(path, etag, via string) {
	l.mu.Lock()
	if r := l.recordLocked(path, etag); r.via == "" {
		r.via = via
	}
	l.mu.Unlock()
}

func (l *ledger) requested(path, etag string, ranged bool, ifRange string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recordLocked(path, etag)
	if !ranged && path == manifestPath {
		l.manifestWhole++
	}
	if (ranged && ifRange != etag) || (!ranged && path == manifestPath && r.via != "") {
		l.races++
		if ranged {
			l.ranged++
		} else {
			l.whole++
		}
		return
	}
	if ranged {
		r.ranges++
		l.ranged++
	} else {
		r.whole++
		l.whole++
	}
	if r.via == client.ViaMulticast || (r.via == client.ViaRepair && !ranged) {
		l.refetched++
		if len(l.examples) < 10 {
			l.examples = append(l.examples, fmt.Sprintf("%s %s (delivered via %s before; ranged %v)", path, etag, r.via, ranged))
		}
	}
}

// finalize forgets the representation of key.
func (l *ledger) finalize(key string) {
	l.mu.Lock()
	delete(l.byKey, key)
	l.mu.Unlock()
}

func (l *ledger) totals() (whole, ranged, refetched, races, manifestWhole int, examples []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.whole, l.ranged, l.refetched, l.races, l.manifestWhole, l.examples
}

func mustPool(caFile string) *x509.CertPool {
	p, err := client.LoadCertPool(caFile)
	if err != nil {
		panic(err) // written by this run a moment ago
	}
	return p
}

// String prints the report's figures.
func (r *Report) String() string {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "soak: %d segments of %d–%d bytes every %v (%d pushes with manifests) in %v, %.1f%% loss\n",
		o.Segments, o.MinSize, o.MaxSize, o.Interval, r.Pushed, r.Duration.Round(time.Millisecond), 100*o.Loss)
	fmt.Fprintf(&b, "  bounds: origin catalogue %s, client catalogue %s, deliveries kept %s, gateway store %d bytes\n",
		bound(o.CatalogEntries, o.CatalogAge), bound(o.ClientCatalog, o.ClientRetention), orDefault(o.MaxDeliveries), o.StoreBytes)
	fmt.Fprintf(&b, "  deliveries: %d multicast, %d repair, %d fallback, %d failed\n",
		r.Via[client.ViaMulticast], r.Via[client.ViaRepair], r.Via[client.ViaFallback], r.Failed)
	ratio := 0.0
	if r.Client.LostBytes > 0 {
		ratio = float64(r.Client.RepairBytes) / float64(r.Client.LostBytes)
	}
	fmt.Fprintf(&b, "  loss: %d of %d packets dropped (%d bytes); lost body bytes %d, repaired %d (ratio %.3f)\n",
		r.DroppedPackets, r.SentPackets+r.DroppedPackets, r.DroppedBytes, r.Client.LostBytes, r.Client.RepairBytes, ratio)
	if o.FEC > 0 || o.BurstEvery > 0 {
		fmt.Fprintf(&b, "  fec %.0f%%: %d lost packets rebuilt, %d not; bursts of %.0f%% loss: %d packets dropped in them, %d breaker trips\n",
			100*o.FEC, r.FECRecovered, r.FECUnrecovered, 100*o.BurstLoss, r.BurstDropped, r.Client.BreakerTrips)
	}
	if r.Client.Orphans > 0 {
		fmt.Fprintf(&b, "  orphan push streams (promise or header section lost): %d, %d identified and repaired, %d fetched whole\n",
			r.Client.Orphans, r.Client.OrphansMatched, r.Client.OrphansFetched)
	}
	fmt.Fprintf(&b, "  unicast: %d whole fetches, %d range requests, %d of them for what multicast had delivered, %d manifest updates that raced a request, %d whole fetches of the manifest; %d description reads; %d obsolete manifest versions not fetched, %d refused as older than the catalogue's current one\n",
		r.WholeFetches, r.RangeRequests, r.RefetchedMulticast, r.ManifestRaces, r.ManifestWholeFetches, r.Client.Polls, r.Client.Superseded, r.Client.Stale)
	fmt.Fprintf(&b, "  player: %d of %d segments served (%s), %d errors; gateway: %d held, %d fetched after the hold, %d passed to the origin\n",
		r.PlayedOK, o.Segments, formatCounts(r.Played), len(r.PlayerErrors), r.Gateway.Held, r.Gateway.HeldTimeout, r.Gateway.Passthrough)
	if len(r.Samples) > 0 {
		w, last := r.Samples[min(r.WarmUp, len(r.Samples)-1)], r.Samples[len(r.Samples)-1]
		maxHeap, maxG := r.MaxAfterWarmUp()
		fmt.Fprintf(&b, "  heap: %.1f MB after warm-up (%d segments), %.1f MB at most after it, %.1f MB at the end; goroutines %d, at most %d, %d at the end\n",
			mb(w.HeapBytes), w.Segments, mb(maxHeap), mb(last.HeapBytes), w.Goroutines, maxG, last.Goroutines)
	}
	for _, e := range r.Refetched {
		fmt.Fprintf(&b, "  refetched: %s\n", e)
	}
	for _, e := range r.PlayerErrors {
		fmt.Fprintf(&b, "  player error: %s\n", e)
	}
	return b.String()
}

// MaxAfterWarmUp returns the largest heap and goroutine count sampled
// after the warm-up, before the session ended.
func (r *Report) MaxAfterWarmUp() (heap uint64, goroutines int) {
	for _, s := range r.Samples[min(r.WarmUp, len(r.Samples)):max(len(r.Samples)-1, 0)] {
		heap, goroutines = max(heap, s.HeapBytes), max(goroutines, s.Goroutines)
	}
	return heap, goroutines
}

func mb(n uint64) float64 { return float64(n) / 1e6 }

func bound(n int, d time.Duration) string {
	return fmt.Sprintf("%s entries/%s", orDefault(n), orDefaultDur(d))
}

func orDefault(n int) string {
	if n == 0 {
		return "default"
	}
	return fmt.Sprint(n)
}

func orDefaultDur(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
