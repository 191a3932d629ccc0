package legacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// NewHTTP returns a reverse proxy to the legacy REST service at target (an
// absolute http or https URL; a path in it prefixes every request's path).
// It is net/http/httputil.ReverseProxy: hop-by-hop headers are dropped,
// X-Forwarded-For/-Host/-Proto set, bodies streamed both ways without
// buffering. An upstream that cannot be reached answers 502; one that does
// not answer before the request's deadline, 504. Each wrap, if any, wraps
// the transport to the upstream (tracing's CLIENT span).
func NewHTTP(target string, log *slog.Logger, wrap ...func(http.RoundTripper) http.RoundTripper) (http.Handler, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("legacy HTTP upstream %q: want an absolute http(s) URL", target)
	}
	if log == nil {
		log = slog.Default()
	}
	var transport http.RoundTripper = &http.Transport{
		Proxy:                 nil, // the legacy service is reached directly
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	for _, w := range wrap {
		transport = w(transport)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
		},
		FlushInterval: -1, // flush at once: streaming responses stay streaming
		Transport:     transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				code = http.StatusGatewayTimeout
			}
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the caller went away; nobody reads an answer
			}
			log.Warn("legacy HTTP upstream failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
			http.Error(w, http.StatusText(code), code)
		},
	}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
