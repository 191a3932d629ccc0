package httpin

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
)

// replyHeaders writes the reply metadata of a call (the worker's, or
// legacy's) as grpc-gateway does a backend's: header keys as
// Grpc-Metadata-<key>, and — for a caller that accepts trailers (TE:
// trailers) — trailer keys as Grpc-Trailer-<key>, declared here and sent
// by [sendTrailers]. Keys that the route lists in response_headers come
// under their own name instead, as headers, trailers included: a REST
// client expects Location or ETag there. Binary ("-bin") values are
// base64, which an HTTP header can carry.
func replyHeaders(w http.ResponseWriter, r *http.Request, own map[string]bool, header, trailer metadata.MD) {
	h := w.Header()
	for k, vs := range header {
		name := runtime.MetadataHeaderPrefix + k
		if own[k] {
			name = k
			h.Del(name) // the worker's value replaces figway's own
		}
		for _, v := range vs {
			h.Add(name, headerValue(k, v))
		}
	}
	for k, vs := range trailer {
		switch {
		case own[k]:
			for _, v := range vs {
				h.Add(k, headerValue(k, v))
			}
		case acceptsTrailers(r):
			h.Add("Trailer", runtime.MetadataTrailerPrefix+k)
		}
	}
}

// sendTrailers sets the trailers that replyHeaders declared, once the body
// is written.
func sendTrailers(w http.ResponseWriter, r *http.Request, own map[string]bool, trailer metadata.MD) {
	if len(trailer) == 0 || !acceptsTrailers(r) {
		return
	}
	for k, vs := range trailer {
		if own[k] {
			continue
		}
		for _, v := range vs {
			w.Header().Add(runtime.MetadataTrailerPrefix+k, headerValue(k, v))
		}
	}
}

// acceptsTrailers is grpc-gateway's test: the request's TE header names
// trailers.
func acceptsTrailers(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("TE")), "trailers")
}

func headerValue(key, v string) string {
	if strings.HasSuffix(key, "-bin") {
		return base64.StdEncoding.EncodeToString([]byte(v))
	}
	return v
}

// bodyless reports whether an answer with HTTP status code has no body
// (RFC 9110 §15.3.5, §15.3.6).
func bodyless(code int) bool {
	return code == http.StatusNoContent || code == http.StatusResetContent
}
