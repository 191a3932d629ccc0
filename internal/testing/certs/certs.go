// Package certs makes throwaway certificates for TLS tests: a CA, a
// server certificate for localhost and 127.0.0.1, and a client
// certificate, written as PEM files into a test's temporary directory.
// Nothing is committed; every run makes fresh keys.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Set is the paths of the PEM files Make wrote, and the pool of its CA.
type Set struct {
	CA                    string // the CA's certificate
	ServerCert, ServerKey string // for localhost and 127.0.0.1, signed by the CA
	ClientCert, ClientKey string // CN figway-test-client, signed by the CA
	// OtherCA is a second CA, which signed OtherClientCert: a client
	// certificate the server must refuse.
	OtherClientCert, OtherClientKey string

	Pool *x509.CertPool // holds CA
}

// Make writes a fresh Set into a temporary directory of t.
func Make(t testing.TB) *Set {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := authority(t, "figway test CA")
	other, otherKey := authority(t, "some other CA")
	s := &Set{
		CA:              filepath.Join(dir, "ca.pem"),
		ServerCert:      filepath.Join(dir, "server.pem"),
		ServerKey:       filepath.Join(dir, "server-key.pem"),
		ClientCert:      filepath.Join(dir, "client.pem"),
		ClientKey:       filepath.Join(dir, "client-key.pem"),
		OtherClientCert: filepath.Join(dir, "other-client.pem"),
		OtherClientKey:  filepath.Join(dir, "other-client-key.pem"),
		Pool:            x509.NewCertPool(),
	}
	s.Pool.AddCert(ca)
	writeCert(t, s.CA, ca.Raw)
	leaf(t, s.ServerCert, s.ServerKey, ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	leaf(t, s.ClientCert, s.ClientKey, ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "figway-test-client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	leaf(t, s.OtherClientCert, s.OtherClientKey, other, otherKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "stranger"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return s
}

// ClientConfig returns a client TLS configuration trusting the CA, with
// the client certificate when withCert is set.
func (s *Set) ClientConfig(t testing.TB, withCert bool) *tls.Config {
	t.Helper()
	c := &tls.Config{RootCAs: s.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(s.ClientCert, s.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c
}

var serial int64

func template(cn string) *x509.Certificate {
	serial++
	return &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano() + serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func authority(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := template(cn)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func leaf(t testing.TB, certFile, keyFile string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	base := template(tmpl.Subject.CommonName)
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = base.SerialNumber, base.NotBefore, base.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writeCert(t, certFile, der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, keyFile, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeCert(t testing.TB, file string, der []byte) {
	write(t, file, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func write(t testing.TB, file string, b *pem.Block) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(b), 0o600); err != nil {
		t.Fatal(err)
	}
}
