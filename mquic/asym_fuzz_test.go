package mquic_test

import (
	"crypto/ed25519"
	"math/rand/v2"
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
)

// fuzzAsymSession is a NULL-suite asymmetric session (no AEAD, so the
// fuzzer reaches everything after decryption) with a fixed signing key and
// stream content, and its packets.
func fuzzAsymSession(f *testing.F) (mquic.Params, pattern, [][]byte) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	prof, err := manifest.NewProfile(priv.Public(), 7)
	if err != nil {
		f.Fatal(err)
	}
	params := mquic.Params{Group: mcasttest.Group(), SessionID: []byte{1, 2, 3, 4}, CipherSuite: protect.SuiteNull,
		Extensions: []mquic.Extension{{ID: manifest.ExtensionID, Value: prof.Value()}}}
	rng := rand.New(rand.NewPCG(1, 2))
	pat := pattern{block: make([]byte, 1<<16+13)}
	for i := range pat.block {
		pat.block[i] = byte(rng.Uint32())
	}
	pkts := capturedAsymSession(f, params, &manifest.SignerConfig{Key: priv, PacketsPerManifest: 4}, pat, 6000)
	return params, pat, pkts
}

// FuzzAsymReceivePath feeds a receiver of an asymmetric NULL-suite session
// the real session with two arbitrary datagrams (and a replay of the first)
// in the middle. Without the signing key nothing the fuzzer makes can be
// authenticated: whatever it sends, only the real stream bytes are
// delivered, every datagram is accounted for, and nothing panics.
func FuzzAsymReceivePath(f *testing.F) {
	params, pat, pkts := fuzzAsymSession(f)
	for i := 0; i+1 < len(pkts); i += 2 {
		f.Add(pkts[i], pkts[i+1])
	}
	f.Add(pkts[len(pkts)-1], []byte{0x40, 1, 2, 3, 4, 0, 0, 0, 9, 0x8f, 0xf3, 0xe8, 0xa0, 0x05, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		col := newCollector(pat)
		r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: col, ReorderThreshold: 1,
			Auth: manifest.AuthConfig{MaxHeldPackets: 16}})
		if err != nil {
			t.Fatal(err)
		}
		r.SetClock(fixedClock)
		half := len(pkts) / 2
		var all [][]byte
		all = append(all, pkts[:half]...)
		all = append(all, a, b, a)
		all = append(all, pkts[half:]...)
		for _, p := range all {
			r.HandlePacket(append([]byte(nil), p...), src)
		}
		r.Flush()
		st := r.Stats()
		accounted(t, st)
		// Run's pipeline, opening in parallel, ends the same.
		cfg := mquic.ReceiverConfig{Params: params, Handler: newCollector(pat), ReorderThreshold: 1, Workers: 2,
			Auth: manifest.AuthConfig{MaxHeldPackets: 16}}
		if got := receivePipelined(t, cfg, batched(all, 64)); packetCounters(got) != packetCounters(st) {
			t.Fatalf("pipelined %v, one at a time %v", packetCounters(got), packetCounters(st))
		}
		for _, err := range col.errs {
			t.Fatal(err)
		}
		for id := range col.streams {
			if id != 3 {
				t.Fatalf("stream %d delivered", id)
			}
		}
	})
}
