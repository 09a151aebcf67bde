package origin

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/fec"
)

// Defaults of AutoFECConfig.
const (
	DefaultAutoFECWindow    = 2 * time.Second
	DefaultAutoFECLag       = 600 * time.Millisecond
	DefaultAutoFECHold      = 6 * time.Second
	DefaultAutoFECMinPushed = 2 << 20
	// DefaultAutoFECMaxOverhead is the maximum repair overhead serve
	// --fec auto advertises: 50 repair packets per block of 200.
	DefaultAutoFECMaxOverhead = 0.25
)

// AutoFECConfig configures AutoFEC (spec/transport.md, "The sender's
// policy").
type AutoFECConfig struct {
	// Enabled turns the policy on (Origin.New then wires an AutoFEC).
	// The session must advertise FEC (AddFEC, at the maximum overhead
	// the policy may use; DefaultAutoFECMaxOverhead): its sender starts
	// with no repair packets, and does not pad its packets to the size of
	// repair packets (mquic.SenderConfig.FECUnpadded): the padding would
	// cost bytes on the wire, which the policy exists to save.
	Enabled bool
	// Window is the sliding window over which the receivers' repair
	// requests are compared with the bytes pushed; 0 means
	// DefaultAutoFECWindow. The policy decides once per eighth of it,
	// and after a change waits a whole window (and Lag) before the next.
	Window time.Duration
	// Lag is how long after a packet is pushed its loss is asked for
	// (the receivers' wait for FEC and their random repair delay): the
	// requests of the window are compared with the bytes pushed Lag
	// earlier. 0 means DefaultAutoFECLag.
	Lag time.Duration
	// Hold is how long the residual repair must stay well below what the
	// loss estimate predicts before the policy tries less overhead; 0
	// means DefaultAutoFECHold.
	Hold time.Duration
	// MinPushed is the least stream bytes pushed in a window for the
	// policy to judge it; 0 means DefaultAutoFECMinPushed.
	MinPushed int64
	// Framing is what a byte repaired over unicast costs on the wire
	// (QUIC, HTTP and multipart framing); 0 means 1.1.
	Framing float64
	// Target is the largest chance of a block left unrecoverable the
	// overhead is sized for; 0 means 1 %.
	Target float64
	// Now is the clock (nil: time.Now); tests inject theirs.
	Now func() time.Time
	// Logger receives the changes (Info); nil means slog.Default().
	Logger *slog.Logger
}

// AutoFECStats are the counters and state of an AutoFEC.
type AutoFECStats struct {
	// Overhead is the repair overhead in force (0: no repair packets),
	// Loss the per-receiver loss estimate behind it, Receivers the
	// receivers it counts.
	Overhead, Loss float64
	Receivers      int
	// Changes counts the changes of the overhead (On those that turned
	// FEC on from none).
	Changes, On uint64
	// AskedBytes counts the bytes the range requests counted asked for.
	AskedBytes uint64
}

// AutoFEC is an http.Handler in front of the file handler that sets the
// repair overhead of the publisher's session from the loss its receivers'
// repair requests show: it counts the bytes each receiver (each client
// address) asks for in range requests over a sliding window, compares them
// with the stream bytes the session pushed, and turns repair packets on
// where they cost less on multicast than the unicast repair they save,
// sized to cover a typical receiver's loss with margin for a block's
// variance, and back down or off once the loss goes (the policy:
// fecPolicy). Every request is served by the next handler.
type AutoFEC struct {
	cfg  AutoFECConfig
	next http.Handler
	log  *slog.Logger

	mu      sync.Mutex
	pub     *Publisher
	snd     *mquic.Sender // the session the policy runs for
	pol     fecPolicy
	ticks   []fecTick // oldest first
	began   time.Time // the session's first tick with bytes pushed
	cur     map[string]int64
	stats   AutoFECStats
	warned  bool
	stop    chan struct{}
	stopped chan struct{}
}

