package origin

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/unicast/internal/trace"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go/qlogwriter"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Interface is the network interface multicast is sent on. Required.
	Interface string
	// TTL is the multicast TTL or hop limit (see mcast.Config).
	TTL int
	// Files serves the files PushFile pushes; it is the same FileServer the
	// unicast server serves them with, or one over the same directory.
	Files *FileServer
	// Authority is the :authority of the pushes (the unicast server's).
	Authority string
	// Sessions and Catalog are the registry and catalogue the unicast server
	// publishes; the Publisher records its sessions and pushes there.
	Sessions *Sessions
	Catalog  *Catalog
	// Digests are the digest algorithms of content pushed with Push that
	// does not bring its own (nil: SHA-256).
	Digests []string
	// Signer, if set, signs every push. Its public key is published in
	// Keys when it is an h3m.MessageSigner or h3m.CavageSigner (SignerKey).
	Signer h3m.Signer
	// Keys is the key registry the unicast server publishes; nil publishes
	// no key.
	Keys *Keys
	// ManifestKeys sign the manifests of asymmetric sessions (those whose
	// advertisement lists manifest.ExtensionID): each session is signed by
	// the key whose public key its profile advertises. See also
	// AddManifestKey.
	ManifestKeys []crypto.Signer
	// Asymmetric makes every session Start and Rollover open asymmetric
	// (MakeAsymmetric): signed by ManifestKey, or by a new Ed25519 key for
	// each session when ManifestKey is nil.
	Asymmetric  bool
	ManifestKey crypto.Signer
	// Rollover, if positive, rolls the running session over to a new one
	// this often, from Start until Close: a new session ID and new keys
	// (Rekey), announced RolloverLead ahead (0: a quarter of Rollover, at
	// most 2 s).
	Rollover, RolloverLead time.Duration
	// RolloverJoin is how long a rollover holds new pushes between the
	// old session's in-band end and the successor's first push (0:
	// DefaultRolloverJoin). Receivers that read the description seldom
	// (they back off while nothing needs it) learn of the successor from
	// that end, which has them read it at once: the pause is their time
	// to read it and join, so that they do not miss the successor's
	// first pushes.
	RolloverJoin time.Duration
	// Manifests, if set, records the signed manifests of each asymmetric
	// session for the unicast server, which serves them to receivers that
	// lost the in-band copies.
	Manifests *Manifests
	// Sender tunes the transport senders (Params is set per session).
	Sender mquic.SenderConfig
	// Tracer, if set, is called with the session ID of each session the
	// publisher opens; the qlog trace it returns (nil: none) records the
	// session's transport sender (mquic.SenderConfig.Tracer, replacing
	// Sender.Tracer) from its start until the session ends.
	Tracer func(sessionID []byte) qlogwriter.Trace
	// Listen opens the socket of a session; nil means mcast.ListenSender.
	// Tests wrap the socket here (to inject loss, for instance).
	Listen func(mcast.Config) (net.PacketConn, error)
	// Channel, if set, is the path prefix of everything this publisher
	// pushes (wellknown.ParseChannel: "/720p/"): its sessions are
	// announced with it, so that gateways join them only for players that
	// request paths under it, and a push outside it is refused. Origin.
	// AddChannel opens one publisher per channel.
	Channel string
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// Publisher is the sender side of h3m: it runs one multicast session at a
// time (two during a rollover), pushes resources on it and records each
// push in the catalogue with the ETag and digests the unicast server
// serves. Its methods are safe for concurrent use.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger
	// channel is cfg.Channel parsed (zero without one).
	channel wellknown.Target

	mu      sync.Mutex
	current *pubSession
	closed  bool
	// switching is set while a rollover moves from the current session
	// to its successor (the old one ended, the successor not yet
	// pushing); it is closed when the successor is current. New pushes
	// wait for it.
	switching chan struct{}
	// stopRollover ends the rollover loop; rolloverDone is closed when it
	// has returned (both nil without one).
	stopRollover context.CancelFunc
	rolloverDone chan struct{}

	keyMu        sync.Mutex // not mu: Start holds mu while it opens a session
	manifestKeys []crypto.Signer

	pushes, pushBytes, pushErrors atomic.Uint64 // PublisherStats

	// autoFEC, if set, steers the repair overhead of the sessions
	// (AutoFEC.SetPublisher); their senders start at its overhead.
	autoFEC atomic.Pointer[AutoFEC]
}

