package h3m_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/integrity"
)

// TestManySmallAndSomeLarge pushes 1,000 small resources and three of
// 50 MiB over real loopback multicast: every one must arrive byte-exact with
// its fields, and its digests verify.
func TestManySmallAndSomeLarge(t *testing.T) {
	for _, dataOffset := range []bool{false, true} {
		t.Run(fmt.Sprintf("data-offset=%v", dataOffset), func(t *testing.T) {
			s := newSession(t, sessionOpts{
				dataOffset: dataOffset,
				pusher:     h3m.PusherConfig{Digests: []string{"SHA-256"}},
				receiver:   h3m.ReceiverConfig{Verifier: &h3m.Verifier{RequireDigest: true}, MaxResources: 4096},
				rate:       1_000_000_000,
			})
			large := make([]byte, 50<<20)
			rand.Read(large)
			small := make([]byte, 100_000)
			rand.Read(small)
			want := map[string][]byte{}
			var pushes []*h3m.Push
			nLarge := 3
			if dataOffset {
				nLarge = 1 // the other variant covers the rest; keep CI quick
			}
			for i := range nLarge {
				body := large[i*1000:]
				path := fmt.Sprintf("/large/%d.bin", i)
				want[path] = body
				pushes = append(pushes, bytesPush(path, body))
			}
			for i := range 1000 {
				body := small[i : i+i%3000]
				path := fmt.Sprintf("/small/%04d", i)
				want[path] = body
				pushes = append(pushes, bytesPush(path, body))
			}
			start := time.Now()
			s.pushAll(pushes)
			s.finish()
			elapsed := time.Since(start)
			for path, body := range want {
				res := s.resource(path)
				if res == nil {
					t.Fatalf("%s never arrived", path)
				}
				st, err := res.State()
				if st != h3m.StateComplete {
					t.Fatalf("%s: %v %v; missing %v; stats %+v; transport %+v", path, st, err, res.Missing(), s.rcv.Stats(), s.rcv.Transport().Stats())
				}
				if got := bodyOf(t, res); !bytes.Equal(got, body) {
					t.Fatalf("%s: body differs (%d bytes, want %d)", path, len(got), len(body))
				}
				resp := res.Response()
				if resp.Status != 200 || resp.Header.Get("X-Test") != path || resp.Header.Get("Content-Type") != "application/octet-stream" {
					t.Fatalf("%s: response %d %v", path, resp.Status, resp.Header)
				}
				if resp.Header.Get("Digest") == "" || resp.Header.Get("Content-Digest") == "" {
					t.Fatalf("%s: no digests in %v", path, resp.Header)
				}
				if req := res.Request(); req.Method != "GET" || req.Scheme != "https" || req.Authority != "example.org" {
					t.Fatalf("%s: request %+v", path, req)
				}
			}
			st := s.rcv.Stats()
			ts := s.rcv.Transport().Stats()
			t.Logf("%d resources, %.0f MiB in %v: %+v; transport: %d packets, %d lost", len(want),
				float64(nLarge*50), elapsed, st, ts.Packets, ts.LostPackets)
			if st.Complete != uint64(len(want))+1 { // + the end marker
				t.Fatalf("%d complete, want %d", st.Complete, len(want)+1)
			}
		})
	}
}

// TestTamperedBodyRejected sends valid packets whose body does not match
// the digest: the receiver must discard the resource with its reason.
func TestTamperedBodyRejected(t *testing.T) {
	s := newSession(t, sessionOpts{receiver: h3m.ReceiverConfig{Verifier: &h3m.Verifier{RequireDigest: true}}})
	body := []byte("this body is the real one")
	good := bytesPush("/good", body)
	hasher, _ := integrity.NewHasher("SHA-256")
	hasher.Write(body)
	good.Header.Set("Digest", hasher.Digest())
	tampered := bytesPush("/tampered", []byte("this body is the FAKE one"))
	tampered.Header.Set("Digest", hasher.Digest())
	undigested := bytesPush("/undigested", body)
	s.pushAll([]*h3m.Push{good, tampered, undigested})
	s.finish()
	if st, err := s.resource("/good").State(); st != h3m.StateComplete {
		t.Fatalf("/good: %v %v", st, err)
	}
	for _, path := range []string{"/tampered", "/undigested"} {
		st, err := s.resource(path).State()
		if st != h3m.StateFailed || !errors.Is(err, h3m.ErrIntegrity) {
			t.Fatalf("%s: %v %v", path, st, err)
		}
		t.Logf("%s rejected: %v", path, err)
	}
	var mm *integrity.MismatchError
	if _, err := s.resource("/tampered").State(); !errors.As(err, &mm) {
		t.Fatalf("the reason does not name the digest mismatch: %v", err)
	}
}

// TestWrongSignatureRejected signs with one key while the receiver knows
// the key ID as another: the resource is rejected.
func TestWrongSignatureRejected(t *testing.T) {
	priv, pub := newEd25519(t)
	_, otherPub := newEd25519(t)
	signer := h3m.MessageSigner{MessageSigner: &integrity.MessageSigner{Label: "h3m", KeyID: "k1", Key: priv, Components: integrity.DefaultResponseComponents}}
	for _, tc := range []struct {
		name string
		key  crypto.PublicKey
		want h3m.State
	}{{"right key", pub, h3m.StateComplete}, {"wrong key", otherPub, h3m.StateFailed}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, sessionOpts{
				pusher: h3m.PusherConfig{Digests: []string{"SHA-256"}, Signer: signer},
				receiver: h3m.ReceiverConfig{Verifier: &h3m.Verifier{RequireDigest: true, RequireSignature: true,
					Keys: integrity.StaticKeys(map[string]crypto.PublicKey{"k1": tc.key})}},
			})
			s.pushAll([]*h3m.Push{bytesPush("/signed", []byte("signed content"))})
			s.finish()
			st, err := s.resource("/signed").State()
			if st != tc.want {
				t.Fatalf("%v %v, want %v", st, err, tc.want)
			}
			if st == h3m.StateFailed && !errors.Is(err, h3m.ErrIntegrity) {
				t.Fatalf("reason %v", err)
			}
			t.Logf("%s: %v %v", tc.name, st, err)
		})
	}
}

func newEd25519(t testing.TB) (ed25519.PrivateKey, ed25519.PublicKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}
