package app

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/figway/figway/config"
	"github.com/figway/figway/internal/testing/certs"
)

// TestTLSConfigs: the broker's client side carries its server name,
// client certificate and roots; the ingress side requires and verifies
// client certificates, TLS 1.2 at least.
func TestTLSConfigs(t *testing.T) {
	tc := certs.Make(t)
	cfg := &config.Config{
		Server: config.Server{TLS: &config.ServerTLS{Cert: tc.ServerCert, Key: tc.ServerKey, ClientCA: tc.CA}},
		Broker: config.Broker{TLS: &config.BrokerTLS{CA: tc.CA, Cert: tc.ClientCert, Key: tc.ClientKey, ServerName: "rabbit.internal"}},
	}
	bc, err := brokerTLS(cfg)
	if err != nil || bc.ServerName != "rabbit.internal" || len(bc.Certificates) != 1 || bc.RootCAs == nil {
		t.Errorf("brokerTLS = %+v, %v; want server name, client certificate and roots", bc, err)
	}
	sc, err := serverTLS(cfg)
	if err != nil || sc.ClientAuth != tls.RequireAndVerifyClientCert || sc.MinVersion != tls.VersionTLS12 {
		t.Errorf("serverTLS = %+v, %v; want client certificates required, TLS 1.2+", sc, err)
	}
}

// TestServerCertificateRenewal renews the certificate files under a
// running configuration: the next handshake serves the new certificate; a
// half-written renewal leaves the old one serving.
func TestServerCertificateRenewal(t *testing.T) {
	old, renewed := certs.Make(t), certs.Make(t)
	s := &config.ServerTLS{Cert: filepath.Join(t.TempDir(), "cert.pem"), Key: filepath.Join(t.TempDir(), "key.pem")}
	copyFile := func(from, to string) {
		if err := os.WriteFile(to, []byte(mustRead(t, from)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(old.ServerCert, s.Cert)
	copyFile(old.ServerKey, s.Key)
	c, err := serverTLS(&config.Config{Server: config.Server{TLS: s}})
	if err != nil {
		t.Fatal(err)
	}
	serving := func() string {
		t.Helper()
		pair, err := c.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return string(pair.Certificate[0])
	}
	first := serving()
	copyFile(renewed.ServerCert, s.Cert) // the key not yet: a mismatched pair
	if serving() != first {
		t.Error("a half-renewed pair (new certificate, old key) replaced the serving one")
	}
	copyFile(renewed.ServerKey, s.Key)
	want, _ := tls.X509KeyPair([]byte(mustRead(t, renewed.ServerCert)), []byte(mustRead(t, renewed.ServerKey)))
	if got := serving(); got != string(want.Certificate[0]) {
		t.Error("after the renewal the old certificate still serves")
	}
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