// DefaultRolloverJoin is PublisherConfig.RolloverJoin's default: a
// description read and a join, with room for a slow network.
const DefaultRolloverJoin = 500 * time.Millisecond

// maxManifestKeys bounds the manifest keys a Publisher keeps.
const maxManifestKeys = 16

// pubSession is one running session.
type pubSession struct {
	id     string
	ad     altsvc.Advertisement
	conn   net.PacketConn
	snd    *mquic.Sender
	pusher *h3m.Pusher
	trace  qlogwriter.Recorder // nil when not tracing
}

// ErrPublisherClosed is returned after Close.
var ErrPublisherClosed = errors.New("origin: publisher closed")

// NewPublisher returns a publisher; Start begins its first session.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Interface == "" {
		return nil, mcast.ErrNoInterface
	}
	if cfg.Sessions == nil || cfg.Catalog == nil {
		return nil, errors.New("origin: publisher: Sessions and Catalog are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Signer != nil && cfg.Keys != nil {
		if id, pub, alg, ok := SignerKey(cfg.Signer); ok {
			if err := cfg.Keys.Add(id, pub, alg); err != nil {
				return nil, fmt.Errorf("origin: publisher: publishing the signature key: %w", err)
			}
		}
	}
	var channel wellknown.Target
	if cfg.Channel != "" {
		var err error
		if channel, err = wellknown.ParseChannel(cfg.Channel); err != nil {
			return nil, fmt.Errorf("origin: publisher: %w", err)
		}
		cfg.Logger = cfg.Logger.With("channel", cfg.Channel)
	}
	p := &Publisher{cfg: cfg, log: cfg.Logger, channel: channel}
	for _, k := range cfg.ManifestKeys {
		p.AddManifestKey(k)
	}
	return p, nil
}

// AddManifestKey adds a key for the manifests of sessions started later
// (a fresh key for a rollover successor, say). The Publisher keeps the last
// 16 keys added.
func (p *Publisher) AddManifestKey(k crypto.Signer) {
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	p.manifestKeys = append(p.manifestKeys, k)
	if n := len(p.manifestKeys) - maxManifestKeys; n > 0 {
		p.manifestKeys = slices.Delete(p.manifestKeys, 0, n)
	}
}

// manifestConfig returns the manifest signing of the session ad
// describes: nil for a symmetric session; for an asymmetric one, the key
// whose public key the profile advertises, and a hook that records each
// manifest in Manifests.
func (p *Publisher) manifestConfig(ad *altsvc.Advertisement, id string) (*manifest.SignerConfig, error) {
	var prof *manifest.Profile
	for _, e := range ad.Session.Extensions {
		if e.ID == manifest.ExtensionID {
			var err error
			if prof, err = manifest.ParseProfile(e.Value); err != nil {
				return nil, err
			}
		}
	}
	if prof == nil {
		return nil, nil
	}
	sc := manifest.SignerConfig{}
	if p.cfg.Sender.Manifests != nil {
		sc = *p.cfg.Sender.Manifests
	}
	if sc.Key == nil {
		p.keyMu.Lock()
		for _, k := range slices.Backward(p.manifestKeys) {
			if pub, err := manifest.NewPublicKey(k.Public()); err == nil && pub.Equal(prof.Key) {
				sc.Key = k
				break
			}
		}
		p.keyMu.Unlock()
	}
	if sc.Key == nil {
		id := prof.Key.ID()
		return nil, fmt.Errorf("the session is asymmetric, and no manifest key has its public key (key ID %x)", id[:])
	}
	if p.cfg.Manifests != nil {
		p.cfg.Manifests.Open(id, prof.Digest)
		record, user := p.cfg.Manifests.Recorder(id), sc.OnManifest
		sc.OnManifest = func(m []byte) {
			record(m)
			if user != nil {
				user(m)
			}
		}
	}
	return &sc, nil
}

