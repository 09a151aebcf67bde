package soak

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
	"github.com/h3m-project/h3m/unicast/origin"
)

// TestChannelSwitchUnderLoss is `serve --channels` and `gateway
// --channel-idle` in one process, with random multicast loss on every
// session: an origin pushes a live segment of each of three renditions
// (r0, r1, r2, a channel and a session each, beside the main session)
// every interval; a player asks the gateway for the segments of one
// rendition as they come and switches rendition every few segments (r0,
// r1, r2, back to r0, r1), so that the gateway joins each channel on
// demand, under loss, leaves it once unused and joins it again. Every
// segment must reach the player byte-exact (by multicast, repaired, or
// fetched when it was pushed before its channel was joined), no held
// request may wait out its hold (each is answered by what the receiver
// delivers or by its knowing multicast will not bring it), every unused
// channel is left (its group gone from the kernel's memberships), and once
// everything is closed no group stays joined and no goroutine is left.
// Without FEC, and with 5 % FEC on every session (a receiver joining
// mid-stream meets FEC blocks begun before it).
func TestChannelSwitchUnderLoss(t *testing.T) {
	t.Run("no-fec", func(t *testing.T) { testChannelSwitch(t, 0) })
	t.Run("fec", func(t *testing.T) { testChannelSwitch(t, 0.05) })
}