// fecTick is one eighth of the window: when it ended, the stream bytes
// the session had pushed then, and what each receiver asked during it.
type fecTick struct {
	at     time.Time
	pushed uint64
	asked  map[string]int64
}

// NewAutoFEC returns an AutoFEC serving requests with next; it does
// nothing until SetPublisher gives it the publisher, and decides once Run
// runs.
func NewAutoFEC(cfg AutoFECConfig, next http.Handler) *AutoFEC {
	if cfg.Window <= 0 {
		cfg.Window = DefaultAutoFECWindow
	}
	if cfg.Lag <= 0 {
		cfg.Lag = DefaultAutoFECLag
	}
	if cfg.Hold <= 0 {
		cfg.Hold = DefaultAutoFECHold
	}
	if cfg.MinPushed <= 0 {
		cfg.MinPushed = DefaultAutoFECMinPushed
	}
	if cfg.Framing <= 0 {
		cfg.Framing = fecFraming
	}
	if cfg.Target <= 0 {
		cfg.Target = fecTarget
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &AutoFEC{cfg: cfg, next: next, log: cfg.Logger, cur: map[string]int64{}}
}

// SetPublisher sets the publisher whose sessions the policy steers; their
// senders start at the overhead in force (none, at first).
func (a *AutoFEC) SetPublisher(p *Publisher) {
	a.mu.Lock()
	a.pub = p
	a.mu.Unlock()
	p.autoFEC.Store(a)
}

// Stats returns the counters and state.
func (a *AutoFEC) Stats() AutoFECStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// ServeHTTP counts the bytes of a range request, then serves it with the
// next handler.
func (a *AutoFEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		if v := r.Header.Get("Range"); v != "" {
			if rs := parseExplicitRanges(v, maxCountedRanges); len(rs) > 0 {
				var n int64
				for _, br := range rs {
					n += br.last - br.first + 1
				}
				a.mu.Lock()
				a.cur[r.RemoteAddr] += n
				a.stats.AskedBytes += uint64(n)
				a.mu.Unlock()
			}
		}
	}
	a.next.ServeHTTP(w, r)
}

// Start runs the policy, one decision per eighth of the window, until
// Stop.
func (a *AutoFEC) Start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop != nil {
		return
	}
	a.stop, a.stopped = make(chan struct{}), make(chan struct{})
	go func(stop <-chan struct{}, stopped chan<- struct{}) {
		defer close(stopped)
		t := time.NewTicker(a.cfg.Window / 8)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				a.Tick()
			}
		}
	}(a.stop, a.stopped)
}

// Stop ends what Start started.
func (a *AutoFEC) Stop() {
	a.mu.Lock()
	stop, stopped := a.stop, a.stopped
	a.stop = nil
	a.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
}

// overhead is what a new session's sender starts with.
func (a *AutoFEC) overhead() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pol.overhead
}