// open starts the transport and pusher of a session and announces it.
func (p *Publisher) open(ad altsvc.Advertisement) (*pubSession, error) {
	if p.cfg.Asymmetric {
		key := p.cfg.ManifestKey
		if key == nil {
			key = NewManifestKey()
		}
		if err := MakeAsymmetric(&ad, key); err != nil {
			return nil, fmt.Errorf("origin: publisher: %w", err)
		}
		p.AddManifestKey(key)
	}
	if err := ad.Validate(); err != nil {
		return nil, fmt.Errorf("origin: publisher: %w", err)
	}
	params := ad.Session.Clone()
	mc := mcast.Config{Group: params.Group, Source: params.Source, Interface: p.cfg.Interface, TTL: p.cfg.TTL, Logger: p.log}
	listen := p.cfg.Listen
	if listen == nil {
		listen = func(c mcast.Config) (net.PacketConn, error) { return mcast.ListenSender(c) }
	}
	sid := wellknown.SessionID(&ad)
	if _, dup := p.cfg.Sessions.Get(sid); dup {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateSession, sid)
	}
	conn, err := listen(mc)
	if err != nil {
		return nil, fmt.Errorf("origin: publisher: %w", err)
	}
	var snd *mquic.Sender
	var rec qlogwriter.Recorder
	fail := func(err error) (*pubSession, error) {
		if snd != nil {
			snd.Close()
		}
		trace.Close(rec)
		conn.Close()
		p.cfg.Manifests.discard(sid)
		return nil, err
	}
	sc := p.cfg.Sender
	sc.Params = params
	if sc.Logger == nil {
		sc.Logger = p.log
	}
	if sc.Manifests, err = p.manifestConfig(&ad, sid); err != nil {
		return fail(fmt.Errorf("origin: publisher: %w", err))
	}
	if p.cfg.Tracer != nil {
		rec = trace.Start(p.cfg.Tracer, params.SessionID)
		sc.Tracer = rec
	}
	if snd, err = mquic.NewSender(conn, sc); err != nil {
		return fail(fmt.Errorf("origin: publisher: %w", err))
	}
	if a := p.autoFEC.Load(); a != nil && advertisedFEC(&ad) != nil {
		if err := snd.SetRepairOverhead(a.overhead()); err != nil {
			// More than this session advertises: it starts with none.
			p.log.Warn("adaptive FEC: the session starts with no repair packets", "session", sid, "err", err)
			if err := snd.SetRepairOverhead(0); err != nil {
				return fail(fmt.Errorf("origin: publisher: %w", err))
			}
		}
	}
	// The sender's writer runs until shut (or fail) closes the sender.
	go func() {
		if err := snd.Run(context.Background()); err != nil {
			p.log.Warn("session sender stopped", "session", sid, "err", err)
		}
	}()
	pusher, err := h3m.NewPusher(snd, h3m.PusherConfig{
		Authority:              p.cfg.Authority,
		Profile:                h3m.ProfileOf(&ad),
		MaxConcurrentResources: params.MaxConcurrentResources,
		Signer:                 p.cfg.Signer,
		Logger:                 p.log,
	})
	if err != nil {
		return fail(fmt.Errorf("origin: publisher: %w", err))
	}
	id, err := p.cfg.Sessions.AnnounceChannel(ad, p.cfg.Channel)
	if err != nil {
		return fail(err)
	}
	return &pubSession{id: id, ad: ad, conn: conn, snd: snd, pusher: pusher, trace: rec}, nil
}

// Start opens the session ad describes, announces it and makes it active.
// It returns the session ID.
func (p *Publisher) Start(ad altsvc.Advertisement) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", ErrPublisherClosed
	}
	if p.current != nil {
		return "", fmt.Errorf("origin: publisher: session %s is running; use Rollover", p.current.id)
	}
	ps, err := p.open(ad)
	if err != nil {
		return "", err
	}
	if err := p.cfg.Sessions.Activate(ps.id); err != nil {
		return "", err
	}
	p.current = ps
	p.log.Info("session started", "session", ps.id, "group", ad.Session.Group.String())
	if p.cfg.Rollover > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		p.stopRollover, p.rolloverDone = cancel, make(chan struct{})
		go p.rolloverLoop(ctx, p.rolloverDone)
	}
	return ps.id, nil
}