// testChannelSwitch is TestChannelSwitchUnderLoss with sessions of fec
// overhead (0: none).
func testChannelSwitch(t *testing.T, fec float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	baseG := runtime.NumGoroutine()
	o := channelRun{
		Renditions: 3, Segments: 60, PerRendition: 12, Interval: 60 * time.Millisecond,
		MinSize: 20 << 10, MaxSize: 60 << 10, Loss: 0.05, FEC: fec, ChannelIdle: 500 * time.Millisecond, Seed: 7,
		Group: mcasttest.Group(),
	}
	if os.Getenv("SOAK_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rep, err := o.run(ctx, t)
	if rep != nil {
		t.Logf("played %v; receiver: %d joins, %d idle leaves, %d multicast, %d repaired, %d fetched, %d failed; lost %d bytes, repaired %d; dropped %d of %d packets; gateway: %d held (%d answered from the store, %d fetched after the hold or missed), %d passed through",
			rep.played, rep.client.Joins, rep.client.IdleLeaves, rep.client.Multicast, rep.client.Repaired, rep.client.Fallback, rep.client.Failed,
			rep.client.LostBytes, rep.client.RepairBytes, rep.dropped, rep.sent+rep.dropped, rep.gateway.Held, rep.gateway.HeldArrived, rep.gateway.HeldTimeout, rep.gateway.Passthrough)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.playerErrors {
		t.Errorf("player: %s", e)
	}
	if rep.playedOK != o.Segments {
		t.Errorf("the player got %d of %d segments", rep.playedOK, o.Segments)
	}
	st := rep.client
	if st.Failed != 0 || st.BadResponses != 0 {
		t.Errorf("receiver: %d resources given up, %d bad responses", st.Failed, st.BadResponses)
	}
	if rep.dropped == 0 || st.LostBytes == 0 {
		t.Errorf("nothing lost (%d packets dropped, %d body bytes lost): the case did not happen", rep.dropped, st.LostBytes)
	}
	// Every switch joins the new rendition's channel (five phases), and
	// a rendition played again is joined again (the producer waits for it
	// to be left first). What was pushed before a join comes over unicast:
	// at most three segments a join (the producer leads by two, and a
	// promise lost right after the join hides one more); the rest by
	// multicast. A loaded machine may leave a channel between two requests
	// of its player and join it again: each join may cost as much.
	phases := (o.Segments + o.PerRendition - 1) / o.PerRendition
	if n := rep.played[gateway.ViaUnicast]; n > 3*(st.Joins-1) {
		t.Errorf("%d segments over unicast, more than 3 a channel join (%d): the channels were not joined in time (%v)", n, st.Joins-1, rep.played)
	}
	if st.Joins < 1+phases {
		t.Errorf("%d joins, want at least %d (the main session and a channel per phase)", st.Joins, 1+phases)
	}
	if st.IdleLeaves < phases {
		t.Errorf("%d idle leaves, want %d (every channel played, once unused)", st.IdleLeaves, phases)
	}
	if rep.heldTimedOut != 0 {
		t.Errorf("%d held requests waited out their hold (of %d fetched after a hold): the receiver neither delivered them nor knew multicast would not",
			rep.heldTimedOut, rep.gateway.HeldTimeout)
	}
	if len(rep.groupsIdle) != 1 || rep.groupsIdle[0] != o.Group.Addr() {
		t.Errorf("groups joined once every channel went unused: %v, want the main session's %v only", rep.groupsIdle, o.Group.Addr())
	}
	if len(rep.groupsEnd) != 0 {
		t.Errorf("groups still joined once everything closed: %v", rep.groupsEnd)
	}
	// Goroutines end as their parts close (the QUIC connections' after
	// their close): wait for it, bounded by the test's context.
	for runtime.NumGoroutine() > baseG && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseG {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left running, %d before the run:\n%s", n, baseG, buf[:runtime.Stack(buf, true)])
	}
}

// channelRun is a live ladder of renditions, each a channel of its own.
type channelRun struct {
	Renditions, Segments, PerRendition int
	Interval                           time.Duration
	MinSize, MaxSize                   int
	Loss, FEC                          float64
	ChannelIdle                        time.Duration
	Seed                               uint64
	Group                              netip.AddrPort
	Logger                             *slog.Logger
}

type channelReport struct {
	played       map[string]int
	playedOK     int
	playerErrors []string
	heldTimedOut int
	client       client.Stats
	gateway      gateway.Status
	dropped      int
	sent         int
	// groupsIdle are the groups joined on lo once the player stopped and
	// every channel went unused; groupsEnd once everything closed.
	groupsIdle, groupsEnd []netip.Addr
}

// segmentOf returns the bytes of segment i of rendition r.
func (o *channelRun) segmentOf(r, i int) []byte {
	return segment(Options{Seed: o.Seed + uint64(r)<<32, MinSize: o.MinSize, MaxSize: o.MaxSize}, i)
}

func renditionPath(r, i int) string { return fmt.Sprintf("/r%d/seg-%04d.m4s", r, i) }

func (o *channelRun) run(ctx context.Context, t *testing.T) (*channelReport, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	for r := range o.Renditions {
		if err := os.MkdirAll(filepath.Join(www, fmt.Sprintf("r%d", r)), 0o755); err != nil {
			return nil, err
		}
	}
	rep := &channelReport{played: map[string]int{}}
	org, err := newLossyOrigin(dir, www, "lo", o.Loss, o.Seed, log)
	if err != nil {
		return nil, err
	}
	caFile := org.CAFile
	org.Serve()
	defer org.Close(context.WithoutCancel(ctx))
	ad, err := origin.NewSession(origin.SessionConfig{Group: o.Group, Source: netip.MustParseAddr("127.0.0.1"), Interface: "lo",
		Suite: protect.SuiteAES128GCM, PeakFlowRate: 100_000_000, MaxConcurrentResources: 16, IdleTimeout: 3 * time.Second, FEC: o.FEC})
	if err != nil {
		return nil, err
	}
	if _, err := org.Publisher.Start(ad); err != nil {
		return nil, err
	}
	// The channels as serve --channels plans them: /rN/ on the (N+1)th
	// group and port after the main session's.
	group, port := o.Group.Addr(), o.Group.Port()
	var pubs []*origin.Publisher
	for r := range o.Renditions {
		p, err := org.AddChannel(fmt.Sprintf("/r%d/", r))
		if err != nil {
			return nil, err
		}
		group, port = group.Next(), port+1
		cad := origin.Rekey(ad)
		cad.Session.Group = netip.AddrPortFrom(group, port)
		if _, err := p.Start(cad); err != nil {
			return nil, err
		}
		pubs = append(pubs, p)
	}

	store := gateway.NewStore(64 << 20)
	cfg := client.Config{
		URL: org.URL(), CAFile: caFile, Interface: "lo", RecvBuffer: 16 << 20, ChannelIdle: o.ChannelIdle,
		Storage: h3m.MemoryStorage{MaxSize: 16 << 20}, RequireDigest: true, ExitOnEnd: true,
		Logger: log.With("part", "client"),
		OnResource: func(d client.Delivery) {
			if d.Err == nil {
				store.Put(gateway.EntryOf(&d))
			}
		},
	}
	compressTimings(&cfg)
	rc, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	upstream := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: mustPool(caFile)}}
	defer upstream.Close()
	originURL, _ := url.Parse(org.URL())
	// The gateway logs each hold that ended without the segment; count
	// those that waited out their time (rather than learn it was missed).
	timedOut := &countMessage{Handler: log.Handler(), msg: "segment not received in time; fetching it over unicast"}
	gw, err := gateway.New(gateway.Config{Store: store, Upstream: originURL, Transport: upstream, HoldTimeout: 20 * time.Second,
		Logger: slog.New(timedOut).With("part", "gateway"), Receiver: rc,
		OnRequest: func(p string) bool {
			_, missed := rc.Use(p)
			return missed
		}})
	if err != nil {
		return nil, err
	}
	base, closeGateway, err := serveHTTP(gw)
	if err != nil {
		return nil, err
	}
	defer closeGateway()

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clientDone := make(chan error, 1)
	go func() { clientDone <- rc.Run(cctx) }()
	stopClient := func() error {
		cancel()
		return <-clientDone
	}
	// waitFor polls cond until it holds, the client stops or ctx ends.
	waitFor := func(what string, cond func() bool) error {
		for !cond() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			case err := <-clientDone:
				clientDone <- err
				return fmt.Errorf("waiting for %s: the client stopped: %v", what, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		return nil
	}
	if err := waitFor("the main session joined and the channels known", func() bool {
		joined, known := 0, 0
		for _, s := range rc.Sessions() {
			if s.Channel != "" {
				known++
			} else if s.Joined {
				joined++
			}
		}
		return joined == 1 && known == o.Renditions
	}); err != nil {
		stopClient()
		return rep, err
	}

	// The producer pushes segment i of every rendition, then tells the
	// player, which asks for it at once (or before: each request may come
	// before its segment, and the gateway holds it).
	// A live player keeps up with the stream: the producer stays at most
	// lead segments ahead of it, so that a switch meets the new
	// rendition's segments live (not all pushed before its join).
	const lead = 2
	pushed := make(chan int, o.Segments)
	gotSeg := make(chan int, o.Segments)
	playerDone := make(chan struct{})
	go func() {
		defer close(playerDone)
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
		defer hc.CloseIdleConnections()
		for i := range pushed {
			r := (i / o.PerRendition) % o.Renditions
			name := renditionPath(r, i)
			body, via, status, err := get(ctx, hc, base+name)
			switch {
			case err != nil:
				rep.playerErrors = append(rep.playerErrors, fmt.Sprintf("%s: %v", name, err))
			case status != http.StatusOK:
				rep.playerErrors = append(rep.playerErrors, fmt.Sprintf("%s: status %d", name, status))
			case sha256.Sum256(body) != sha256.Sum256(o.segmentOf(r, i)):
				rep.playerErrors = append(rep.playerErrors, fmt.Sprintf("%s: %d bytes that are not the segment (via %s)", name, len(body), via))
			default:
				rep.played[via]++
				rep.playedOK++
			}
			gotSeg <- i
		}
	}()
	next := time.Now()
	var perr error
	played := -1
	for i := 0; i < o.Segments && perr == nil; i++ {
		for played < i-lead && perr == nil {
			select {
			case played = <-gotSeg:
			case <-ctx.Done():
				perr = ctx.Err()
			}
		}
		// A rendition played before is played again only once the gateway
		// has left it (so that each such phase joins afresh): the player
		// comes back to it after a while, as users do.
		if r := (i / o.PerRendition) % o.Renditions; i%o.PerRendition == 0 && i >= o.Renditions*o.PerRendition && perr == nil {
			perr = waitFor(fmt.Sprintf("r%d left before it is played again", r), func() bool {
				s := channelSession(rc, fmt.Sprintf("/r%d/", r))
				return !s.Joined && s.Idle
			})
		}
		if perr != nil {
			break
		}
		// Paced from the last push (no catching up in a burst after a
		// wait: each rendition is played for PerRendition intervals).
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = time.Now().Add(o.Interval)
		for r, p := range pubs {
			name := renditionPath(r, i)
			if perr = writeFile(filepath.Join(www, filepath.FromSlash(name[1:])), o.segmentOf(r, i)); perr != nil {
				break
			}
			if _, perr = p.PushFile(ctx, name); perr != nil {
				break
			}
		}
		pushed <- i
	}
	close(pushed)
	<-playerDone
	if perr != nil {
		stopClient()
		return rep, fmt.Errorf("pushing: %w", perr)
	}
	// Unused now: the gateway leaves every channel, and the kernel's
	// memberships on lo keep the main group alone.
	if err := waitFor("every channel left, unused", func() bool {
		for _, s := range rc.Sessions() {
			if s.Channel != "" && (s.Joined || !s.Idle) {
				return false
			}
		}
		return true
	}); err != nil {
		stopClient()
		return rep, err
	}
	mine := func(gs []netip.Addr) []netip.Addr { // the run's groups among gs
		var out []netip.Addr
		for _, g := range gs {
			if d := g.As4(); d[0] == 232 && g.Compare(o.Group.Addr()) >= 0 && g.Compare(group) <= 0 {
				out = append(out, g)
			}
		}
		return out
	}
	// The socket closes as the receiver ends: wait for the kernel to drop
	// the memberships (bounded by ctx), then record what is left.
	waitFor("the channels' groups left", func() bool {
		gs, err := joinedGroups("lo")
		return err == nil && len(mine(gs)) <= 1
	})
	gs, err := joinedGroups("lo")
	if err != nil {
		stopClient()
		return rep, err
	}
	rep.groupsIdle = mine(gs)
	rep.client = rc.Stats()
	rep.gateway = gw.Status()
	rep.heldTimedOut = int(timedOut.n.Load())

	org.Close(context.WithoutCancel(ctx))
	if err := stopClient(); err != nil && ctx.Err() != nil {
		return rep, err
	}
	closeGateway()
	upstream.Close()
	rep.dropped, _, rep.sent = org.Counts()
	waitFor("every group left", func() bool {
		gs, err := joinedGroups("lo")
		return err == nil && len(mine(gs)) == 0
	})
	if gs, err = joinedGroups("lo"); err != nil {
		return rep, err
	}
	rep.groupsEnd = mine(gs)
	return rep, nil
}

// channelSession returns the client's session of channel.
func channelSession(rc *client.Client, channel string) client.SessionInfo {
	for _, s := range rc.Sessions() {
		if s.Channel == channel {
			return s
		}
	}
	return client.SessionInfo{}
}

// joinedGroups lists the IPv4 groups joined on iface, as the kernel keeps
// them (/proc/net/igmp): what a snooping switch and routers are told.
func joinedGroups(iface string) ([]netip.Addr, error) {
	f, err := os.Open("/proc/net/igmp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var groups []netip.Addr
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasPrefix(line, "\t") { // a device: "Idx Device : Count Querier"
			in = len(fields) >= 2 && fields[1] == iface
			continue
		}
		if !in || len(fields[0]) != 8 {
			continue
		}
		// The group as the kernel prints its network-order word, in the
		// host's byte order (little-endian here: 010000E0 is 224.0.0.1).
		b, err := hex.DecodeString(fields[0])
		if err != nil {
			continue
		}
		groups = append(groups, netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}))
	}
	return groups, sc.Err()
}

