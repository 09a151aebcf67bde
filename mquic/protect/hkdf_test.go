package protect

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 9001 Appendix A.1: the Initial secrets of a client whose first
// Destination Connection ID is 8394c8f03e515708, and the AES-128-GCM packet
// protection keys derived from them.
func TestExpandLabelRFC9001A1(t *testing.T) {
	salt := mustHex(t, "38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
	initial, err := hkdf.Extract(sha256.New, mustHex(t, "8394c8f03e515708"), salt)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44"); !bytes.Equal(initial, want) {
		t.Fatalf("initial_secret %x", initial)
	}
	for _, side := range []struct {
		label, secret, key, iv, hp string
	}{
		{"client in", "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
			"1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"},
		{"server in", "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b",
			"cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314"},
	} {
		secret := ExpandLabel(sha256.New, initial, side.label, 32)
		if hex.EncodeToString(secret) != side.secret {
			t.Errorf("%s secret %x, want %s", side.label, secret, side.secret)
		}
		key, iv, hp, err := DeriveKeys(SuiteAES128GCM, secret)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(key) != side.key || hex.EncodeToString(iv) != side.iv || hex.EncodeToString(hp) != side.hp {
			t.Errorf("%s: key %x iv %x hp %x, want %s %s %s", side.label, key, iv, hp, side.key, side.iv, side.hp)
		}
	}
}

// RFC 9001 Appendix A.5: keys derived from a ChaCha20-Poly1305 1-RTT secret,
// and the secret of the next key phase ("quic ku").
func TestDeriveKeysRFC9001A5(t *testing.T) {
	secret := mustHex(t, "9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
	key, iv, hp, err := DeriveKeys(SuiteChaCha20Poly1305, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"key", key, "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8"},
		{"iv", iv, "e0459b3474bdd0e44a41c144"},
		{"hp", hp, "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"},
		{"ku", ExpandLabel(sha256.New, secret, labelKeyUpdate, 32), "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9"},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s = %x, want %s", c.name, c.got, c.want)
		}
	}
}

func TestDeriveKeysErrors(t *testing.T) {
	for _, tt := range []struct {
		s      Suite
		secret int
	}{
		{SuiteNull, 32}, {0x1304, 32}, {SuiteAES128GCM, 31}, {SuiteAES128GCM, 48},
		{SuiteAES256GCM, 32}, {SuiteChaCha20Poly1305, 0},
	} {
		if _, _, _, err := DeriveKeys(tt.s, make([]byte, tt.secret)); err == nil {
			t.Errorf("DeriveKeys(%v, %d-byte secret): no error", tt.s, tt.secret)
		}
		if _, err := NewFromSecret(tt.s, make([]byte, tt.secret)); err == nil {
			t.Errorf("NewFromSecret(%v, %d-byte secret): no error", tt.s, tt.secret)
		}
	}
	// AES-256-GCM derives with SHA-384 from a 48-byte secret.
	key, iv, hp, err := DeriveKeys(SuiteAES256GCM, make([]byte, 48))
	if err != nil || len(key) != 32 || len(iv) != 12 || len(hp) != 32 {
		t.Errorf("AES-256: %d %d %d %v", len(key), len(iv), len(hp), err)
	}
}

func TestExpandLabelPanics(t *testing.T) {
	for _, f := range []func(){
		func() { ExpandLabel(sha256.New, make([]byte, 32), string(make([]byte, 250)), 16) },
		func() { ExpandLabel(sha256.New, make([]byte, 32), "x", 255*32+1) },
		func() { ExpandLabel(sha256.New, make([]byte, 32), "x", -1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}
