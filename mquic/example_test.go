package mquic_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
)

// printer prints what arrives on each stream.
type printer struct{ done chan struct{} }

func (p printer) OpenStream(s *mquic.RecvStream) mquic.StreamHandler { return p }
func (p printer) Data(off uint64, b []byte)                          { fmt.Printf("%d: %s\n", off, b) }
func (p printer) Gap(from, to uint64)                                { fmt.Printf("lost [%d,%d)\n", from, to) }
func (p printer) Finish(size uint64)                                 { fmt.Println("end at", size); close(p.done) }
func (p printer) Reset(code, size uint64)                            {}

// A sender and a receiver of one session over loopback multicast. The
// sockets name their interface explicitly: multicast never follows the
// default route.
func Example() {
	params := mquic.Params{
		Group:        netip.MustParseAddrPort("232.1.2.3:5000"),
		Source:       netip.MustParseAddr("127.0.0.1"),
		SessionID:    []byte{0x0b, 0xad, 0xbe, 0xef},
		CipherSuite:  protect.SuiteAES128GCM,
		Secret:       make([]byte, 32), // from the advertisement
		PeakFlowRate: 100_000_000,
	}
	rconn, err := mcast.ListenReceiver(mcast.Config{Group: params.Group, Source: params.Source, Interface: "lo"})
	if err != nil {
		panic(err)
	}
	defer rconn.Close()
	sconn, err := mcast.ListenSender(mcast.Config{Group: params.Group, Source: params.Source, Interface: "lo", TTL: 1})
	if err != nil {
		panic(err)
	}
	defer sconn.Close()

	p := printer{done: make(chan struct{})}
	rcv, err := mquic.NewReceiver(rconn, mquic.ReceiverConfig{Params: params, Handler: p})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go rcv.Run(ctx)

	snd, err := mquic.NewSender(sconn, mquic.SenderConfig{Params: params})
	if err != nil {
		panic(err)
	}
	go snd.Run(ctx) // the writer: pacing, batched writes, timers
	st, _ := snd.OpenStream()
	st.Write([]byte("hello, multicast"))
	st.Close()
	snd.Close() // flushes, and waits until Run has written everything
	<-p.done
	// Output:
	// 0: hello, multicast
	// end at 16
}
