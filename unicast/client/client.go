package client

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/unicast/internal/caplog"
	"github.com/h3m-project/h3m/unicast/internal/trace"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// How a resource was delivered (Delivery.Via).
const (
	// ViaMulticast: whole and verified from the multicast session.
	ViaMulticast = "multicast"
	// ViaRepair: from the multicast session, with the bytes it lost fetched
	// by range requests.
	ViaRepair = "repair"
	// ViaFallback: fetched whole over unicast (multicast lost its promise or
	// headers, failed a check, or was not arriving at all).
	ViaFallback = "fallback"
)

// Defaults of Config.
const (
	DefaultRepairConcurrency = 4
	DefaultRepairDelay       = 500 * time.Millisecond
	DefaultRepairBackoff     = 200 * time.Millisecond
	DefaultMaxBackoff        = 5 * time.Second
	DefaultRequestTimeout    = 30 * time.Second
	DefaultMergeGap          = 256
	DefaultMaxRanges         = 64
	DefaultMaxBadResponses   = 3
	DefaultFallbackAfter     = 3 * time.Second
	DefaultProbeInterval     = 2 * time.Second
	DefaultCatalogPoll       = time.Second
	DefaultCatalogIdlePoll   = 30 * time.Second
	DefaultLostGrace         = 2 * time.Second
	DefaultEndDrain          = 2 * time.Second
	DefaultOriginGrace       = 5 * time.Second
	DefaultMaxResourceSize   = 256 << 20
	DefaultMaxDeliveries     = 4096
	DefaultMaxJobs           = 256
	DefaultMaxHeld           = 256
	DefaultMaxCatalog        = 4096
	DefaultMaxPushes         = 256
	DefaultCatalogRetention  = 10 * time.Minute
)

// Config configures a Client.
type Config struct {
	// URL is an https URL of the unicast server; its origin is asked for
	// the sessions (Discover) and serves repairs and fallback. It may be
	// empty when Sessions are given: there is then no unicast origin, and a
	// resource multicast did not deliver whole is given up (ErrNoOrigin).
	URL string
	// Sessions are sessions announced elsewhere (an advertisement given
	// to the user: DescribeAltSvc, or a session description:
	// wellknown.Parse), joined from the start besides those the origin
	// announces, and never taken as ended for being absent from its
	// description. Only their sessions are used.
	Sessions *wellknown.Description
	// RootCAs verify the server's certificate; CAFile is read into RootCAs
	// when set (e.g. the certificate LoadOrCreateCertificate generated).
	// Nil for both means the system roots.
	RootCAs *x509.CertPool
	CAFile  string
	// TLSConfig, when set, replaces the TLS configuration built from
	// RootCAs.
	TLSConfig *tls.Config
	// QUICConfig tunes the unicast QUIC connections; nil means short
	// handshake and idle timeouts, so that a server that went away is
	// noticed within seconds, and qlog traces of every connection under
	// $QLOGDIR when that is set (<odcid>_client.sqlog).
	QUICConfig *quic.Config

	// Interface is the network interface to join multicast groups on
	// ("lo" in tests). Required.
	Interface string
	// RecvBuffer is the multicast socket's receive buffer request (0:
	// mcast.DefaultRecvBuffer).
	RecvBuffer int

	// Storage holds bodies; nil means h3m.MemoryStorage with
	// MaxResourceSize. For a resource fetched whole over unicast without
	// a multicast copy, NewBody is called with a nil *h3m.Resource.
	Storage h3m.Storage
	// MaxResourceSize caps a resource, received by multicast (in the
	// default storage; give other storage its own cap, as
	// h3m.DirStorage.MaxSize) or fetched over unicast. 0 means
	// DefaultMaxResourceSize when bodies are held in memory (Storage nil
	// or an h3m.MemoryStorage) and no cap otherwise (bodies on disk, whose
	// size the multicast path does not cap either); negative means no cap.
	MaxResourceSize int64
	// MaxPushes caps the pushes each session's receiver remembers, bodies
	// included, once they are settled (h3m.ReceiverConfig.MaxResources;
	// 0: DefaultMaxPushes). Delivered bodies live on in the deliveries and
	// wherever OnResource put them; this only bounds what the receiver
	// holds on to besides.
	MaxPushes int
	// Verifier checks multicast and repaired resources (see h3m.Verifier).
	Verifier *h3m.Verifier
	// RequireDigest refuses resources fetched or repaired over unicast
	// that carry no digest to check.
	RequireDigest bool
	// RequireSignature fails every multicast resource that carries no
	// signature verifiable with a key the origin publishes at wellknown.KeysPath (it
	// is fetched over unicast instead, where TLS authenticates it). Keys
	// are fetched from the origin over TLS whenever the description lists
	// keys or this is set.
	RequireSignature bool
	// RequireAsymmetric refuses to join multicast sessions that are not
	// asymmetric (spec/transport.md): any receiver of a symmetric session
	// could forge its packets. Such a session counts as not arriving: the
	// client falls back to unicast for its resources.
	RequireAsymmetric bool
	// Manifests chooses how the manifests of asymmetric sessions are
	// fetched over unicast when in-band ones are lost (ManifestsAuto by
	// default).
	Manifests ManifestMode
	// ManifestWait is how long a packet may wait for its in-band manifest
	// before the client asks the server for it (DefaultManifestWait).
	ManifestWait time.Duration
	// ManifestStreamMin is how long a manifest stream that ManifestsAuto
	// opened stays open at least (DefaultManifestStreamMin).
	ManifestStreamMin time.Duration
	// PushTimeout is the receivers' h3m.ReceiverConfig.PushTimeout.
	PushTimeout time.Duration

	// RepairURLs, when set, replace the repair URLs the origin's
	// description lists (wellknown.Description.RepairURLs): the base URLs
	// of HTTP caches, nearest first, through which repairs and fetches go
	// before the origin (repairurls.go). The description and keys still
	// come from the origin only.
	RepairURLs []string
	// RepairBlock is the block size repairs are aligned to when there are
	// caches (DefaultRepairBlock): a repair of a few bytes asks for their
	// whole block, so that receivers ask for the same ranges.
	RepairBlock int64

	// RepairConcurrency caps the unicast requests in flight.
	RepairConcurrency int
	// RepairDelay spreads first attempts: each waits a random time in
	// [0, RepairDelay), so that receivers that lost the same packet do not
	// all ask at once.
	RepairDelay time.Duration
	// RepairBackoff is the first retry delay; it doubles after each
	// failure up to MaxBackoff, with jitter (a random half of it).
	RepairBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds one unicast exchange, body included.
	RequestTimeout time.Duration
	// MergeGap merges missing ranges separated by at most this many
	// received bytes: fetching them again costs less than a multipart part
	// of its own (about 100 bytes of part headers).
	MergeGap int64
	// MaxRanges caps the ranges of one request.
	MaxRanges int
	// MaxBadResponses is how many bad answers (wrong ranges, digest
	// mismatch, refused) a resource gets before it is given up. Network
	// errors and 5xx are retried for as long as the client runs.
	MaxBadResponses int
	// MaxJobs caps the unicast jobs (repairs and fetches) under way or
	// waiting at once (DefaultMaxJobs). A push that would start one more
	// is not acted on (Stats.JobsDropped, and a log line); catalogue
	// entries wait for a free place instead.
	MaxJobs int
	// MaxHeld caps the pushes held until a catalogue read decides them
	// (DefaultMaxHeld): those that do not match the catalogue's current
	// entry for their path, or whose path it does not list yet. Beyond it
	// they are dropped (Stats.HeldDropped, and a log line).
	MaxHeld int

	// ChannelIdle, when positive, joins the sessions whose description
	// names a channel (a path prefix: one rendition of a DASH ladder) only
	// while they are used: Use joins the session of a path's channel, and
	// a channel unused for ChannelIdle is left (ondemand.go). What such a
	// session pushed while it was not joined is not fetched. Sessions
	// without a channel are joined at once; 0 joins every session at once.
	ChannelIdle time.Duration

	// FallbackAfter switches to unicast when an active session delivers no
	// packet for this long (or cannot be joined).
	FallbackAfter time.Duration
	// Breaker is the receiver circuit breaker (breaker.go): it leaves a
	// session whose rate or loss says the network cannot carry it, and
	// joins again after a back-off. Zero fields take the defaults; on
	// unless Breaker.Disabled.
	Breaker BreakerConfig
	// ProbeInterval is how often a session that could not be joined, or
	// whose receiver stopped, is joined again.
	ProbeInterval time.Duration
	// CatalogPoll is how often the well-known description is read while
	// the client needs it: a session not active or not joined, promises
	// lost, orphans or pushes waiting for the catalogue's word, fallback,
	// no catalogue yet. CatalogIdlePoll is what the interval grows to,
	// doubling at each read, while it needs nothing (multicast delivers
	// everything): the origin then serves a receiver a few reads a minute,
	// each a 304 when nothing changed. Events that need the catalogue
	// (a gap, a held push, the end of a session, an unknown Alt-Svc) read
	// it at once. A CatalogIdlePoll not above CatalogPoll polls at a fixed
	// rate.
	CatalogPoll, CatalogIdlePoll time.Duration
	// LostGrace is how long the receiver of a session must have been quiet
	// (no push in progress, no event) before a catalogue entry of it that
	// multicast has not delivered counts as lost (its promise was) and is
	// fetched; an entry whose session promised a later push is fetched at
	// once.
	LostGrace time.Duration
	// EndDrain is how long a session the description marks ended is still
	// received, for its last packets.
	EndDrain time.Duration
	// CatchUp also fetches the resources the catalogue lists from before
	// the client started; by default only later pushes are expected.
	CatchUp bool
	// ExitOnEnd makes Run return once every session it knew has ended
	// and every resource is settled: at once after the in-band end of the
	// last session when nothing is missing, after the description read
	// then (which may name pushes whose promises were lost) and the
	// repairs and fetches it needs. When the origin has not answered for
	// OriginGrace since the end, what is still missing is given up
	// (ErrOriginGone) and Run returns.
	ExitOnEnd bool
	// OriginGrace: see ExitOnEnd (DefaultOriginGrace).
	OriginGrace time.Duration
	// MaxDeliveries caps the deliveries Resources remembers (with their
	// bodies). What the client received is remembered apart from them, for
	// as long as the catalogue can list it (MaxCatalog, CatalogRetention),
	// so a delivery no longer kept is never fetched again.
	MaxDeliveries int
	// MaxCatalog caps the catalogue entries the client keeps from
	// incremental reads, and CatalogRetention drops those pushed longer
	// before the newest (DefaultMaxCatalog, DefaultCatalogRetention: at
	// least the origin's own bounds, origin.Catalog).
	MaxCatalog       int
	CatalogRetention time.Duration

	// OnResource is called once per resource delivered or given up. It may
	// be called from several goroutines at once.
	OnResource func(Delivery)
	// Tracer, if set, is called with the session ID each time the client
	// joins a multicast session; the qlog trace it returns (nil: none)
	// records that receiver's packets (mquic.ReceiverConfig.Tracer) until
	// it stops. A session joined again after its receiver stopped gets a
	// new call.
	Tracer func(sessionID []byte) qlogwriter.Trace
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// LoadCertPool returns a pool holding the PEM certificates of file (for
// example the certificate origin.LoadOrCreateCertificate generated), for
// Config.RootCAs.
func LoadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("client: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("client: CA file %s: no PEM certificate", file)
	}
	return pool, nil
}

