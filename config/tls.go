package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/figway/figway/config/yamlfile"
)

// ServerTLS makes the gRPC and HTTP ingress listeners speak TLS only
// (YAML server.tls). There is no plaintext fallback: a client that does
// not start a TLS handshake is disconnected. The admin listener stays
// plain HTTP, for probes and scrapes on a private address.
type ServerTLS struct {
	// Cert and Key are PEM files: the server's certificate chain and its
	// private key. Both are required. Relative paths are relative to the
	// routes file.
	Cert, Key string

	// ClientCA, if set, is a PEM file of the certificate authorities that
	// sign client certificates (YAML client_ca): every client must then
	// present a certificate that one of them signed. If ClientCA is empty,
	// clients are not asked for one.
	ClientCA string
}

// BrokerTLS configures TLS to RabbitMQ (YAML broker.tls). When it is set,
// every broker URL must be amqps://: figway never falls back to plaintext.
// amqps:// URLs without it verify the broker against the system's roots.
type BrokerTLS struct {
	// CA is a PEM file of the authorities that sign the broker's
	// certificate. If CA is empty, the system's roots are used.
	CA string

	// Cert and Key are PEM files of a client certificate and its key, for
	// brokers that verify their clients (or log them in with
	// rabbitmq_auth_mechanism_ssl). Both or neither.
	Cert, Key string

	// ServerName is the name the broker's certificate must carry (YAML
	// server_name). If ServerName is empty, the host of the URL is used.
	ServerName string
}

// CertPool reads a PEM file of CA certificates (server.tls.client_ca,
// broker.tls.ca).
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

func (d *decoder) serverTLS(v *yamlfile.Value, path string) *ServerTLS {
	if v == nil || v.Kind == yamlfile.Null {
		return nil
	}
	f := d.Fields(v, path, "cert", "key", "client_ca")
	s := &ServerTLS{
		Cert:     d.Str(f["cert"], yamlfile.Field(path, "cert")),
		Key:      d.Str(f["key"], yamlfile.Field(path, "key")),
		ClientCA: d.Str(f["client_ca"], yamlfile.Field(path, "client_ca")),
	}
	if f["cert"] == nil {
		d.P.Once(yamlfile.Field(path, "cert"), "required: the server's certificate chain, a PEM file")
	}
	if f["key"] == nil {
		d.P.Once(yamlfile.Field(path, "key"), "required: the private key of cert, a PEM file")
	}
	return s
}

func (d *decoder) brokerTLS(v *yamlfile.Value, path string) *BrokerTLS {
	if v == nil || v.Kind == yamlfile.Null {
		return nil
	}
	f := d.Fields(v, path, "ca", "cert", "key", "server_name")
	b := &BrokerTLS{
		CA:         d.Str(f["ca"], yamlfile.Field(path, "ca")),
		Cert:       d.Str(f["cert"], yamlfile.Field(path, "cert")),
		Key:        d.Str(f["key"], yamlfile.Field(path, "key")),
		ServerName: d.Str(f["server_name"], yamlfile.Field(path, "server_name")),
	}
	switch {
	case f["cert"] != nil && f["key"] == nil:
		d.P.Once(yamlfile.Field(path, "key"), "required with cert: the private key of the client certificate")
	case f["key"] != nil && f["cert"] == nil:
		d.P.Once(yamlfile.Field(path, "cert"), "required with key: the client certificate")
	}
	return b
}

// checkTLS resolves the TLS files against dir (the routes file's folder),
// loads them to report what would fail at start, and refuses amqp:// URLs
// next to broker.tls.
func checkTLS(c *Config, dir string, p *yamlfile.Problems) {
	if s := c.Server.TLS; s != nil {
		s.Cert, s.Key, s.ClientCA = abs(dir, s.Cert), abs(dir, s.Key), abs(dir, s.ClientCA)
		if s.Cert != "" && s.Key != "" && !p.Reported["server.tls.cert"] && !p.Reported["server.tls.key"] {
			if _, err := tls.LoadX509KeyPair(s.Cert, s.Key); err != nil {
				p.At("server.tls.cert", "cannot load the certificate and key: %v", err)
			}
		}
		if s.ClientCA != "" {
			if _, err := CertPool(s.ClientCA); err != nil {
				p.At("server.tls.client_ca", "%v", err)
			}
		}
	}
	b := c.Broker.TLS
	if b == nil {
		return
	}
	b.CA, b.Cert, b.Key = abs(dir, b.CA), abs(dir, b.Cert), abs(dir, b.Key)
	if b.CA != "" {
		if _, err := CertPool(b.CA); err != nil {
			p.At("broker.tls.ca", "%v", err)
		}
	}
	if b.Cert != "" && b.Key != "" {
		if _, err := tls.LoadX509KeyPair(b.Cert, b.Key); err != nil {
			p.At("broker.tls.cert", "cannot load the client certificate and key: %v", err)
		}
	}
	for i, u := range c.Broker.URLs {
		if !strings.HasPrefix(strings.ToLower(u), "amqps://") {
			path := "broker.url"
			if len(c.Broker.URLs) > 1 || p.Lines["broker.urls"] != 0 {
				path = yamlfile.Index("broker.urls", i)
			}
			p.At(path, "%v", errPlaintext)
		}
	}
}

var errPlaintext = errors.New("broker.tls is set: want an amqps:// URL (figway does not fall back to plaintext)")

func abs(dir, file string) string {
	if file == "" || filepath.IsAbs(file) {
		return file
	}
	if a, err := filepath.Abs(filepath.Join(dir, file)); err == nil {
		return a
	}
	return filepath.Join(dir, file)
}
