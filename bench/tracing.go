package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// receiver is a local OTLP/gRPC trace receiver that counts the spans it
// is sent and keeps none: the backend of figway-grpc-traced, as cheap as a
// backend can be, so that the scenario measures figway's side of tracing.
type receiver struct {
	collectorpb.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (r *receiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	var n int64
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += int64(len(ss.GetSpans()))
		}
	}
	r.spans.Add(n)
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// startReceiver serves a receiver on a free loopback port.
func startReceiver() (addr string, r *receiver, stop func(), err error) {
	addr = freeAddr()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, nil, err
	}
	r = &receiver{}
	s := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(s, r)
	go s.Serve(lis)
	return addr, r, s.Stop, nil
}

// measureTraced runs figway-grpc-traced: figway-grpc's calls through a
// second figway with tracing on, every call sampled, its spans exported
// over OTLP/gRPC to a local receiver. The SDK workers stay untraced: the
// difference with figway-grpc is figway's own cost of tracing.
func measureTraced(dir, url string, channels int, id string, ps *procs, measure func(string, func(context.Context) error)) error {
	const name = "figway-grpc-traced"
	if len(selected) > 0 && !selected[name] {
		return nil
	}
	addr, r, stopReceiver, err := startReceiver()
	if err != nil {
		return err
	}
	defer stopReceiver()
	fw, err := startFigway(dir, url, channels, "", "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+addr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_TRACES_SAMPLER=always_on")
	if err != nil {
		return err
	}
	defer fw.stop()
	conn, err := dialGRPC(fw.grpc)
	if err != nil {
		return err
	}
	defer conn.Close()
	call := getOrderCall(ordersv1.NewOrderServiceClient(conn), id)
	call(context.Background())
	untraced := ps.figway
	ps.figway = fw.cmd.Process.Pid
	measure(name, call)
	ps.figway = untraced
	exported, dropped := fw.metric("figway_trace_spans_exported_total"), fw.metric(`figway_trace_spans_dropped_total{reason="queue_full"}`)
	fmt.Fprintf(os.Stderr, "  %-16s the receiver got %d spans; figway exported %.0f, dropped %.0f (queue full)\n", name, r.spans.Load(), exported, dropped)
	return nil
}