// Delivery is how one resource reached the client.
type Delivery struct {
	Path string
	ETag string
	// Via is ViaMulticast, ViaRepair or ViaFallback ("" when Err is set).
	Via string
	// Session and PushID name the push that carried it (Session "" when it
	// came from unicast only).
	Session string
	PushID  uint64
	Status  int
	Size    int64
	// LostBytes is what multicast lost of it; RepairBytes what range
	// requests fetched (merged gaps included); RepairWireBytes the body
	// bytes of those responses (multipart framing included).
	LostBytes, RepairBytes, RepairWireBytes int64
	// RepairRanges are the representation ranges requested (missing
	// ranges with small gaps merged).
	RepairRanges []ranges.Range
	// FetchBytes is what whole unicast fetches brought.
	FetchBytes int64
	// Requests counts the unicast requests made for it.
	Requests int
	Header   http.Header
	Body     h3m.Body
	// Problems are the errors that made earlier attempts fail.
	Problems []error
	// Err is set when the resource was given up; nothing is delivered then.
	Err  error
	Time time.Time
	// Promised is when its push was promised on multicast (zero when it
	// came from the catalogue alone, or its promise was lost).
	Promised time.Time
}

// Stats are a Client's counters.
type Stats struct {
	Multicast, Repaired, Fallback, Failed int
	// Duplicates counts copies dropped because the resource (path and
	// ETag) was already delivered, e.g. by both sessions of a rollover.
	// Superseded counts representations not fetched because a later push
	// of their path came first (a live manifest updated meanwhile).
	Duplicates, Superseded                              int
	LostBytes, RepairBytes, RepairWireBytes, FetchBytes int64
	// Requests are unicast requests; RequestErrors those that failed at
	// the network or with a transient status; BadResponses those answered
	// wrongly (ranges, digests, refusals).
	Requests, RequestErrors, BadResponses int
	// Polls counts the descriptions read (the first included);
	// DescriptionErrors the reads that failed.
	Polls, DescriptionErrors  int
	Joins, JoinErrors, Leaves int
	// Refused counts joins refused because the session is symmetric and
	// RequireAsymmetric is set. Replaced counts sessions left because the
	// description gave new parameters (keys) under their ID: a sender
	// restarted with the same session ID, joined again as a new session.
	Refused, Replaced int
	// ManifestRequests are the requests for manifests (streams included),
	// ManifestStreams the long-lived streams opened (ManifestStreamsOpen of
	// them open now, ManifestStreamsClosed closed because in-band
	// manifests arrived again), ManifestsFetched and ManifestBytes the
	// manifests they brought.
	ManifestRequests, ManifestStreams          int
	ManifestStreamsOpen, ManifestStreamsClosed int
	ManifestsFetched, ManifestBytes            int64
	// RejectedPaths counts pushes whose promised path is not an
	// origin-form target (wellknown.ParseTarget), and catalogue entries
	// skipped for the same reason: nothing of them is fetched or delivered.
	// OffOrigin counts requests refused because their URL was not on the
	// origin (ErrOffOrigin); it stays 0 unless something is wrong.
	RejectedPaths, OffOrigin int
	// Stale counts pushes refused because the catalogue lists another
	// representation of their path as current (a replayed older version);
	// Unlisted the unicast work refused for paths the catalogue does not
	// list (forged promises); Merged the pushes whose unicast work joined
	// a fetch of the same path under way, or whose current version was
	// already received.
	Stale, Unlisted, Merged int
	// PhantomPromises counts the push IDs skipped in a session (as if
	// their promises were lost) that the catalogue did not name although
	// it lists the session's pushes since before them: never pushed (a
	// forger's promises of high push IDs), so not reported missing.
	PhantomPromises int
	// JobsDropped and HeldDropped count the pushes not acted on because
	// MaxJobs or MaxHeld was reached.
	JobsDropped, HeldDropped int
	// CacheRequests are the unicast requests sent to caches (repair URLs)
	// and CacheBytes the body bytes they answered; CacheErrors the
	// requests that failed at the network or with a server error (the
	// cache is then skipped for a while); CacheRejected the answers that
	// failed the session's checks (the cache is skipped for that resource,
	// which is fetched from the next URL).
	CacheRequests, CacheErrors, CacheRejected int
	CacheBytes                                int64
	// CatalogEntries counts the signed catalogue entries taken from
	// caches (signedentries.go): words of the catalogue that cost the
	// origin no read.
	CatalogEntries int
	// FallbackActive says whether the client is in fallback now;
	// FallbackEntered counts the switches to it.
	FallbackActive  bool
	FallbackEntered int
	// Orphans counts push streams that arrived without their promise or
	// header section (a lost packet); OrphansMatched those identified from
	// the catalogue, whose missing bytes are repaired, OrphansFetched
	// those fetched whole after all (their bytes did not fit the entry
	// that named them, or the path was being fetched already).
	Orphans, OrphansMatched, OrphansFetched int
	// DescriptionNotModified counts description reads answered 304 (the
	// description had not changed since the client's copy).
	DescriptionNotModified int
	// MulticastRepairs counts the multicast repairs (partial pushes the
	// origin sent once more for bytes many receivers lost) that filled
	// ranges a repair job was waiting to ask for, MulticastRepairBytes
	// the bytes they filled: not asked over unicast.
	MulticastRepairs     int
	MulticastRepairBytes int64
	// BreakerTrips counts the circuit breaker's trips (sessions left
	// because of their rate or loss); BreakerOpen is how many sessions are
	// left that way now, waiting for their back-off to end.
	BreakerTrips, BreakerOpen int
	// IdleLeaves counts the sessions left because their channel went
	// unused for ChannelIdle (also counted in Leaves).
	IdleLeaves int
}

