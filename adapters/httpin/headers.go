package httpin

import (
	"net/http"
	"strings"
)

// forwardable returns the Call.Header lookup of a request. The gateway
// asks only for the route's forward_headers, which config refuses to hold
// hop-by-hop, cc/bcc, grpc-* or figway-* names; the lookup refuses them
// again, and the headers that the request's Connection header names, so
// that no routes file can forward what describes one connection or would
// add RabbitMQ routing keys (sender-selected distribution).
func forwardable(h http.Header) func(string) []string {
	return func(key string) []string {
		if never(key) || connectionListed(h, key) {
			return nil
		}
		return h.Values(key)
	}
}

// never reports whether a lower-case header name may never go on a
// message.
func never(key string) bool {
	switch key {
	case "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "host",
		"cc", "bcc":
		return true
	}
	return strings.HasPrefix(key, "proxy-") || strings.HasPrefix(key, "grpc-") || strings.HasPrefix(key, "figway-")
}

// connectionListed reports whether the Connection header names key, which
// makes it hop-by-hop (RFC 9110 §7.6.1).
func connectionListed(h http.Header, key string) bool {
	for _, v := range h.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), key) {
				return true
			}
		}
	}
	return false
}