// rolloverLoop rolls the running session over every Rollover until ctx
// ends (Close) or a rollover fails.
func (p *Publisher) rolloverLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	lead := p.cfg.RolloverLead
	if lead <= 0 {
		lead = min(p.cfg.Rollover/4, 2*time.Second)
	}
	t := time.NewTicker(p.cfg.Rollover)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		cur := p.current
		p.mu.Unlock()
		if cur == nil {
			return
		}
		next, err := p.Rollover(ctx, Rekey(cur.ad), lead)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("rollover failed; keeping the session", "session", cur.id, "err", err)
			}
			return
		}
		p.log.Info("rolled over to a new session", "session", next)
	}
}

// Rollover replaces the running session by the one next describes (a new
// session ID, and a new key): next is announced as the successor right
// away, becomes active after lead (time for receivers to join it), and
// takes every push from then on; the old session finishes the pushes in
// progress, ends with "connection: close" and is marked ended. The old
// session ends before the successor pushes, RolloverJoin before its first
// push: the in-band end sends receivers to the description, which lists
// the successor, however seldom they read it otherwise; pushes meanwhile
// wait. It returns next's session ID.
func (p *Publisher) Rollover(ctx context.Context, next altsvc.Advertisement, lead time.Duration) (string, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return "", ErrPublisherClosed
	}
	old := p.current
	p.mu.Unlock()
	if old == nil {
		return "", errors.New("origin: publisher: no session to roll over; use Start")
	}
	ns, err := p.open(next)
	if err != nil {
		return "", err
	}
	if err := p.cfg.Sessions.SetSuccessor(old.id, ns.id); err != nil {
		p.shut(ctx, ns)
		return "", err
	}
	p.log.Info("rollover announced", "session", old.id, "successor", ns.id, "lead", lead)
	t := time.NewTimer(lead)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		p.shut(context.WithoutCancel(ctx), ns)
		return "", ctx.Err()
	}
	// The old session ends first: its in-band end has every receiver
	// read the description at once, which lists the successor, however
	// seldom it reads otherwise. Pushes wait meanwhile, and RolloverJoin
	// more for the receivers to join the successor.
	switched := make(chan struct{})
	p.mu.Lock()
	p.switching = switched
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.switching == switched {
			p.switching = nil
		}
		p.mu.Unlock()
		close(switched)
	}()
	shutErr := p.shut(ctx, old)
	if err := p.cfg.Sessions.Activate(ns.id); err != nil {
		p.shut(ctx, ns)
		return "", errors.Join(err, shutErr)
	}
	join := p.cfg.RolloverJoin
	if join <= 0 {
		join = DefaultRolloverJoin
	}
	t.Reset(join)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	p.mu.Lock()
	p.current = ns
	p.mu.Unlock()
	p.log.Info("rollover done", "session", ns.id, "ended", old.id)
	return ns.id, shutErr
}

// shut ends a session: pushes in progress finish, the last push carries
// "connection: close", and the session is marked ended.
func (p *Publisher) shut(ctx context.Context, ps *pubSession) error {
	err := ps.pusher.Close(ctx)
	err = errors.Join(err, ps.snd.Close(), p.cfg.Sessions.End(ps.id), ps.conn.Close())
	trace.Close(ps.trace)
	if p.cfg.Manifests != nil {
		p.cfg.Manifests.End(ps.id) // after the sender's last manifests
	}
	if err != nil {
		return fmt.Errorf("origin: publisher: ending session %s: %w", ps.id, err)
	}
	return nil
}

// rolledFrom reports whether a rollover has ended ps, or is ending it.
func (p *Publisher) rolledFrom(ps *pubSession) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.switching != nil || p.current != ps
}

// Current returns the ID of the running session ("" if none).
func (p *Publisher) Current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return ""
	}
	return p.current.id
}

// Transport returns the transport sender of the running session (for its
// statistics), or nil.
func (p *Publisher) Transport() *mquic.Sender {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return nil
	}
	return p.current.snd
}

// Content is a resource to push that is not a file of Files.
type Content struct {
	// Path is the request path.
	Path string
	// Header holds the response fields. Missing ETag, Content-Digest and
	// Digest are computed from Body (and must then be what the unicast
	// server serves for Path).
	Header http.Header
	// Body holds Size bytes.
	Body io.ReadSeeker
	Size int64
}