// Client receives the multicast sessions an h3m server announces and makes
// sure every resource arrives, by multicast, repair or fallback.
type Client struct {
	cfg     Config
	log     *slog.Logger
	origin  *url.URL
	tr      *http3.Transport
	tier    *repairTier
	hc      *http.Client
	storage h3m.Storage
	sem     chan struct{}
	pollNow chan struct{}
	// gapsDue: lost promises have waited LostGrace (lostPromises); the
	// poll loop asks for their signed entries, or reads.
	gapsDue chan struct{}
	keys    *keyResolver
	// pollIdle: the poll interval has grown past CatalogPoll; pollLive:
	// it was stretched because the sessions are live in-band.
	pollIdle, pollLive atomic.Bool
	// liveStretched is set while the interval is CatalogIdlePoll because
	// the sessions were live in-band: once they are not, reads back off
	// again from CatalogPoll (a session started after the end, by an
	// origin that restarted, is found in seconds, not 30 s).
	liveStretched atomic.Bool

	// wake makes Run look at once whether everything has ended and is
	// settled (ExitOnEnd), rather than at its next tick.
	wake chan struct{}

	// mu guards the client-wide state below; each session's own state is
	// under its csession.mu, taken after this one.
	mu       sync.Mutex
	started  bool
	sessions map[string]*csession
	// knownSessions counts the sessions ever joined (ExitOnEnd needs one).
	knownSessions int
	expectFrom    map[string]uint64 // per session: first push ID expected (baseline)
	baseline      bool
	catalog       []wellknown.CatalogEntry
	haveCat       bool
	descAt        time.Time       // when the last description read began
	endAt         time.Time       // last time a session ended for us
	lastContact   time.Time       // when the origin last answered
	altSvcOnly    bool            // the origin serves no description: no catalogue
	static        map[string]bool // the IDs of Config.Sessions
	// channelUse is when each channel was last used (Use); demand wakes
	// Run to join what Use asked for.
	channelUse map[string]time.Time
	demand     chan struct{}
	// abandoned is set when the client finishes without its origin
	// (ErrOriginGone): jobs that end unsettled are then given up.
	abandoned error
	// lastDesc is the last description read, lastETag its entity tag, for
	// the query lastQuery names (readQueryLocked): the next read of the
	// same query is conditional. catalogNext is the origin's number for
	// its next catalogue entry, as of the last read (0: an origin that
	// does not number them).
	lastDesc    *wellknown.Description
	lastETag    string
	lastQuery   string
	catalogNext uint64
	// entriesDueSince is set (oweEntriesLocked) when the next read must
	// list the entries from the catalogNext kept from before, and only a
	// read of the entries that began at or after it pays that debt: when a
	// read of the sessions alone (no entries) named a session the client did
	// not know (that session's entries, pushed before the client knew of
	// it, came in no read), and when unicast work for a push was refused
	// because no read listed its path (settle: an origin may list it late,
	// after a read already on its way). Zero: nothing owed.
	entriesDueSince time.Time
	// catalogKey verifies the signed catalogue entries (the description's
	// CatalogKey; nil: the origin signs none); entryFetching are the
	// entries being fetched (signedEntryKey), fromEntries the catalogue
	// entries (entryKey) that came alone, not from a read: the next
	// incremental read must not start after them (describeSince).
	catalogKey    ed25519.PublicKey
	entryFetching map[string]bool
	fromEntries   map[string]bool
	results       []*Delivery
	jobs          map[string]*job
	busy          map[string]int // path -> multicast pushes in progress + jobs
	seen          map[string]time.Time
	// settled holds the keys (deliveryKey) of the resources delivered or
	// given up, with when: what the catalogue is checked against and
	// duplicates are dropped by. A key is kept while the client's catalogue
	// lists it, and otherwise for CatalogRetention, the newest MaxCatalog
	// of those (pruneSettledLocked): bounded by the catalogue's bounds, not
	// by the deliveries kept for Resources.
	settled  map[string]time.Time
	fallback bool
	stats    Stats
	// badEntryLogged: a catalogue entry with a bad path was logged.
	badEntryLogged bool
	// current indexes the catalogue's current entry of each path;
	// held are the pushes waiting for a catalogue read (gate.go);
	// fetching the whole fetches under way, by path.
	current  map[string]int
	held     []*outcome
	fetching map[string]*job
	// The logs of the caps and checks that bite.
	staleLog, unlistedLog, heldLog, jobsLog caplog.Limit
	wg                                      sync.WaitGroup
}

