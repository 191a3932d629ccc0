package app

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"

	"github.com/figway/figway/config"
)

// serverTLS returns the TLS configuration of the ingress listeners, or nil
// for plaintext: TLS 1.2 at least, client certificates required and
// verified when server.tls.client_ca is set. The certificate follows its
// files: when they change (a renewal), the next handshake loads the pair
// again; a pair that does not load leaves the previous one serving.
func serverTLS(cfg *config.Config) (*tls.Config, error) {
	s := cfg.Server.TLS
	if s == nil {
		return nil, nil
	}
	r := &certReloader{cert: s.Cert, key: s.Key}
	if _, err := r.load(); err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}
	if s.ClientCA != "" {
		pool, err := config.CertPool(s.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("server.tls: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// brokerTLS returns the TLS configuration of amqps:// connections, or nil
// for the AMQP client's default (the system's roots).
func brokerTLS(cfg *config.Config) (*tls.Config, error) {
	b := cfg.Broker.TLS
	if b == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: b.ServerName}
	if b.CA != "" {
		pool, err := config.CertPool(b.CA)
		if err != nil {
			return nil, fmt.Errorf("broker.tls: %w", err)
		}
		c.RootCAs = pool
	}
	if b.Cert != "" {
		cert, err := tls.LoadX509KeyPair(b.Cert, b.Key)
		if err != nil {
			return nil, fmt.Errorf("broker.tls: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// certReloader serves a key pair from files, loading it again when their
// size or modification time changes.
type certReloader struct {
	cert, key string

	mu    sync.Mutex
	stamp string
	pair  *tls.Certificate
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	pair, err := r.load()
	if pair != nil {
		return pair, nil // the previous pair, if the new files do not load
	}
	return nil, err
}

// load returns the current pair, loading the files again if they changed.
func (r *certReloader) load() (*tls.Certificate, error) {
	stamp := ""
	for _, f := range []string{r.cert, r.key} {
		if fi, err := os.Stat(f); err == nil {
			stamp += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pair != nil && stamp == r.stamp {
		return r.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return r.pair, err
	}
	r.pair, r.stamp = &pair, stamp
	return r.pair, nil
}