// PushFile pushes the file Files serves for urlPath (a decoded path, as in
// URL.Path: "/a b.txt"), with the same representation fields, and records
// it in the catalogue. It is promised, and listed, under its %-escaped
// origin-form target ("/a%20b.txt"). Files that Files does not serve
// (Excluded names) are not pushed either.
func (p *Publisher) PushFile(ctx context.Context, urlPath string) (wellknown.CatalogEntry, error) {
	if p.cfg.Files == nil {
		return wellknown.CatalogEntry{}, errors.New("origin: publisher: no Files to push from")
	}
	target := wellknown.EscapeTarget(urlPath)
	if _, err := wellknown.ParseTarget(target); err != nil {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: receivers would refuse it: %w", urlPath, err)
	}
	f, rep, err := p.cfg.Files.Open(urlPath)
	if err != nil {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: %w", urlPath, err)
	}
	defer f.Close()
	return p.push(ctx, target, rep.Header(), f, rep.Size)
}

// Push pushes c and records it in the catalogue. c.Path must be an
// origin-form target that receivers accept (wellknown.ParseTarget).
func (p *Publisher) Push(ctx context.Context, c *Content) (wellknown.CatalogEntry, error) {
	if _, err := wellknown.ParseTarget(c.Path); err != nil {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: receivers would refuse it: %w", wellknown.Truncate(c.Path), err)
	}
	h := c.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Etag") == "" || h.Get("Content-Digest") == "" || h.Get("Digest") == "" {
		rep, err := Describe(c.Body, c.Path, c.Size, p.cfg.Digests)
		if err != nil {
			return wellknown.CatalogEntry{}, err
		}
		for k, v := range rep.Header() {
			if h.Get(k) == "" && k != "Last-Modified" {
				h[k] = v
			}
		}
	}
	return p.push(ctx, c.Path, h, c.Body, c.Size)
}

func (p *Publisher) push(ctx context.Context, urlPath string, h http.Header, body io.ReadSeeker, size int64) (wellknown.CatalogEntry, error) {
	if p.cfg.Channel != "" {
		// Receivers join this channel's sessions for the paths under it
		// only: anything else pushed here would reach the wrong ones.
		if t, err := wellknown.ParseTarget(urlPath); err != nil || !wellknown.InChannel(p.channel, t.Path) {
			return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: outside the publisher's channel %s", wellknown.Truncate(urlPath), p.cfg.Channel)
		}
	}
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return wellknown.CatalogEntry{}, err
	}
	for {
		p.mu.Lock()
		ps, closed, switching := p.current, p.closed, p.switching
		p.mu.Unlock()
		if closed {
			return wellknown.CatalogEntry{}, ErrPublisherClosed
		}
		if switching != nil {
			// A rollover: the push goes to the successor once receivers
			// had their time to join it.
			select {
			case <-switching:
				continue
			case <-ctx.Done():
				return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: %w", urlPath, ctx.Err())
			}
		}
		if ps == nil {
			return wellknown.CatalogEntry{}, errors.New("origin: publisher: no running session; call Start")
		}
		if _, err := body.Seek(start, io.SeekStart); err != nil {
			return wellknown.CatalogEntry{}, err
		}
		res, err := ps.pusher.Push(ctx, &h3m.Push{
			Request:       h3frame.Request{Path: urlPath, Authority: p.cfg.Authority},
			Header:        h,
			Body:          body,
			ContentLength: size,
		})
		if errors.Is(err, h3m.ErrSessionEnded) && p.rolledFrom(ps) {
			continue // a rollover ended the session under us: push on the successor
		}
		if err != nil {
			p.pushErrors.Add(1)
			return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: %w", urlPath, err)
		}
		p.pushes.Add(1)
		p.pushBytes.Add(uint64(res.BodyBytes))
		e := wellknown.CatalogEntry{
			Path: urlPath, Size: res.BodyBytes, ContentType: h.Get("Content-Type"),
			ETag: h.Get("Etag"), ContentDigest: h.Get("Content-Digest"), Digest: h.Get("Digest"),
			Pushed: time.Now(), Session: ps.id, PushID: res.PushID, StreamID: res.StreamID,
		}
		p.cfg.Catalog.Add(e)
		return e, nil
	}
}