// New checks cfg and returns a client; Run starts it.
func New(cfg Config) (*Client, error) {
	var origin *url.URL
	var err error
	switch {
	case cfg.URL != "":
		if origin, err = originURL(cfg.URL); err != nil {
			return nil, err
		}
	case cfg.Sessions == nil || len(cfg.Sessions.Sessions) == 0:
		return nil, errors.New("client: a URL or Sessions are required")
	}
	if cfg.Interface == "" {
		return nil, errors.New("client: client: Interface is required to join multicast groups")
	}
	setDefault(&cfg.RepairConcurrency, DefaultRepairConcurrency)
	setDefault(&cfg.RepairDelay, DefaultRepairDelay)
	setDefault(&cfg.RepairBackoff, DefaultRepairBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.MergeGap, DefaultMergeGap)
	setDefault(&cfg.RepairBlock, DefaultRepairBlock)
	setDefault(&cfg.MaxRanges, DefaultMaxRanges)
	setDefault(&cfg.MaxBadResponses, DefaultMaxBadResponses)
	setDefault(&cfg.FallbackAfter, DefaultFallbackAfter)
	setDefault(&cfg.ProbeInterval, DefaultProbeInterval)
	setDefault(&cfg.CatalogPoll, DefaultCatalogPoll)
	setDefault(&cfg.CatalogIdlePoll, DefaultCatalogIdlePoll)
	setDefault(&cfg.LostGrace, DefaultLostGrace)
	setDefault(&cfg.EndDrain, DefaultEndDrain)
	setDefault(&cfg.OriginGrace, DefaultOriginGrace)
	cfg.MaxResourceSize = resourceCap(cfg.MaxResourceSize, cfg.Storage)
	setDefault(&cfg.MaxDeliveries, DefaultMaxDeliveries)
	setDefault(&cfg.MaxJobs, DefaultMaxJobs)
	setDefault(&cfg.MaxHeld, DefaultMaxHeld)
	setDefault(&cfg.MaxCatalog, DefaultMaxCatalog)
	setDefault(&cfg.MaxPushes, DefaultMaxPushes)
	setDefault(&cfg.CatalogRetention, DefaultCatalogRetention)
	cfg.Breaker = cfg.Breaker.withDefaults()
	if err := cfg.Breaker.check(); err != nil {
		return nil, err
	}
	setDefault(&cfg.ManifestWait, DefaultManifestWait)
	setDefault(&cfg.ManifestStreamMin, DefaultManifestStreamMin)
	if cfg.Manifests < ManifestsAuto || cfg.Manifests > ManifestsOff {
		return nil, fmt.Errorf("client: client: unknown manifest mode %d", cfg.Manifests)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tlsConf := cfg.TLSConfig
	if tlsConf == nil {
		roots := cfg.RootCAs
		if cfg.CAFile != "" {
			if roots, err = LoadCertPool(cfg.CAFile); err != nil {
				return nil, err
			}
		}
		tlsConf = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	}
	qc := cfg.QUICConfig
	if qc == nil {
		qc = &quic.Config{HandshakeIdleTimeout: 3 * time.Second, MaxIdleTimeout: 10 * time.Second, KeepAlivePeriod: 3 * time.Second,
			Tracer: trace.DirTracer()}
	}
	tr := &http3.Transport{TLSClientConfig: tlsConf, QUICConfig: qc, Logger: cfg.Logger}
	tier, err := newRepairTier(&cfg, tlsConf, qc)
	if err != nil {
		return nil, err
	}
	storage := cfg.Storage
	if storage == nil {
		storage = h3m.MemoryStorage{MaxSize: cfg.MaxResourceSize}
	}
	c := &Client{
		cfg: cfg, log: cfg.Logger, origin: origin, tr: tr, tier: tier,
		hc:            &http.Client{Transport: &originOnly{origin: origin, next: tr, tier: tier}},
		storage:       storage,
		sem:           make(chan struct{}, cfg.RepairConcurrency),
		pollNow:       make(chan struct{}, 1),
		gapsDue:       make(chan struct{}, 1),
		wake:          make(chan struct{}, 1),
		demand:        make(chan struct{}, 1),
		static:        make(map[string]bool),
		sessions:      make(map[string]*csession),
		expectFrom:    make(map[string]uint64),
		jobs:          make(map[string]*job),
		busy:          make(map[string]int),
		entryFetching: make(map[string]bool),
		fromEntries:   make(map[string]bool),
		seen:          make(map[string]time.Time),
		settled:       make(map[string]time.Time),
		current:       make(map[string]int),
		fetching:      make(map[string]*job),
	}
	c.hc.Transport.(*originOnly).refused = func(u *url.URL) {
		c.count(func(st *Stats) { st.OffOrigin++ })
		c.log.Error("refused a request off the origin", "url", u.Redacted(), "origin", originName(origin))
	}
	c.keys = newKeyResolver(c)
	if cfg.Sessions != nil {
		for i := range cfg.Sessions.Sessions {
			c.static[cfg.Sessions.Sessions[i].ID] = true
		}
	}
	return c, nil
}

// resourceCap is the cap of Config.MaxResourceSize configured as max for
// storage: -1 for none.
func resourceCap(max int64, storage h3m.Storage) int64 {
	switch {
	case max > 0:
		return max
	case max < 0:
		return -1
	}
	switch storage.(type) {
	case nil, h3m.MemoryStorage, *h3m.MemoryStorage:
		return DefaultMaxResourceSize
	}
	return -1
}

// verifier returns the checks for a session's multicast resources: the
// configured Verifier, requiring signatures with RequireSignature, and
// resolving keys at the origin when signatures are required or the origin
// lists keys (and the Verifier brings no resolver of its own).
func (c *Client) verifier(ctx context.Context) *h3m.Verifier {
	v := c.cfg.Verifier
	keys := len(c.keys.listedIDs()) > 0
	if !c.cfg.RequireSignature && !keys {
		return v
	}
	nv := h3m.Verifier{}
	if v != nil {
		nv = *v
	}
	nv.RequireSignature = nv.RequireSignature || c.cfg.RequireSignature
	switch {
	case nv.Keys != nil:
	case c.origin == nil:
		nv.Keys = func(id string) (crypto.PublicKey, error) {
			return nil, fmt.Errorf("%w: %w: no origin to fetch key %q from", ErrKeyUnavailable, ErrNoOrigin, wellknown.Truncate(id))
		}
	default:
		nv.Keys = func(id string) (crypto.PublicKey, error) { return c.keys.resolve(ctx, id) }
	}
	return &nv
}

func setDefault[T int | int64 | float64 | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// Run discovers the sessions and receives until ctx ends (or, with
// ExitOnEnd, until everything has ended and is settled), then leaves every
// session, waits for the requests in progress and returns nil. Discovery
// failures are retried with back-off and logged, but for a certificate the
// client does not trust, which fails at once (ErrUntrustedServer). A
// Client runs once.
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		cancel()
		return errors.New("client: client: Run called twice")
	}
	c.started = true
	c.mu.Unlock()
	defer func() {
		cancel()
		c.wg.Wait()
		c.dropHeld()
		c.dropOrphans()
		c.tr.Close()
		c.tier.close()
	}()

	if c.cfg.Sessions != nil {
		c.apply(ctx, c.cfg.Sessions, false, time.Time{})
	}
	if c.origin != nil {
		backoff := c.cfg.RepairBackoff
		for {
			at := time.Now()
			d, err := c.describe(ctx)
			if err == nil {
				c.apply(ctx, d, true, at)
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrUntrustedServer) {
				return err
			}
			c.mu.Lock()
			c.stats.DescriptionErrors++
			c.mu.Unlock()
			c.log.Warn("h3m discovery failed; retrying", "url", c.cfg.URL, "err", err)
			if !sleep(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, c.cfg.MaxBackoff)
		}
		c.wg.Add(1)
		go c.pollLoop(ctx)
	}

	tick := time.NewTicker(max(min(c.cfg.FallbackAfter/4, 250*time.Millisecond), 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			c.monitor(ctx, time.Now())
		case <-c.demand:
			c.joinDemanded(ctx)
		case <-c.wake:
		}
		if c.cfg.ExitOnEnd && c.finish(time.Now()) {
			return nil
		}
	}
}

