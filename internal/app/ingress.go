package app

import (
	"crypto/tls"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/metrics"
)

// RESTOptions are the REST ingress's options that come from the routes
// file; version is the OpenAPI document's info.version.
func RESTOptions(cfg *config.Config, version string) httpin.Options {
	o := httpin.Options{
		MaxRequestBytes: cfg.Server.MaxRequestBytes,
		UseProtoNames:   cfg.Server.JSON.ProtoNames,
		EmitUnpopulated: cfg.Server.JSON.EmitUnpopulated,
		DiscardUnknown:  cfg.Server.JSON.DiscardUnknown,
		Version:         version,

		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
	}
	if cfg.Server.OpenAPIPath != config.OpenAPIOff {
		o.OpenAPIPath = cfg.Server.OpenAPIPath
	}
	return o
}

// restCORS is the REST ingress's CORS policy from server.cors, or nil.
func restCORS(c *config.CORS) *httpin.CORS {
	if c == nil {
		return nil
	}
	return &httpin.CORS{AllowOrigins: c.AllowOrigins, AllowHeaders: c.AllowHeaders, ExposeHeaders: c.ExposeHeaders,
		AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
}

// grpcServerOptions are the gRPC ingress's metrics interceptor and, when
// tc is not nil, its TLS credentials (no plaintext fallback).
func grpcServerOptions(m *metrics.Metrics, gw *gateway.Gateway, tc *tls.Config) []grpc.ServerOption {
	o := []grpc.ServerOption{grpc.ChainStreamInterceptor(m.StreamInterceptor(metrics.GRPCRoutes(gw.Table)))}
	if tc != nil {
		o = append(o, grpc.Creds(credentials.NewTLS(tc)))
	}
	return o
}
