package forger_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/h3m-project/h3m/internal/forger"
)

// A forger reads an origin's sessions over TLS, as any receiver, and
// floods the first with forged promises from the session's source address
// on interface lo.
func Example() {
	ctx := context.Background()
	ads, err := forger.Discover(ctx, http.DefaultClient, "https://origin.test:4433/")
	if err != nil || len(ads) == 0 {
		return
	}
	f, err := forger.FromAdvertisement(&ads[0])
	if err != nil {
		return
	}
	conn, err := forger.Dial(&ads[0].Session, "lo") // or DialSpoofed in a namespace
	if err != nil {
		return
	}
	defer conn.Close()
	n, err := forger.SendAll(conn, f.PromiseFlood(200_000, func(i int) string { return fmt.Sprintf("/forged/%d", i) }))
	fmt.Println(n, err)

	// A packet-number jump, a forged push with a huge Content-Length.
	conn.Send(f.SealPN(f.NextPN()+1<<20, []byte{0x01}))
	p := f.NewPush("/update.bin")
	p.Header.Set("Content-Length", "134217728")
	p.Body, p.NoFin = []byte("not all of it"), true
	pkts, _ := f.Packets(&p)
	forger.Replay(conn, pkts)
}