// notify wakes Run to look whether everything is settled.
func (c *Client) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// contact records that the origin answered.
func (c *Client) contact() {
	c.mu.Lock()
	c.lastContact = time.Now()
	c.mu.Unlock()
}

// describe reads the description with the client's own connection.
func (c *Client) describe(ctx context.Context) (*wellknown.Description, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	return c.checkDiscovery(discover(ctx, c.hc, c.cfg.URL, time.Time{}))
}

// checkDiscovery records that the origin answered, and marks a
// certificate the client does not trust.
func (c *Client) checkDiscovery(d *wellknown.Description, err error) (*wellknown.Description, error) {
	if err == nil {
		c.contact()
		if !d.FromAltSvc {
			c.tier.listed(d.RepairURLs)
		}
		return d, nil
	}
	if untrusted(err) {
		return nil, fmt.Errorf("%w: %s: %w", ErrUntrustedServer, c.cfg.URL, err)
	}
	return nil, err
}

// describeSince reads the description with only the catalogue entries
// added since the last read (readQueryLocked): from the origin's number
// for its next entry when it numbers them; else those pushed at or after
// the newest a read brought. The origin lists its entries in push order
// with push times that never go back (spec unicast.md), so nothing added
// since the last read is older; the newest entry comes back and merges
// away. The times compared are the origin's own, so the clocks of client
// and origin need not agree, and a read costs what was pushed since, not
// what was pushed in some interval. With no entry yet, the read is whole.
// A read of the same query as the last one is conditional on its entity
// tag: a 304 gives that description again.
func (c *Client) describeSince(ctx context.Context) (*wellknown.Description, error) {
	c.mu.Lock()
	q := c.readQueryLocked()
	key := q.Encode()
	etag, last := "", c.lastDesc
	if last != nil && c.lastQuery == key {
		etag = c.lastETag
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	d, tag, err := discoverIf(ctx, c.hc, c.cfg.URL, q, etag)
	if errors.Is(err, errNotModified) {
		c.contact()
		c.count(func(st *Stats) { st.DescriptionNotModified++ })
		nd := *last
		nd.Resources = slices.Clone(last.Resources) // the client's catalogue may share the copy it keeps
		return &nd, nil
	}
	d, err = c.checkDiscovery(d, err)
	if err == nil {
		kept := *d
		kept.Resources = slices.Clone(d.Resources)
		c.mu.Lock()
		c.lastDesc, c.lastETag, c.lastQuery = &kept, tag, key
		c.mu.Unlock()
	}
	return d, err
}

// endReadWait bounds how long the read after a session's end waits for
// the signed entries on their way (entriesBeforeEndRead): well within
// OriginGrace, which that read resets.
const endReadWait = time.Second

// entriesBeforeEndRead reports whether the read after a session's end
// should wait for the signed entries on their way (of the pushes held, of
// orphans, of lost promises whose streams came): once they are in, the
// client may miss nothing and read the sessions alone
// (missesNothingLocked), where a read now would list every entry pushed
// since its last. It waits endReadWait at most, and not when a push held
// has no entry on its way (only a read can judge it).
func (c *Client) entriesBeforeEndRead(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endAt.IsZero() || now.Sub(c.endAt) >= endReadWait || len(c.entryFetching) == 0 || c.heldForReadLocked() || !c.descAt.Before(c.endAt) {
		return false
	}
	return c.everySessionLocked(func(cs *csession) bool { return cs.sawEnd })
}

// heldForReadLocked reports whether a push is held for the catalogue's
// word with no signed entry on its way for it: only a read can say.
func (c *Client) heldForReadLocked() bool {
	for _, o := range c.held {
		if !c.entryFetching[signedEntryKey(o.cs.id, o.res.PushID)] {
			return true
		}
	}
	return false
}

// missesNothingLocked reports whether every session the client knows
// ended in-band with no push ID missing before its end (a push lost whole
// leaves a gap below the ending push's ID), no orphan to identify, and
// nothing held or listed that is still to be judged.
func (c *Client) missesNothingLocked() bool {
	// Nothing held at all: a read releases what is held for a judgement,
	// and one that lists no entry would refuse a push whose signed entry
	// is still on its way.
	if len(c.sessions) == 0 || len(c.held) > 0 || c.pendingEntryLocked() {
		return false
	}
	if c.entriesDueLocked() {
		return false
	}
	return c.everySessionLocked(func(cs *csession) bool {
		// Pushes before the first one the session brought (a join after
		// its start) are accounted for only once a read of the entries
		// began after it: such a read lists them, or one before did.
		lead := cs.promised && cs.firstPush > c.expectFrom[cs.id] && !cs.leadRead
		return cs.sawEnd && !lead && len(cs.gaps) == 0 && len(cs.orphans) == 0
	})
}

// sessionsOnlyQuery is the query of a read of the sessions alone
// (readQueryLocked), as lastQuery records it.
var sessionsOnlyQuery = url.Values{wellknown.ResourcesFromParam: {wellknown.ResourcesFromNext}}.Encode()

// readQueryLocked returns the query of the next read: the catalogue
// entries from the origin's number for the next one as of the last read,
// when it numbers them (nothing the client has comes back, and the document
// stays the same, a 304, while nothing is added); else those pushed at or
// after the newest entry a read brought (describeSince); none for a whole
// read.
func (c *Client) readQueryLocked() url.Values {
	if c.catalogNext > 0 {
		if c.missesNothingLocked() {
			// Every push ID up to each session's end is accounted for:
			// no entry can name anything missing, and the read is for
			// the sessions (a successor) alone.
			return url.Values{wellknown.ResourcesFromParam: {wellknown.ResourcesFromNext}}
		}
		return url.Values{wellknown.ResourcesFromParam: {strconv.FormatUint(c.catalogNext, 10)}}
	}
	var newest time.Time
	for i := range c.catalog {
		if p := c.catalog[i].Pushed; p.After(newest) && !c.fromEntries[entryKey(&c.catalog[i])] {
			newest = p
		}
	}
	if newest.IsZero() {
		return url.Values{}
	}
	return url.Values{wellknown.ResourcesAfterParam: {newest.UTC().Format(time.RFC3339Nano)}}
}

// pollSoon has the description read now when the poll interval has grown
// past CatalogPoll (CatalogIdlePoll); otherwise the next poll comes soon
// enough, and a flood of events that each need the catalogue costs no
// more reads than CatalogPoll allows.
func (c *Client) pollSoon() {
	if !c.pollIdle.Load() {
		return
	}
	select {
	case c.pollNow <- struct{}{}:
	default:
	}
}

// pollInterval is the wait before the next periodic read of the
// description, given the last one (CatalogPoll, CatalogIdlePoll).
func (c *Client) pollInterval(last time.Duration) time.Duration {
	if c.catalogNeeded() || c.cfg.CatalogIdlePoll <= c.cfg.CatalogPoll {
		c.pollLive.Store(false)
		return c.cfg.CatalogPoll
	}
	if c.liveInBand(time.Now()) {
		// The sessions announce in-band what a read would tell: each
		// push by its promise (whose catalogue word, when needed, is a
		// read or a signed entry of its own), a lost promise by the next
		// push ID, the end by the last push. Until they go quiet
		// (monitor), reads only look for what they do not carry: a
		// session announced meanwhile.
		c.pollLive.Store(true)
		c.liveStretched.Store(true)
		return c.cfg.CatalogIdlePoll
	}
	c.pollLive.Store(false)
	if c.liveStretched.Swap(false) {
		return c.cfg.CatalogPoll
	}
	return min(max(2*last, c.cfg.CatalogPoll), c.cfg.CatalogIdlePoll)
}

// lastRead returns when the last description read began.
func (c *Client) lastRead() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.descAt
}

