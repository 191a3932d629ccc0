package httpin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/figway/figway/operations"
)

// maxWait bounds ?wait= on an operation: a long poll longer than that is
// cut by proxies anyway.
const maxWait = time.Minute

// Method names the operations requests are counted under, as gRPC names
// google.longrunning.Operations' methods.
const (
	opGet    = "google.longrunning.Operations/GetOperation"
	opWait   = "google.longrunning.Operations/WaitOperation"
	opDelete = "google.longrunning.Operations/DeleteOperation"
	opList   = "google.longrunning.Operations/ListOperations"
)

func (s *Server) operationsPath() string { return s.opts.OperationsPath }

// operationRoutes binds the operations' REST paths on rt's mux: GET
// {path}/{id} (?wait=), DELETE {path}/{id}, POST {path}/{id}:cancel (the
// same as DELETE) and GET {path} (?method=, page_size, page_token).
func (s *Server) operationRoutes(rt *router, seen map[string]string) error {
	p := s.opts.OperationsPath
	var errs []error
	for _, h := range []struct {
		verb, template string
		f              runtime.HandlerFunc
	}{
		{"GET", p + "/{id}", func(w http.ResponseWriter, r *http.Request, v map[string]string) { s.getOperation(rt, w, r, v["id"]) }},
		{"DELETE", p + "/{id}", func(w http.ResponseWriter, r *http.Request, v map[string]string) {
			s.deleteOperation(rt, w, r, v["id"])
		}},
		{"POST", p + "/{id}:cancel", func(w http.ResponseWriter, r *http.Request, v map[string]string) {
			s.deleteOperation(rt, w, r, v["id"])
		}},
		{"GET", p, func(w http.ResponseWriter, r *http.Request, _ map[string]string) { s.listOperations(rt, w, r) }},
	} {
		key := h.verb + " " + h.template
		if err := rt.mux.HandlePath(h.verb, h.template, probed(h.f)); err != nil {
			errs = append(errs, fmt.Errorf("server.operations_path: %s: %v", key, err))
			continue
		}
		seen[key] = "the operations (server.operations_path)"
		rt.addVerb(h.verb)
	}
	return errors.Join(errs...)
}

func (s *Server) getOperation(rt *router, w http.ResponseWriter, r *http.Request, id string) {
	ops := s.opts.Operations
	header := r.Header.Get
	var (
		op  operations.Operation
		err error
	)
	if q := r.URL.Query().Get("wait"); q != "" {
		s.onRoute(r.Context(), opWait)
		d, perr := time.ParseDuration(q)
		if perr != nil || d < 0 {
			s.opFailed(rt, w, r, status.Errorf(codes.InvalidArgument, "wait=%q: want a duration such as 10s", q))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), min(d, maxWait))
		defer cancel()
		op, err = ops.Wait(ctx, id, header)
	} else {
		s.onRoute(r.Context(), opGet)
		op, err = ops.Get(r.Context(), id, header)
	}
	if err != nil {
		s.opFailed(rt, w, r, opError(err))
		return
	}
	body, err := s.operationJSON(rt, op)
	if err != nil {
		s.opFailed(rt, w, r, err)
		return
	}
	if !op.Done {
		w.Header().Set("Retry-After", "1")
	}
	// A done operation carries the reply's metadata as the synchronous
	// call would have (docs/rest.md): its route's response_headers under
	// their own names, the rest as Grpc-Metadata-* and Grpc-Trailer-*.
	var own map[string]bool
	var trailer metadata.MD
	if res := op.Result; op.Done && res != nil {
		if b := rt.bindingOf(op.Method); b != nil {
			own, trailer = b.ownHeaders, res.Trailer
			replyHeaders(w, r, own, res.Header, trailer)
		}
	}
	writeJSON(w, http.StatusOK, body)
	sendTrailers(w, r, own, trailer)
}

