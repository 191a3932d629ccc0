package httpin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/figway/figway/gateway"
)

// ContentTypeEventStream is the media type of a stream answered as
// server-sent events, when the caller's Accept asks for it.
const ContentTypeEventStream = "text/event-stream"

// streamWriter writes the messages of a server-streaming call as they
// come, each flushed: newline-delimited JSON as grpc-gateway writes it —
// {"result": message} per message and {"error": status} for a failed end
// — or, for a caller that accepts text/event-stream, one event per
// message ("data: message") and an "error" event for a failed end
// (docs/rest.md, "Streaming methods").
type streamWriter struct {
	rt    *router
	b     *binding
	w     http.ResponseWriter
	r     *http.Request
	rc    *http.ResponseController
	sse   bool
	wrote bool // the answer's status and headers are out
}

// stream runs the call c of b's server-streaming route and writes its
// messages to w; a failure, before the first message or after the last,
// ends the answer as {"error": status}, as grpc-gateway ends a stream
// (with the error's HTTP status when nothing was written yet). It returns
// nil: it has answered, errors included.
func (s *Server) stream(ctx context.Context, rt *router, b *binding, w http.ResponseWriter, r *http.Request, c *gateway.Call) error {
	sw := &streamWriter{rt: rt, b: b, w: w, r: r, rc: http.NewResponseController(w),
		sse: strings.Contains(r.Header.Get("Accept"), ContentTypeEventStream)}
	_, err := s.gw.StreamRoute(ctx, b.route, c, sw.send)
	if err == nil {
		if !sw.wrote {
			sw.head(nil)
		}
		return nil
	}
	code := gateway.Code(err)
	s.log.LogAttrs(ctx, gateway.LogLevel(code), "stream failed", slog.String("method", b.method),
		slog.String("code", code.String()), slog.Bool("began", sw.wrote), slog.String("err", err.Error()))
	sw.fail(err)
	return nil
}

// head writes the status and headers of the answer, with the reply's
// header metadata.
func (sw *streamWriter) head(res *gateway.Result) {
	if res != nil {
		replyHeaders(sw.w, sw.r, sw.b.ownHeaders, res.Header, nil)
	}
	ct := sw.rt.marshaler.ContentType(nil)
	if sw.sse {
		ct = ContentTypeEventStream
		sw.w.Header().Set("Cache-Control", "no-cache")
	}
	sw.w.Header().Set("Content-Type", ct)
	sw.w.WriteHeader(http.StatusOK)
	sw.wrote = true
}

// send writes one message of the stream and flushes it.
func (sw *streamWriter) send(res *gateway.Result) error {
	out, err := sw.rt.render(sw.b, res.Body, res.ContentType)
	if err != nil {
		return err
	}
	if !sw.wrote {
		sw.head(res)
	}
	if sw.sse {
		err = sw.write([]byte("data: "), out, []byte("\n\n"))
	} else {
		err = sw.write([]byte(`{"result":`), out, []byte("}\n"))
	}
	if err != nil {
		return err
	}
	return sw.rc.Flush()
}

func (sw *streamWriter) write(parts ...[]byte) error {
	for _, p := range parts {
		if _, err := sw.w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// fail ends the stream with err: {"error": status} as grpc-gateway writes
// it (with the status's HTTP code when nothing was written yet), or an
// "error" event.
func (sw *streamWriter) fail(err error) {
	st := gateway.Status(err)
	if len(st.Proto().GetDetails()) > 0 || !utf8.ValidString(st.Message()) {
		st = sw.rt.renderable(st)
	}
	body, merr := sw.rt.marshaler.Marshal(st.Proto())
	body = compact(body)
	if merr != nil {
		body = []byte(`{"code":13,"message":"failed to marshal the error"}`)
	}
	if !sw.wrote {
		if re := (*gateway.ReplyError)(nil); errors.As(err, &re) {
			replyHeaders(sw.w, sw.r, sw.b.ownHeaders, re.Header, nil)
		}
		sw.w.Header().Set("Content-Type", sw.rt.marshaler.ContentType(nil))
		if sw.sse {
			sw.w.Header().Set("Content-Type", ContentTypeEventStream)
		}
		sw.w.WriteHeader(httpStatus(err))
		sw.wrote = true
	}
	if sw.sse {
		sw.write([]byte("event: error\ndata: "), body, []byte("\n\n"))
	} else {
		sw.write([]byte(`{"error":`), body, []byte("}\n"))
	}
	sw.rc.Flush()
}