// liveQuiet is how long a session must bring no packet to be quiet: a
// sender sends a keep-alive at least every mquic.DefaultKeepAlive, so three
// of them in a row lost (or LostGrace, if longer).
const liveQuiet = 3 * mquic.DefaultKeepAlive

// liveInBand reports whether every session the client has not left is
// active, joined, and has brought packets within liveQuiet (its pushes,
// or its keep-alives when it has none; or was joined within it), and
// there is one.
func (c *Client) liveInBand(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := 0
	for _, cs := range c.sessions {
		cs.mu.Lock()
		left := cs.left
		heard := cs.lastPacket
		if heard.IsZero() {
			heard = cs.joinedAt // just joined: its first packets are due
		}
		ok := cs.state == wellknown.StateActive && cs.rcv != nil && !cs.sawEnd && !heard.IsZero() && now.Sub(heard) < max(liveQuiet, c.cfg.LostGrace)
		cs.mu.Unlock()
		switch {
		case left:
		case !ok:
			return false
		default:
			live++
		}
	}
	return live > 0
}

// quietInBand has the description read now when the poll interval was
// stretched because the sessions were live in-band (pollInterval) and
// they are no longer: a session that stopped sending without its end
// reaching the client is known ended by the next read, not 30 s later.
func (c *Client) quietInBand(now time.Time) {
	if c.pollLive.Load() && !c.liveInBand(now) {
		c.pollLive.Store(false)
		c.pollSoon()
	}
}

// catalogNeeded reports whether the client waits for something only the
// description can say, and so reads it every CatalogPoll.
func (c *Client) catalogNeeded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.haveCat || c.altSvcOnly || c.fallback || c.entriesDueLocked() {
		return true
	}
	if c.heldForReadLocked() {
		return true // no signed entry on its way: a read must say
	}
	if len(c.jobs) > 0 && !c.endAt.IsZero() && c.allEndedLocked() {
		// The last repairs after the end may go on longer than
		// OriginGrace through the caches, whose answers are not the
		// origin's: reads show the origin is still there (finish).
		return true
	}
	// Lost promises are asked of the caches as signed entries once they
	// have waited LostGrace (fetchGapEntries), when the origin signs them;
	// a failed one asks for a read.
	gapsByEntry := c.catalogKey != nil && c.tier.count() > 0
	for _, cs := range c.sessions {
		cs.mu.Lock()
		waiting := !cs.left && (cs.state != wellknown.StateActive || cs.rcv == nil || cs.sawEnd) ||
			len(cs.gaps) > 0 && !gapsByEntry || c.orphanUnaskedLocked(cs)
		cs.mu.Unlock()
		if waiting {
			return true
		}
	}
	return false
}

// orphanUnaskedLocked reports whether an orphan of cs waits for the
// catalogue with no signed entry on its way to name it (orphan): only a
// read can. c.mu and cs.mu are held.
func (c *Client) orphanUnaskedLocked(cs *csession) bool {
	for _, res := range cs.orphans {
		ref := wellknown.EntryRef{Session: cs.id, StreamID: res.StreamID, ByStream: true}
		if _, idKnown := res.Orphan(); idKnown {
			ref = wellknown.EntryRef{Session: cs.id, PushID: res.PushID}
		}
		if !c.entryFetching[ref.Path()] {
			return true
		}
	}
	return false
}

