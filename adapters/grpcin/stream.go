package grpcin

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/grpcframe"
)

// serveStream serves a call of the server-streaming route r: through to
// legacy, untouched, when its pin or canary says so; otherwise from the
// broker, each message of the worker's stream sent as it comes, and the
// end's status and trailer as the call's.
func (s *Server) serveStream(ctx context.Context, srv any, stream grpc.ServerStream, method string, r *gateway.Route, md metadata.MD) error {
	if s.legacy != nil && s.gw.StreamsToLegacy(r, call(method, nil, md)) {
		return s.legacy(srv, stream)
	}
	req, err := recvOne(stream, method)
	if err != nil {
		return err
	}
	start, sent := time.Now(), 0
	send := func(res *gateway.Result) error {
		if sent == 0 && len(res.Header) > 0 {
			if err := stream.SetHeader(res.Header); err != nil {
				return err
			}
		}
		sent++
		msg := grpcframe.Frame(res.Body)
		return stream.SendMsg(&msg)
	}
	res, err := s.gw.StreamRoute(ctx, r, call(method, req, md), send)
	if err != nil {
		return s.failed(ctx, stream, method, err)
	}
	if sent == 0 && len(res.Header) > 0 {
		if err := stream.SetHeader(res.Header); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
	}
	stream.SetTrailer(res.Trailer)
	if s.accessLog {
		s.log.LogAttrs(ctx, slog.LevelInfo, "stream",
			slog.String("method", method), slog.String("code", "OK"), slog.Int("messages", sent), slog.Duration("took", time.Since(start)))
	}
	return nil
}
