package gateway

import (
	"testing"
)

func BenchmarkTraceContext(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = traceContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "")
	}
}

func BenchmarkLookup(b *testing.B) {
	t := &Table{routes: map[string]*Route{}}
	for _, m := range []string{"a.v1.S/A", "a.v1.S/B", "orders.v1.OrderService/GetOrder", "orders.v1.OrderService/ListOrders"} {
		t.routes[m] = &Route{RouteSpec: RouteSpec{Method: m}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if t.Lookup("/orders.v1.OrderService/GetOrder") == nil {
			b.Fatal("no route")
		}
	}
}