// countMessage counts the records of one message, passing every record on.
type countMessage struct {
	slog.Handler
	msg string
	n   atomic.Int64
}

func (c *countMessage) Enabled(context.Context, slog.Level) bool { return true }

func (c *countMessage) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.n.Add(1)
	}
	if c.Handler.Enabled(ctx, r.Level) {
		return c.Handler.Handle(ctx, r)
	}
	return nil
}

func (c *countMessage) WithAttrs(as []slog.Attr) slog.Handler {
	return &countWith{c, c.Handler.WithAttrs(as)}
}

func (c *countMessage) WithGroup(name string) slog.Handler {
	return &countWith{c, c.Handler.WithGroup(name)}
}

// countWith is a countMessage's handler with attributes or a group added.
type countWith struct {
	c    *countMessage
	next slog.Handler
}

func (w *countWith) Enabled(context.Context, slog.Level) bool { return true }

func (w *countWith) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == w.c.msg {
		w.c.n.Add(1)
	}
	if w.next.Enabled(ctx, r.Level) {
		return w.next.Handle(ctx, r)
	}
	return nil
}

func (w *countWith) WithAttrs(as []slog.Attr) slog.Handler {
	return &countWith{w.c, w.next.WithAttrs(as)}
}

func (w *countWith) WithGroup(name string) slog.Handler {
	return &countWith{w.c, w.next.WithGroup(name)}
}