// allEndedLocked reports whether every session the client knows has
// ended, in-band or by the description, or was left.
func (c *Client) allEndedLocked() bool {
	return c.everySessionLocked(func(cs *csession) bool {
		return cs.left || cs.sawEnd || cs.state == wellknown.StateEnded
	})
}

// everySessionLocked reports whether ok holds for every session the client
// knows, each asked under its own lock. c.mu is held.
func (c *Client) everySessionLocked(ok func(cs *csession) bool) bool {
	for _, cs := range c.sessions {
		cs.mu.Lock()
		yes := ok(cs)
		cs.mu.Unlock()
		if !yes {
			return false
		}
	}
	return true
}

// pendingEntryLocked reports whether the catalogue lists a resource the
// client expects that is neither delivered, nor being received or fetched,
// and that its session has gone past (a later push was promised, or the
// session ended): one a read will fetch once it counts as lost
// (lostLocked). A push listed before its promise reached the client (the
// origin lists what it hands to the sender) is not: it is coming.
func (c *Client) pendingEntryLocked() bool {
	for i := range c.catalog {
		e := &c.catalog[i]
		if e.Range != "" || c.busy[e.Path] > 0 || c.fetching[e.Path] != nil || c.jobs[entryKey(e)] != nil {
			continue
		}
		if c.settledEntryLocked(e) || !c.expectedLocked(e) {
			continue
		}
		cs := c.sessions[e.Session]
		if cs == nil || c.cfg.CatchUp {
			return true // what was pushed before the client came is past too
		}
		cs.mu.Lock()
		past := cs.sawEnd || cs.promised && cs.maxPromised > e.PushID
		cs.mu.Unlock()
		if past {
			return true
		}
	}
	return false
}

func (c *Client) pollLoop(ctx context.Context) {
	defer c.wg.Done()
	// Each wait is jittered (a random half to the whole of 1.5×CatalogPoll,
	// CatalogPoll on average), so that receivers started together do not
	// poll the server in step.
	t := time.NewTimer(spread(c.cfg.CatalogPoll))
	defer t.Stop()
	failing := false
	interval := c.cfg.CatalogPoll
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.liveInBand(time.Now()) && !c.catalogNeeded() {
				// Nothing asks for a read that the sessions do not
				// announce in-band: the interval stretches now
				// (pollInterval), this read included.
				if wait := c.cfg.CatalogIdlePoll - time.Since(c.lastRead()); wait > 0 && c.cfg.CatalogIdlePoll > c.cfg.CatalogPoll {
					interval = c.cfg.CatalogIdlePoll
					c.pollIdle.Store(true)
					c.pollLive.Store(true)
					c.liveStretched.Store(true)
					t.Reset(jitter(wait))
					continue
				}
			}
		case <-c.pollNow:
		case <-c.gapsDue:
			if c.fetchGapEntries(ctx, time.Now()) || !c.pollIdle.Load() {
				// Their entries are on their way (a failed one asks for
				// a read); or the next poll comes soon enough.
				continue
			}
		}
		if c.entriesBeforeEndRead(time.Now()) {
			// fetchEntry asks for the read when the last one is in;
			// the timer, once endReadWait is over.
			t.Reset(endReadWait / 4)
			continue
		}
		interval = c.pollInterval(interval)
		c.pollIdle.Store(interval > c.cfg.CatalogPoll)
		t.Reset(jitter(interval * 3 / 2)) // Go 1.23 timers: no stale tick to drain
		at := time.Now()
		d, err := c.describeSince(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.mu.Lock()
			c.stats.DescriptionErrors++
			c.mu.Unlock()
			level := slog.LevelWarn
			if failing {
				level = slog.LevelDebug // said already
			}
			failing = true
			c.log.Log(ctx, level, "reading the h3m description failed; keeping the last one", "err", err)
			c.unchecked(ctx, at)
			continue
		}
		if failing {
			c.log.Info("h3m description read again")
			failing = false
		}
		c.apply(ctx, d, false, at)
	}
}

// noteAltSvc looks at the Alt-Svc field of a unicast response: a session
// the client does not know yet makes it read the description now.
func (c *Client) noteAltSvc(h http.Header) {
	vals := h.Values("Alt-Svc")
	if len(vals) == 0 {
		return
	}
	ads, _, err := altsvc.Parse(strings.Join(vals, ", "))
	if err != nil {
		c.log.Debug("ignoring a malformed Alt-Svc field on a response", "err", err)
	}
	c.mu.Lock()
	unknown := false
	for i := range ads {
		if c.sessions[wellknown.SessionID(&ads[i])] == nil {
			unknown = true
		}
	}
	c.mu.Unlock()
	if unknown {
		select {
		case c.pollNow <- struct{}{}:
		default:
		}
	}
}

// deliver records a delivery unless its resource was already delivered;
// it reports whether it did.
func (c *Client) deliver(d *Delivery) bool {
	d.Time = time.Now()
	key := deliveryKey(d.Path, d.Header, d.Session, d.PushID)
	c.mu.Lock()
	if _, dup := c.settled[key]; dup {
		c.stats.Duplicates++
		c.mu.Unlock()
		return false
	}
	c.settleLocked(key, d.Time)
	c.settlePushLocked(d.Session, d.PushID, d.Time)
	switch d.Via {
	case ViaMulticast:
		c.stats.Multicast++
	case ViaRepair:
		c.stats.Repaired++
	case ViaFallback:
		c.stats.Fallback++
	}
	c.stats.LostBytes += d.LostBytes
	c.stats.RepairBytes += d.RepairBytes
	c.stats.RepairWireBytes += d.RepairWireBytes
	c.stats.FetchBytes += d.FetchBytes
	c.recordLocked(d)
	c.mu.Unlock()
	c.log.Debug("delivered", "path", d.Path, "via", d.Via, "size", d.Size, "repair_bytes", d.RepairBytes)
	if c.cfg.OnResource != nil {
		c.cfg.OnResource(*d)
	}
	c.notify()
	return true
}

// giveUp records a resource that could not be delivered.
func (c *Client) giveUp(d *Delivery) {
	d.Time = time.Now()
	c.mu.Lock()
	c.stats.Failed++
	c.recordLocked(d)
	c.mu.Unlock()
	c.log.Warn("resource given up", "path", d.Path, "session", d.Session, "push_id", d.PushID, "err", d.Err)
	if c.cfg.OnResource != nil {
		c.cfg.OnResource(*d)
	}
	c.notify()
}

func (c *Client) recordLocked(d *Delivery) {
	c.results = append(c.results, d)
	if over := len(c.results) - c.cfg.MaxDeliveries; over > 0 {
		clear(c.results[:over])
		c.results = append(c.results[:0], c.results[over:]...)
	}
}