// Close ends the running session (its last push carries "connection:
// close") and marks it ended. The Publisher cannot be used afterwards.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	stop, done := p.stopRollover, p.rolloverDone
	p.mu.Unlock()
	if stop != nil {
		// A rollover in progress ends its new session and returns.
		stop()
		<-done
	}
	p.mu.Lock()
	switching := p.switching
	p.mu.Unlock()
	if switching != nil {
		<-switching // a Rollover called directly: its successor becomes current within RolloverJoin
	}
	p.mu.Lock()
	ps := p.current
	p.current = nil
	p.mu.Unlock()
	if ps == nil {
		return nil
	}
	p.log.Info("session ended", "session", ps.id)
	return p.shut(ctx, ps)
}

// ErrChangedRepresentation is returned by PushRange when the file no longer
// has the entity tag asked for.
var ErrChangedRepresentation = errors.New("origin: the representation changed")

// PushRange pushes bytes [first, last] of the file at urlPath once more, as
// partial content (206 with Content-Range) on the running session: a
// multicast repair of bytes that many receivers lost (MulticastRepair). It
// is refused with ErrChangedRepresentation when etag is not "" and the file
// is no longer that representation. The push is listed in the catalogue
// with its Range, so that a receiver that lost its promise knows its push
// ID is no resource to fetch. Its digests, when the publisher computes
// them, are those of the part.
func (p *Publisher) PushRange(ctx context.Context, urlPath, etag string, first, last int64) (wellknown.CatalogEntry, error) {
	if p.cfg.Files == nil {
		return wellknown.CatalogEntry{}, errors.New("origin: publisher: no Files to push from")
	}
	target := wellknown.EscapeTarget(urlPath)
	f, rep, err := p.cfg.Files.Open(urlPath)
	if err != nil {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: %w", urlPath, err)
	}
	defer f.Close()
	if etag != "" && rep.ETag != etag {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: %w: %s, asked %s", urlPath, ErrChangedRepresentation, rep.ETag, etag)
	}
	if first < 0 || last < first || first >= rep.Size {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s: bytes %d-%d of %d: unsatisfiable", urlPath, first, last, rep.Size)
	}
	last = min(last, rep.Size-1)
	p.mu.Lock()
	ps, closed := p.current, p.closed
	p.mu.Unlock()
	if closed || ps == nil {
		return wellknown.CatalogEntry{}, errors.New("origin: publisher: no running session")
	}
	// The whole representation's digests do not describe the part: the
	// part's own do (receivers that require a digest check them against
	// the bytes pushed).
	h := rep.Header()
	for _, k := range []string{"Content-Digest", "Digest", "Repr-Digest"} {
		h.Del(k)
	}
	n := last - first + 1
	algs := p.cfg.Digests
	if len(algs) == 0 {
		algs = []string{"SHA-256"}
	}
	hs, err := integrity.NewHasher(algs...)
	if err == nil {
		_, err = io.Copy(hs, io.NewSectionReader(f, first, n))
	}
	if err != nil {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s bytes %d-%d: digest: %w", urlPath, first, last, err)
	}
	h.Set("Digest", hs.Digest())
	h.Set("Content-Digest", hs.ContentDigest())
	res, err := ps.pusher.Push(ctx, &h3m.Push{
		Request:       h3frame.Request{Path: target, Authority: p.cfg.Authority},
		Header:        h,
		Body:          io.NewSectionReader(f, first, n),
		ContentLength: n,
		Range:         &h3m.ContentRange{First: first, Complete: rep.Size},
	})
	if err != nil {
		return wellknown.CatalogEntry{}, fmt.Errorf("origin: push %s bytes %d-%d: %w", urlPath, first, last, err)
	}
	e := wellknown.CatalogEntry{
		Path: target, Size: n, ContentType: rep.ContentType, ETag: rep.ETag,
		Pushed: time.Now(), Session: ps.id, PushID: res.PushID, StreamID: res.StreamID,
		Range: h3frame.ContentRange{First: first, Last: last, Complete: rep.Size}.String(),
	}
	p.cfg.Catalog.Add(e)
	return e, nil
}

// Channel returns the path prefix the publisher pushes under
// (PublisherConfig.Channel; "" for any path).
func (p *Publisher) Channel() string { return p.cfg.Channel }
