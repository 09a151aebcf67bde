package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/h3m-project/h3m/unicast/wellknown"
)

// Config configures an Origin.
type Config struct {
	// Dir is the folder served over unicast and pushed over multicast.
	// Required.
	Dir string
	// Addr is the UDP address of the unicast server, e.g. "127.0.0.1:4433";
	// it is also the :authority of the pushes.
	Addr string
	// TLSConfig holds the server's certificate (LoadOrCreateCertificate).
	TLSConfig *tls.Config
	// QUICConfig tunes the server's QUIC connections (Server.QUICConfig).
	QUICConfig *quic.Config
	// Digests are the digest algorithms of the Content-Digest and Digest
	// fields, served and pushed (nil: SHA-256).
	Digests []string
	// Publisher configures the multicast side: Interface, TTL, Signer,
	// Asymmetric, Rollover, Sender, Tracer... New sets its Files,
	// Authority, Digests, Sessions, Catalog, Manifests and Keys, and its
	// Logger when nil.
	Publisher PublisherConfig
	// MulticastRepair, when its Threshold is set, pushes ranges that many
	// receivers ask to repair once more on the session (MulticastRepair).
	MulticastRepair MulticastRepairConfig
	// AutoFEC, when Enabled, sets the repair overhead of the Publisher's
	// sessions (which must advertise FEC: AddFEC) from the loss the
	// receivers' repair requests show (AutoFEC).
	AutoFEC AutoFECConfig
	// PrivateFiles are files that must never be served or pushed: the TLS
	// key and certificate, signing keys. New refuses a Dir that holds any
	// of them (CheckOutside).
	PrivateFiles []string
	// RepairURLs are the base URLs of the caches receivers repair and fall
	// back through, nearest first (Server.RepairURLs); New checks and
	// normalises them (wellknown.ParseRepairURL).
	RepairURLs []string
	// TCPAddr also serves the content over TLS on TCP, HTTP/2 and
	// HTTP/1.1, for those caches to fetch from (Server.TCPAddr).
	TCPAddr string
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// Origin is a folder served over unicast HTTP/3 and pushed over multicast,
// as "h3m serve" runs it: a Server and a Publisher sharing one FileServer
// and the four registries the server publishes.
//
// Run the server (Server.ListenAndServe), start a session
// (Publisher.Start with NewSession's advertisement), push (PushFile),
// then end the session (Publisher.Close), keep the server up a while for
// the receivers' repairs, and Close.
type Origin struct {
	Server *Server
	// Publisher runs the session of paths in no channel; AddChannel adds
	// one publisher per channel.
	Publisher *Publisher
	Files     *FileServer
	Sessions  *Sessions
	Catalog   *Catalog
	Manifests *Manifests
	Keys      *Keys
	// Repair is the multicast repair in front of Files (nil when
	// Config.MulticastRepair has no Threshold).
	Repair *MulticastRepair
	// AutoFEC steers the Publisher's repair overhead (nil unless
	// Config.AutoFEC is Enabled).
	AutoFEC *AutoFEC

	pubCfg     PublisherConfig // Publisher's, for AddChannel
	channelsMu sync.Mutex
	channels   []*Publisher
}

// New wires an origin for cfg. The server is not listening yet and no
// session runs.
func New(cfg Config) (*Origin, error) {
	if cfg.Addr == "" {
		return nil, errors.New("origin: Addr is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := CheckOutside(cfg.Dir, cfg.PrivateFiles...); err != nil {
		return nil, err
	}
	var repairURLs []string
	for _, v := range cfg.RepairURLs {
		u, err := wellknown.ParseRepairURL(v)
		if err != nil {
			return nil, fmt.Errorf("origin: %w", err)
		}
		repairURLs = append(repairURLs, u.String())
	}
	if len(repairURLs) > wellknown.MaxRepairURLs {
		return nil, fmt.Errorf("origin: %d repair URLs, limit %d", len(repairURLs), wellknown.MaxRepairURLs)
	}
	files, err := NewFileServer(cfg.Dir, cfg.Digests...)
	if err != nil {
		return nil, err
	}
	files.Logger = cfg.Logger
	o := &Origin{Files: files, Sessions: &Sessions{}, Catalog: &Catalog{}, Manifests: &Manifests{}, Keys: &Keys{}}
	o.Server = &Server{
		Addr: cfg.Addr, Handler: files, TLSConfig: cfg.TLSConfig, QUICConfig: cfg.QUICConfig,
		Sessions: o.Sessions, Catalog: o.Catalog, Manifests: o.Manifests, Keys: o.Keys, Logger: cfg.Logger,
		RepairURLs: repairURLs, TCPAddr: cfg.TCPAddr,
	}
	pc := cfg.Publisher
	pc.Files, pc.Authority, pc.Digests = files, cfg.Addr, cfg.Digests
	if cfg.AutoFEC.Enabled {
		// Adaptive FEC is there to save bytes on the wire: no padding of
		// packets to the size of repair packets.
		pc.Sender.FECUnpadded = true
	}
	pc.Sessions, pc.Catalog, pc.Manifests, pc.Keys = o.Sessions, o.Catalog, o.Manifests, o.Keys
	if pc.Logger == nil {
		pc.Logger = cfg.Logger
	}
	if o.Publisher, err = NewPublisher(pc); err != nil {
		files.Close()
		return nil, err
	}
	o.pubCfg = pc
	if cfg.MulticastRepair.Threshold > 0 {
		mc := cfg.MulticastRepair
		if mc.Logger == nil {
			mc.Logger = cfg.Logger
		}
		o.Repair = NewMulticastRepair(mc, files)
		o.Repair.SetPublisher(o.Publisher)
		o.Server.Handler = o.Repair
	}
	if cfg.AutoFEC.Enabled {
		ac := cfg.AutoFEC
		if ac.Logger == nil {
			ac.Logger = cfg.Logger
		}
		o.AutoFEC = NewAutoFEC(ac, o.Server.Handler)
		o.AutoFEC.SetPublisher(o.Publisher)
		o.Server.Handler = o.AutoFEC
		o.AutoFEC.Start()
	}
	return o, nil
}

// AddChannel returns a new publisher like Publisher whose sessions carry
// only the paths under channel (PublisherConfig.Channel, "/720p/"): one
// rendition of a DASH ladder, say, which gateways join only while a player
// plays it. Start it with an advertisement of its own (its own group), and
// push the paths under channel with it; Close ends it with the others.
func (o *Origin) AddChannel(channel string) (*Publisher, error) {
	if channel == "" {
		return nil, errors.New("origin: AddChannel: no channel")
	}
	o.channelsMu.Lock()
	defer o.channelsMu.Unlock()
	for _, p := range o.channels {
		if p.cfg.Channel == channel {
			return nil, fmt.Errorf("origin: channel %s added twice", channel)
		}
	}
	pc := o.pubCfg
	pc.Channel = channel
	p, err := NewPublisher(pc)
	if err != nil {
		return nil, err
	}
	o.channels = append(o.channels, p)
	return p, nil
}

// Channels returns the publishers AddChannel added, in order.
func (o *Origin) Channels() []*Publisher {
	o.channelsMu.Lock()
	defer o.channelsMu.Unlock()
	return slices.Clone(o.channels)
}

// URL is the https URL receivers are given (the server's address as
// listened on, once it listens).
func (o *Origin) URL() string {
	addr := o.Server.Addr
	if a := o.Server.LocalAddr(); a != nil {
		addr = a.String()
	}
	return "https://" + addr + "/"
}

// Close ends the running sessions (Publisher.Close, and the channels'), stops the server and
// releases the folder.
func (o *Origin) Close(ctx context.Context) error {
	if o.AutoFEC != nil {
		o.AutoFEC.Stop()
	}
	errs := []error{o.Publisher.Close(ctx)}
	for _, p := range o.Channels() {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(append(errs, o.Server.Close(), o.Files.Close())...)
}
