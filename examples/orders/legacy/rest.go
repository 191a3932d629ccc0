package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// rest serves the legacy REST API: the paths of the google.api.http rules
// in orders.proto, written by hand as legacy services are.
func (s *service) rest() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		o, err := s.GetOrder(r.Context(), &ordersv1.GetOrderRequest{OrderId: r.PathValue("id")})
		reply(w, http.StatusOK, o, err)
	})
	mux.HandleFunc("GET /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := &ordersv1.ListOrdersRequest{CustomerId: q.Get("customer_id"), PageToken: q.Get("page_token")}
		if v := q.Get("page_size"); v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				reply(w, 0, nil, status.Errorf(codes.InvalidArgument, "page_size %q is not a number", v))
				return
			}
			req.PageSize = int32(n)
		}
		if v := q.Get("status"); v != "" {
			st, ok := ordersv1.OrderStatus_value[v]
			if !ok {
				reply(w, 0, nil, status.Errorf(codes.InvalidArgument, "unknown status %q", v))
				return
			}
			req.Status = ordersv1.OrderStatus(st)
		}
		resp, err := s.ListOrders(r.Context(), req)
		reply(w, http.StatusOK, resp, err)
	})
	mux.HandleFunc("POST /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		req := &ordersv1.PlaceOrderRequest{}
		if !decode(w, r, req) {
			return
		}
		o, err := s.PlaceOrder(r.Context(), req)
		if err == nil {
			w.Header().Set("Location", "/v1/orders/"+o.GetOrderId())
		}
		reply(w, http.StatusCreated, o, err)
	})
	mux.HandleFunc("POST /v1/orders/{idAndVerb}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutSuffix(r.PathValue("idAndVerb"), ":cancel")
		if !ok {
			http.NotFound(w, r)
			return
		}
		req := &ordersv1.CancelOrderRequest{}
		if !decode(w, r, req) {
			return
		}
		req.OrderId = id
		o, err := s.CancelOrder(r.Context(), req)
		reply(w, http.StatusOK, o, err)
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, m proto.Message) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil && len(b) > 0 {
		err = protojson.Unmarshal(b, m)
	}
	if err != nil {
		reply(w, 0, nil, status.Errorf(codes.InvalidArgument, "body: %v", err))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, code int, m proto.Message, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Served-By", "legacy")
	if err != nil {
		st := status.Convert(err)
		w.WriteHeader(httpCode(st.Code()))
		b, _ := protojson.Marshal(st.Proto())
		w.Write(b)
		return
	}
	w.WriteHeader(code)
	w.Write(compactJSON(m))
}

// compactJSON is protojson's rendering of m without the spaces it adds at
// random to keep callers from depending on its bytes: the answers of this
// service and of figway are compared byte for byte.
func compactJSON(m proto.Message) []byte {
	b, _ := protojson.Marshal(m)
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

func httpCode(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}
