package origin_test

import (
	"context"
	"crypto/tls"
	"log"
	"net/netip"
	"time"

	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/unicast/origin"
)

// What "h3m serve --dir ./www --asymmetric --rollover 1h" does, in a
// program of one's own.
func ExampleNew() {
	ctx := context.Background()
	cert, err := origin.LoadOrCreateCertificate("h3m-cert.pem", "h3m-key.pem", []string{"192.0.2.10"})
	if err != nil {
		log.Fatal(err)
	}
	o, err := origin.New(origin.Config{
		Dir: "./www", Addr: "192.0.2.10:443", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Publisher: origin.PublisherConfig{Interface: "eth1", TTL: 1, Asymmetric: true, Rollover: time.Hour},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close(ctx)
	go o.Server.ListenAndServe(ctx)
	ad, err := origin.NewSession(origin.SessionConfig{Group: netip.MustParseAddrPort("232.1.1.1:5000"),
		Interface: "eth1", Suite: protect.SuiteAES128GCM, PeakFlowRate: 50_000_000})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := o.Publisher.Start(ad); err != nil {
		log.Fatal(err)
	}
	if _, err := o.Publisher.PushFile(ctx, "/index.html"); err != nil {
		log.Fatal(err)
	}
	// Receivers: client.New(client.Config{URL: o.URL(), ...}).Run(ctx).
}