// Tick closes an eighth of the window and lets the policy decide on the
// window (Start calls it; tests call it with their clock).
func (a *AutoFEC) Tick() {
	now := a.cfg.Now()
	a.mu.Lock()
	pub := a.pub
	a.mu.Unlock()
	if pub == nil {
		return
	}
	snd, fp, sid := pub.fecSession()
	var pushed uint64
	if snd != nil {
		pushed = snd.Stats().StreamBytes
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if snd != a.snd {
		// A new session (or none): its own window, from the overhead in
		// force (open gave it to the sender).
		a.snd, a.ticks, a.began = snd, a.ticks[:0], time.Time{}
		clear(a.cur)
		a.pol = fecPolicy{overhead: a.pol.overhead, loss: a.pol.loss, receivers: a.pol.receivers}
		if fp != nil {
			a.pol.k, a.pol.maxM = fp.MaxSourceCount, fp.MaxRepairCount
		} else if snd != nil && !a.warned {
			a.warned = true
			a.log.Warn("adaptive FEC: the session advertises no FEC; it sends no repair packets", "session", sid)
		}
		a.pol.framing, a.pol.target, a.pol.hysteresis = a.cfg.Framing, a.cfg.Target, fecHysteresis
		a.pol.settle, a.pol.hold = a.cfg.Window+a.cfg.Lag, a.cfg.Hold
		if snd != nil {
			a.pol.extra = snd.FECPaddingCost()
		}
	}
	if snd == nil || fp == nil {
		return
	}
	if a.began.IsZero() && pushed > 0 {
		a.began = now
	}
	a.ticks = append(a.ticks, fecTick{at: now, pushed: pushed, asked: a.cur})
	a.cur = map[string]int64{}
	keep := a.cfg.Window + a.cfg.Lag + a.cfg.Window/4
	for len(a.ticks) > 1 && now.Sub(a.ticks[0].at) > keep {
		a.ticks = a.ticks[1:]
	}
	s, ok := a.sampleLocked(now)
	if !ok {
		return
	}
	d, changed := a.pol.decide(now, s)
	if !changed {
		return
	}
	if err := snd.SetRepairOverhead(d.overhead); err != nil {
		a.log.Warn("adaptive FEC: the sender refused the overhead", "overhead", d.overhead, "err", err)
		return
	}
	a.stats.Changes++
	if d.overhead > 0 && a.stats.Overhead == 0 {
		a.stats.On++
	}
	a.stats.Overhead, a.stats.Loss, a.stats.Receivers = d.overhead, d.loss, d.receivers
	a.log.Info("adaptive FEC: repair overhead changed", "session", sid,
		"repair_per_block", repairCount(d.overhead, a.pol.k, a.pol.maxM), "block", a.pol.k, "overhead", d.overhead,
		"loss", d.loss, "receivers", d.receivers, "unicast_saved", d.benefit, "multicast_cost", d.cost, "padding_cost", a.pol.extra, "reason", d.reason)
}

// sampleLocked is the window ending at now: what each receiver asked in
// it, against what the session pushed in the window Lag earlier.
func (a *AutoFEC) sampleLocked(now time.Time) (fecSample, bool) {
	if a.began.IsZero() || now.Sub(a.began) < 2*a.cfg.Lag {
		// Requests lag their losses by up to about twice Lag: before,
		// the window would show less loss than there is.
		return fecSample{}, false
	}
	end := now.Add(-a.cfg.Lag)
	start := end.Add(-a.cfg.Window)
	pushedAt := func(t time.Time) (uint64, bool) {
		// The last tick at or before t.
		var v uint64
		found := false
		for _, tk := range a.ticks {
			if tk.at.After(t) {
				break
			}
			v, found = tk.pushed, true
		}
		return v, found
	}
	hi, ok := pushedAt(end)
	if !ok {
		return fecSample{}, false
	}
	lo, ok := pushedAt(start)
	if !ok {
		lo = 0 // the session began within the window
	}
	s := fecSample{pushed: int64(hi - lo)}
	if s.pushed < a.cfg.MinPushed {
		return fecSample{}, false
	}
	asked := map[string]int64{}
	for _, tk := range a.ticks {
		if now.Sub(tk.at) < a.cfg.Window {
			for who, n := range tk.asked {
				asked[who] += n
			}
		}
	}
	for _, n := range asked {
		s.asked = append(s.asked, n)
	}
	return s, true
}

// fecSession returns the running session's sender, the FEC parameters it
// advertises (nil: none) and its ID.
func (p *Publisher) fecSession() (*mquic.Sender, *fec.Params, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return nil, nil, ""
	}
	return p.current.snd, advertisedFEC(&p.current.ad), p.current.id
}

// advertisedFEC returns the FEC parameters ad advertises, or nil.
func advertisedFEC(ad *altsvc.Advertisement) *fec.Params {
	for _, e := range ad.Session.Extensions {
		if e.ID == fec.ExtensionID {
			if fp, err := fec.ParseParams(e.Value); err == nil {
				return &fp
			}
		}
	}
	return nil
}
