package interop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// writeCerts writes what the QUIC interop runner mounts as /certs: a
// self-signed certificate for the server's address and "localhost"
// (cert.pem, also as ca.pem for receivers to trust) and its key
// (priv.key). With signing it adds resource-signing keys: sign.key
// (Ed25519, PKCS #8) with sign.pub, and sign-rsa.key (RSA 2048, PKCS #8,
// what nghq's cavage signatures use) with sign-rsa.pub.
func writeCerts(dir string, server netip.Addr, signing bool) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "h3m interop server"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost", "server", "server4", "server6", "server46"},
		IPAddresses:           []net.IP{server.AsSlice(), net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	files := map[string][]byte{
		"cert.pem": certPEM,
		"ca.pem":   certPEM,
		"priv.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
	if signing {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if err := addKeyPair(files, "sign", priv, pub); err != nil {
			return err
		}
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		if err := addKeyPair(files, "sign-rsa", rk, &rk.PublicKey); err != nil {
			return err
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func addKeyPair(files map[string][]byte, name string, priv, pub any) error {
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	files[name+".key"] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	files[name+".pub"] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder})
	return nil
}