// settleLocked records that the resource of key was delivered or given up
// at t.
func (c *Client) settleLocked(key string, t time.Time) {
	c.settled[key] = t
	if len(c.settled) > 4*(c.cfg.MaxCatalog+len(c.catalog)) {
		// Deliveries outrun the catalogue polls (or there is no
		// catalogue): prune here too, not only when the catalogue is read.
		c.pruneSettledLocked(t, c.liveKeysLocked())
	}
}

// liveKeysLocked returns the settled keys the client's catalogue lists:
// its entries' and their pushes'.
func (c *Client) liveKeysLocked() map[string]bool {
	live := make(map[string]bool, 2*len(c.catalog))
	for i := range c.catalog {
		e := &c.catalog[i]
		live[entryKey(e)], live[pushKey(e.Session, e.PushID)] = true, true
	}
	return live
}

// pushKey names a push in the settled keys: a resource a job settled
// without knowing its ETag (its push's headers were lost) still settles
// its catalogue entry.
func pushKey(session string, pushID uint64) string {
	return "\x00" + session + "/" + strconv.FormatUint(pushID, 10)
}

// settlePushLocked records that push pushID of session is dealt with.
func (c *Client) settlePushLocked(session string, pushID uint64, t time.Time) {
	if session != "" {
		c.settleLocked(pushKey(session, pushID), t)
	}
}

// settledEntryLocked reports whether catalogue entry e is settled, by its
// representation or by its push.
func (c *Client) settledEntryLocked(e *wellknown.CatalogEntry) bool {
	if _, ok := c.settled[entryKey(e)]; ok {
		return true
	}
	_, ok := c.settled[pushKey(e.Session, e.PushID)]
	return ok
}

// pruneSettledLocked forgets the settled keys the catalogue does not list
// (live) that are older than CatalogRetention, and the oldest of them
// beyond 2 × MaxCatalog (a delivery settles two keys). A key listed stays:
// its entry would otherwise be fetched.
func (c *Client) pruneSettledLocked(now time.Time, live map[string]bool) {
	type aged struct {
		key string
		at  time.Time
	}
	var unlisted []aged
	for k, t := range c.settled {
		if live[k] {
			continue
		}
		if now.Sub(t) > c.cfg.CatalogRetention {
			delete(c.settled, k)
			continue
		}
		unlisted = append(unlisted, aged{k, t})
	}
	if over := len(unlisted) - 2*c.cfg.MaxCatalog; over > 0 {
		slices.SortFunc(unlisted, func(a, b aged) int { return a.at.Compare(b.at) })
		for _, a := range unlisted[:over] {
			delete(c.settled, a.key)
		}
	}
}

// Resources returns the deliveries so far (and the resources given up), in
// order.
func (c *Client) Resources() []Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Delivery, len(c.results))
	for i, d := range c.results {
		out[i] = *d
	}
	return out
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.FallbackActive = c.fallback
	return s
}

// InFallback reports whether the client is fetching everything over unicast
// because multicast is not arriving.
func (c *Client) InFallback() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fallback
}

// deliveryKey identifies a resource for deduplication: its path and ETag,
// else its path and digest, else the push that carried it.
func deliveryKey(path string, h http.Header, session string, pushID uint64) string {
	if et := h.Get("Etag"); et != "" {
		return path + "\x00" + et
	}
	if d := h.Get("Content-Digest"); d != "" {
		return path + "\x00#" + d
	}
	if d := h.Get("Digest"); d != "" {
		return path + "\x00#" + d
	}
	return path + "\x00@" + session + "/" + strconv.FormatUint(pushID, 10)
}

// entryKey is deliveryKey for a catalogue entry.
func entryKey(e *wellknown.CatalogEntry) string {
	h := http.Header{}
	if e.ETag != "" {
		h.Set("Etag", e.ETag)
	}
	if e.ContentDigest != "" {
		h.Set("Content-Digest", e.ContentDigest)
	}
	if e.Digest != "" {
		h.Set("Digest", e.Digest)
	}
	return deliveryKey(e.Path, h, e.Session, e.PushID)
}

// jitter returns a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// spread returns a random duration in [0, d).
func spread(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ErrOffOrigin is the error of a request the client refused to send because
// it is not for its origin (scheme and host of Config.URL).
var ErrOffOrigin = errors.New("client: refused: the request is not for the origin")

// originOnly sends only requests for the origin, or for an origin-form
// target under a repair URL (a cache the origin's description lists, or
// Config.RepairURLs): the one check every request of the client goes
// through (redirects included), whatever built its URL. With no origin
// (sessions announced elsewhere) it sends none.
type originOnly struct {
	origin  *url.URL
	next    http.RoundTripper
	tier    *repairTier
	refused func(*url.URL)
}

func (o *originOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL
	if b := o.tier.allows(r); b != nil && o.origin != nil {
		return o.tier.roundTrip(r, b)
	}
	if o.origin == nil || u.Scheme != o.origin.Scheme || u.Host != o.origin.Host || u.User != nil || (r.Host != "" && r.Host != o.origin.Host) {
		if r.Body != nil {
			r.Body.Close()
		}
		if o.refused != nil {
			o.refused(u)
		}
		return nil, fmt.Errorf("%w: %s", ErrOffOrigin, u.Redacted())
	}
	return o.next.RoundTrip(r)
}

// originName names origin in logs ("none" for a client with no origin).
func originName(origin *url.URL) string {
	if origin == nil {
		return "none"
	}
	return origin.String()
}

// pathURL returns the URL on the origin of p, one of the origin's own paths
// (the manifests and keys under wellknown.Path: named by the client or by
// the description), with query q added to any p has. p must be an absolute
// path: nothing in it can name another host.
func (c *Client) pathURL(p, q string) (*url.URL, error) {
	ref, err := url.Parse(p)
	if err != nil || ref.Scheme != "" || ref.Host != "" || ref.User != nil || ref.Opaque != "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return nil, fmt.Errorf("%w: %q is not an absolute path", wellknown.ErrTarget, wellknown.Truncate(p))
	}
	u := &url.URL{Scheme: c.origin.Scheme, Host: c.origin.Host, Path: ref.Path, RawPath: ref.RawPath, RawQuery: ref.RawQuery}
	if q != "" {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += q
	}
	return u, nil
}

// rejectPath counts a promised path that wellknown.ParseTarget refuses; the
// first is logged as a warning, the rest at debug level. The push is
// neither fetched nor delivered.
func (c *Client) rejectPath(session string, pushID uint64, path string, err error) {
	c.mu.Lock()
	c.stats.RejectedPaths++
	first := c.stats.RejectedPaths == 1
	c.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "refusing a promised path that is not an origin-form target on the origin: the push is neither fetched nor delivered (later ones are counted in RejectedPaths)",
		"session", session, "push_id", pushID, "path", wellknown.Truncate(path), "err", err)
}