func (s *Server) deleteOperation(rt *router, w http.ResponseWriter, r *http.Request, id string) {
	s.onRoute(r.Context(), opDelete)
	if err := s.opts.Operations.Delete(r.Context(), id, r.Header.Get); err != nil {
		s.opFailed(rt, w, r, opError(err))
		return
	}
	writeJSON(w, http.StatusOK, []byte("{}"))
}

func (s *Server) listOperations(rt *router, w http.ResponseWriter, r *http.Request) {
	s.onRoute(r.Context(), opList)
	q := r.URL.Query()
	size := 50
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.opFailed(rt, w, r, status.Errorf(codes.InvalidArgument, "page_size=%q: want a whole number", v))
			return
		}
		if n > 0 {
			size = min(n, 1000)
		}
	}
	list, more := s.opts.Operations.List(q.Get("method"), r.Header.Get, q.Get("page_token"), size)
	out := struct {
		Operations    []json.RawMessage `json:"operations"`
		NextPageToken string            `json:"nextPageToken,omitempty"`
	}{Operations: []json.RawMessage{}}
	for _, op := range list {
		b, err := s.operationJSON(rt, op)
		if err != nil {
			s.opFailed(rt, w, r, err)
			return
		}
		out.Operations = append(out.Operations, b)
	}
	if more {
		out.NextPageToken = list[len(list)-1].ID
	}
	body, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, body)
}

// operationJSON renders op in the shape of google.longrunning.Operation:
// name, metadata (method, start time, deadline, end time), done, and once
// done either response — the JSON body a synchronous call would have been
// answered with — or error, a google.rpc.Status.
func (s *Server) operationJSON(rt *router, op operations.Operation) ([]byte, error) {
	type opMetadata struct {
		Method   string `json:"method"`
		Start    string `json:"startTime"`
		Deadline string `json:"deadline"`
		End      string `json:"endTime,omitempty"`
		// HTTPStatus is the 2xx status the worker set for REST callers
		// (figway-http-status), which the synchronous call would have
		// answered with.
		HTTPStatus int `json:"httpStatus,omitempty"`
	}
	out := struct {
		Name     string          `json:"name"`
		Metadata opMetadata      `json:"metadata"`
		Done     bool            `json:"done"`
		Error    json.RawMessage `json:"error,omitempty"`
		Response json.RawMessage `json:"response,omitempty"`
	}{
		Name: "operations/" + op.ID,
		Metadata: opMetadata{Method: op.Method, Start: op.Start.UTC().Format(time.RFC3339Nano),
			Deadline: op.Deadline.UTC().Format(time.RFC3339Nano)},
		Done: op.Done,
	}
	if op.Done && op.Result != nil {
		out.Metadata.End = op.DoneAt.UTC().Format(time.RFC3339Nano)
		res := op.Result
		out.Metadata.HTTPStatus = res.HTTPStatus
		var err error
		if res.Status == nil {
			b := rt.bindingOf(op.Method)
			if b == nil {
				res = &operations.Result{Status: status.Newf(codes.Internal, "%s is no longer served over REST", op.Method).Proto()}
			} else if out.Response, err = rt.render(b, res.Body, res.ContentType); err != nil {
				res = &operations.Result{Status: status.New(codes.Internal, err.Error()).Proto()}
			}
		}
		if res.Status != nil {
			st := status.FromProto(res.Status)
			if out.Error, err = rt.marshaler.Marshal(rt.renderable(st).Proto()); err != nil {
				return nil, fmt.Errorf("operation %s: encode its error: %w", op.ID, err)
			}
		}
	}
	return json.Marshal(out)
}

// bindingOf returns the first REST binding of method, or nil.
func (rt *router) bindingOf(method string) *binding {
	for _, b := range rt.bindings {
		if b.method == method {
			return b
		}
	}
	return nil
}

// opFailed answers an operations request with err, as a call's error.
func (s *Server) opFailed(rt *router, w http.ResponseWriter, r *http.Request, err error) {
	code := status.Code(err)
	if code == codes.Unavailable {
		w.Header().Set("Retry-After", "1")
	}
	rt.fail(w, r, err)
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
}
