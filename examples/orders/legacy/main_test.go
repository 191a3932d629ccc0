package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
)

// TestLegacyService runs the legacy service and calls it over gRPC and REST.
func TestLegacyService(t *testing.T) {
	g, h := proc.FreeAddr(t), proc.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-grpc", g, "-http", h}, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	conn, err := grpc.NewClient(g, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := ordersv1.NewOrderServiceClient(conn)
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	var header metadata.MD
	var o *ordersv1.Order
	poll.Until(t, 3*time.Second, "the legacy service answering gRPC GetOrder(o-1)", func() bool {
		o, err = c.GetOrder(cctx, &ordersv1.GetOrderRequest{OrderId: "o-1"}, grpc.Header(&header))
		return err == nil
	})
	if err != nil || o.GetCustomerId() != "c-1" || header.Get("x-served-by")[0] != "legacy" {
		t.Fatalf("gRPC GetOrder(o-1) = %v, %v (header %v)", o, err, header)
	}
	if _, err := c.GetOrder(cctx, &ordersv1.GetOrderRequest{OrderId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("gRPC GetOrder(nope) = %v; want NotFound", err)
	}
	stream, err := c.WatchOrder(cctx, &ordersv1.WatchOrderRequest{OrderId: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := stream.Recv(); err != nil || ev.GetOrderId() != "o-1" {
		t.Errorf("WatchOrder first event = %v, %v", ev, err)
	}

	for _, tc := range []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"GET", "/v1/orders/o-1", "", 200, `"customerId":"c-1"`},
		{"GET", "/v1/orders/nope", "", 404, `not found`},
		{"GET", "/v1/orders?customer_id=c-1&status=ORDER_STATUS_PLACED", "", 200, `"orderId":"o-1"`},
		{"POST", "/v1/orders", `{"customerId":"c-2","items":[{"sku":"x","quantity":1,"unitPriceCents":"3"}]}`, 201, `"totalCents":"3"`},
		{"POST", "/v1/orders/o-1:cancel", `{"reason":"test"}`, 200, `ORDER_STATUS_CANCELLED`},
		{"POST", "/v1/orders", `{not json`, 400, `body`},
	} {
		req, _ := http.NewRequestWithContext(cctx, tc.method, "http://"+h+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.contains) {
			t.Errorf("%s %s = %d %s; want %d containing %s", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.contains)
		}
	}
}
