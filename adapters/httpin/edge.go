package httpin

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"

	"github.com/figway/figway/gateway"
)

// admit runs the edge checks of r's route (auth, rate_limit) on req and
// leaves req's headers as they pass on: the headers of the token's claims
// in place of any the caller sent, the token removed unless forwarded. It
// returns the admission, nil for a route without checks.
func (s *Server) admit(rt *gateway.Route, req *http.Request) (*gateway.Admission, error) {
	if !rt.Checked() {
		return nil, nil
	}
	adm, err := s.gw.Admit(req.Context(), rt, gateway.Caller{Header: req.Header.Values, IP: remoteIP(req)})
	if err != nil || adm == nil {
		return nil, err
	}
	req.Header = req.Header.Clone()
	for _, k := range adm.Remove {
		req.Header.Del(k)
	}
	for _, kv := range adm.Add {
		req.Header.Add(kv[0], kv[1])
	}
	return adm, nil
}

// withClaims adds the claims' headers of adm to md, the metadata a call
// that may go to the legacy gRPC service takes there (grpc-gateway's
// header matcher passes only its own choice of headers).
func withClaims(md metadata.MD, adm *gateway.Admission) metadata.MD {
	if adm == nil {
		return md
	}
	md = md.Copy()
	if md == nil {
		md = metadata.MD{}
	}
	for _, k := range adm.Remove {
		delete(md, k)
	}
	for _, kv := range adm.Add {
		md.Append(kv[0], kv[1])
	}
	return md
}

// guard is the handler of a binding of a to: legacy route with edge
// checks: the checks, then the passthrough.
func (s *Server) guard(rt *router, b *binding) runtime.HandlerFunc {
	return probed(func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		s.onRoute(r.Context(), b.method)
		if _, err := s.admit(b.route, r); err != nil {
			s.failed(rt, b, w, r, err)
			return
		}
		s.opts.Passthrough.ServeHTTP(w, r)
	})
}

// challenge returns w for an answer refused by the edge checks, with
// their headers: WWW-Authenticate (RFC 6750: no error code when there was
// no token) and Retry-After. grpc-gateway's error handler sets
// WWW-Authenticate to the status message of every UNAUTHENTICATED answer;
// the writer returned puts the challenge back as the header is written.
func challenge(w http.ResponseWriter, err error) http.ResponseWriter {
	var ae *gateway.AuthError
	var rl *gateway.RateLimitError
	switch {
	case errors.As(err, &ae) && ae.Missing():
		return challenged{w, "Bearer"}
	case errors.As(err, &ae):
		return challenged{w, `Bearer error="invalid_token", error_description="` + quotable(ae.Err.Error()) + `"`}
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
	}
	return w
}

// challenged is a ResponseWriter whose WWW-Authenticate is the challenge.
type challenged struct {
	http.ResponseWriter
	challenge string
}

func (c challenged) WriteHeader(code int) {
	c.Header().Set("WWW-Authenticate", c.challenge)
	c.ResponseWriter.WriteHeader(code)
}

func (c challenged) Write(b []byte) (int, error) {
	if c.Header().Get("WWW-Authenticate") != c.challenge {
		c.WriteHeader(http.StatusUnauthorized) // a Write without WriteHeader
	}
	return c.ResponseWriter.Write(b)
}

// quotable makes s fit a quoted-string: printable ASCII without quote
// and backslash.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, s)
}

// remoteIP is the address of the request's client, without its port (the
// connection's: X-Forwarded-For is not trusted).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
