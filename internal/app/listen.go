package app

import (
	"crypto/tls"
	"net"
)

// withTLS returns l, through TLS when tc is not nil: HTTP/2 and HTTP/1.1
// by ALPN, and a client that does not start a handshake is disconnected,
// never served in plaintext. TLS must be the outermost layer: net/http
// finds the handshake, ALPN and client certificates only on a *tls.Conn.
func withTLS(l net.Listener, tc *tls.Config) net.Listener {
	if tc == nil {
		return l
	}
	tc = tc.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	return tls.NewListener(l, tc)
}

// listenAll opens the listeners of addrs in order; on error it closes
// those it opened.
func listenAll(open ...func() (net.Listener, error)) ([]net.Listener, error) {
	var ls []net.Listener
	for _, o := range open {
		l, err := o()
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}
