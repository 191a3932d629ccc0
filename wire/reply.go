package wire

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrBadMetadata is wrapped by the errors of [ReplyMetadata] and
// [SetReplyMetadata] when reply metadata cannot be carried: a key that is
// no gRPC metadata key, a value that is not text, an HTTP status outside
// 200–299.
var ErrBadMetadata = errors.New("bad reply metadata")

// ReplyMeta is what a reply says besides its body and status: response
// header and trailer metadata, as gRPC callers get them, and the HTTP
// status REST callers get on success. Keys are lower case; the values of
// a key ending in "-bin" are binary, as in gRPC.
type ReplyMeta struct {
	Header, Trailer map[string][]string
	// HTTPStatus is 0 (the REST ingress's own choice) or 200–299.
	HTTPStatus int
}

// IsZero reports whether m carries nothing.
func (m ReplyMeta) IsZero() bool {
	return len(m.Header) == 0 && len(m.Trailer) == 0 && m.HTTPStatus == 0
}

// CheckMetadataKey says why key cannot be reply metadata, or returns nil:
// it must be a gRPC metadata key (lower-case letters, digits, "-", "_",
// "."), and none that gRPC or HTTP reserve (grpc-*, content-type,
// hop-by-hop headers) or that is figway's own (figway-*).
func CheckMetadataKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key %q: gRPC metadata keys are lower-case letters, digits, '-', '_' and '.'", key)
		}
	}
	switch {
	case strings.HasPrefix(key, "grpc-"):
		return fmt.Errorf("key %q is reserved for gRPC's own protocol", key)
	case strings.HasPrefix(key, "figway-"):
		return fmt.Errorf("key %q is in figway's own namespace", key)
	}
	switch key {
	case "content-type", "content-length", "connection", "keep-alive", "proxy-connection", "te",
		"trailer", "transfer-encoding", "upgrade":
		return fmt.Errorf("key %q describes the transport, which figway writes", key)
	}
	return nil
}

// SetReplyMetadata writes m into the headers of a reply: each header key
// as figway-rmd-<key>, each trailer key as figway-rmt-<key> (a string for
// one value, an array of strings for several; "-bin" values base64
// without padding, as gRPC sends them), and figway-http-status. It
// returns h, allocating it when nil and needed, or an error wrapping
// ErrBadMetadata and writing nothing.
func SetReplyMetadata(h map[string]any, m ReplyMeta) (map[string]any, error) {
	if m.HTTPStatus != 0 && (m.HTTPStatus < 200 || m.HTTPStatus > 299) {
		return h, fmt.Errorf("%w: HTTP status %d: only 200-299 can be set", ErrBadMetadata, m.HTTPStatus)
	}
	for _, md := range []map[string][]string{m.Header, m.Trailer} {
		for k := range md {
			if err := CheckMetadataKey(k); err != nil {
				return h, fmt.Errorf("%w: %v", ErrBadMetadata, err)
			}
		}
	}
	if m.IsZero() {
		return h, nil
	}
	if h == nil {
		h = map[string]any{}
	}
	put := func(prefix string, md map[string][]string) {
		for k, vs := range md {
			if len(vs) == 0 {
				continue
			}
			enc := make([]any, len(vs))
			for i, v := range vs {
				if strings.HasSuffix(k, "-bin") {
					v = base64.RawStdEncoding.EncodeToString([]byte(v))
				}
				enc[i] = v
			}
			if len(enc) == 1 {
				h[prefix+k] = enc[0]
			} else {
				h[prefix+k] = enc
			}
		}
	}
	put(HeaderReplyMetadataPrefix, m.Header)
	put(HeaderReplyTrailerPrefix, m.Trailer)
	if m.HTTPStatus != 0 {
		h[HeaderHTTPStatus] = int32(m.HTTPStatus)
	}
	return h, nil
}

// ReplyMetadata decodes the metadata of a reply written by
// [SetReplyMetadata] or a worker in any language. Values may be strings,
// bytes or arrays of them; "-bin" values base64, padded or not; the HTTP
// status any integer type or a decimal string. Its errors wrap
// ErrBadMetadata.
func ReplyMetadata(h map[string]any) (ReplyMeta, error) {
	var m ReplyMeta
	for k, v := range h {
		var md *map[string][]string
		key, ok := strings.CutPrefix(k, HeaderReplyMetadataPrefix)
		if ok {
			md = &m.Header
		} else if key, ok = strings.CutPrefix(k, HeaderReplyTrailerPrefix); ok {
			md = &m.Trailer
		} else {
			continue
		}
		if err := CheckMetadataKey(key); err != nil {
			return ReplyMeta{}, fmt.Errorf("%w: %s: %v", ErrBadMetadata, k, err)
		}
		vs, err := values(key, v)
		if err != nil {
			return ReplyMeta{}, fmt.Errorf("%w: %s: %v", ErrBadMetadata, k, err)
		}
		if *md == nil {
			*md = make(map[string][]string)
		}
		(*md)[key] = append((*md)[key], vs...)
	}
	if v, ok := h[HeaderHTTPStatus]; ok {
		n, err := integer(v)
		if err != nil {
			return ReplyMeta{}, fmt.Errorf("%w: %s %v", ErrBadMetadata, HeaderHTTPStatus, err)
		}
		if n < 200 || n > 299 {
			return ReplyMeta{}, fmt.Errorf("%w: %s %d: a reply may set 200-299 only (errors are statuses)", ErrBadMetadata, HeaderHTTPStatus, n)
		}
		m.HTTPStatus = int(n)
	}
	return m, nil
}

func values(key string, v any) ([]string, error) {
	var raw []any
	if a, ok := v.([]any); ok {
		raw = a
	} else {
		raw = []any{v}
	}
	out := make([]string, 0, len(raw))
	for _, e := range raw {
		s, err := text(e)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(key, "-bin") {
			b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
			if err != nil {
				return nil, fmt.Errorf("not base64: %v", err)
			}
			s = string(b)
		}
		out = append(out, s)
	}
	return out, nil
}

// IsShadow reports whether a request is a shadow copy: a call that legacy
// answered and figway mirrored, whose reply (if any) reaches no caller. Its
// figway-shadow header is 1 (any integer type, "1" or true).
func IsShadow(h map[string]any) bool {
	switch v := h[HeaderShadow].(type) {
	case bool:
		return v
	case nil:
		return false
	default:
		n, err := integer(v)
		return err == nil && n == 1
	}
}
