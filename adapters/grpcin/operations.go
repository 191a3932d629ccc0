package grpcin

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/figway/figway/gateway"
	"github.com/figway/figway/operations"
	"github.com/figway/figway/wire"
)

// maxWait bounds WaitOperation when its timeout is unset or longer.
const maxWait = time.Minute

// Operations serves google.longrunning.Operations for the async operations
// that the REST ingress started (docs/rest.md, "Long calls"), so that
// gRPC tooling can poll them too. An operation's owner header is read from
// the call's metadata.
type Operations struct {
	longrunningpb.UnimplementedOperationsServer
	store *operations.Store
	table func() *gateway.Table
}

// RegisterOperations registers google.longrunning.Operations on s, serving
// store; table returns the route table serving now, whose descriptors type
// the operations' responses.
func RegisterOperations(s *grpc.Server, store *operations.Store, table func() *gateway.Table) *Operations {
	o := &Operations{store: store, table: table}
	longrunningpb.RegisterOperationsServer(s, o)
	return o
}

func header(ctx context.Context) func(string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return func(k string) string { return first(md.Get(k)) }
}

// opID takes the id out of an operation name, "operations/{id}" (a bare
// id is taken too).
func opID(name string) string { return strings.TrimPrefix(name, "operations/") }

// GetOperation returns the latest state of an operation.
func (o *Operations) GetOperation(ctx context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	op, err := o.store.Get(ctx, opID(req.GetName()), header(ctx))
	if err != nil {
		return nil, opStatus(err)
	}
	replyMetadata(ctx, op)
	return o.operation(op), nil
}

// WaitOperation waits until the operation is done or its timeout (at most
// a minute) has passed, and returns its latest state.
func (o *Operations) WaitOperation(ctx context.Context, req *longrunningpb.WaitOperationRequest) (*longrunningpb.Operation, error) {
	wait := maxWait
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "timeout: %v", t)
		}
		wait = min(t.AsDuration(), maxWait)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	op, err := o.store.Wait(wctx, opID(req.GetName()), header(ctx))
	if err != nil {
		return nil, opStatus(err)
	}
	replyMetadata(ctx, op)
	return o.operation(op), nil
}

// replyMetadata sends a done operation's reply metadata as the response
// headers and trailers of the call that reads it, as the synchronous call
// would have been answered (docs/rest.md, "Long calls").
func replyMetadata(ctx context.Context, op operations.Operation) {
	if res := op.Result; op.Done && res != nil {
		if len(res.Header) > 0 {
			_ = grpc.SetHeader(ctx, metadata.MD(res.Header))
		}
		if len(res.Trailer) > 0 {
			_ = grpc.SetTrailer(ctx, metadata.MD(res.Trailer))
		}
	}
}

// DeleteOperation forgets an operation; its reply, when it comes, is
// dropped.
func (o *Operations) DeleteOperation(ctx context.Context, req *longrunningpb.DeleteOperationRequest) (*emptypb.Empty, error) {
	if err := o.store.Delete(ctx, opID(req.GetName()), header(ctx)); err != nil {
		return nil, opStatus(err)
	}
	return &emptypb.Empty{}, nil
}

// CancelOperation is DeleteOperation: figway cannot take back a request
// that a worker may have started, but it forgets the operation.
func (o *Operations) CancelOperation(ctx context.Context, req *longrunningpb.CancelOperationRequest) (*emptypb.Empty, error) {
	return o.DeleteOperation(ctx, &longrunningpb.DeleteOperationRequest{Name: req.GetName()})
}

// ListOperations lists the operations the caller may read, oldest first.
// filter may name a method: method = "orders.v1.OrderService/Export".
func (o *Operations) ListOperations(ctx context.Context, req *longrunningpb.ListOperationsRequest) (*longrunningpb.ListOperationsResponse, error) {
	method, err := methodFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size <= 0 {
		size = 50
	}
	list, more := o.store.List(method, header(ctx), req.GetPageToken(), min(size, 1000))
	out := &longrunningpb.ListOperationsResponse{}
	for _, op := range list {
		out.Operations = append(out.Operations, o.operation(op))
	}
	if more {
		out.NextPageToken = list[len(list)-1].ID
	}
	return out, nil
}

// methodFilter reads a filter of the form method = "pkg.Service/Method"
// (quotes optional); "" lists every method.
func methodFilter(f string) (string, error) {
	f = strings.TrimSpace(f)
	if f == "" {
		return "", nil
	}
	k, v, ok := strings.Cut(f, "=")
	if !ok || strings.TrimSpace(k) != "method" {
		return "", status.Errorf(codes.InvalidArgument, "filter %q: only method = \"pkg.Service/Method\" is supported", f)
	}
	return strings.Trim(strings.TrimSpace(v), `"`), nil
}

// operation renders op: metadata is a google.protobuf.Struct (method,
// start_time, deadline, end_time), response the reply message.
func (o *Operations) operation(op operations.Operation) *longrunningpb.Operation {
	md := map[string]any{
		"method":     op.Method,
		"start_time": op.Start.UTC().Format(time.RFC3339Nano),
		"deadline":   op.Deadline.UTC().Format(time.RFC3339Nano),
	}
	if op.Done {
		md["end_time"] = op.DoneAt.UTC().Format(time.RFC3339Nano)
		if res := op.Result; res != nil && res.HTTPStatus != 0 {
			md["http_status"] = res.HTTPStatus
		}
	}
	out := &longrunningpb.Operation{Name: "operations/" + op.ID, Done: op.Done}
	if st, err := structpb.NewStruct(md); err == nil {
		out.Metadata, _ = anypb.New(st)
	}
	if !op.Done || op.Result == nil {
		return out
	}
	res := op.Result
	if res.Status == nil {
		resp, err := o.response(op.Method, res)
		if err == nil {
			out.Result = &longrunningpb.Operation_Response{Response: resp}
			return out
		}
		res = &operations.Result{Status: status.New(codes.Internal, err.Error()).Proto()}
	}
	out.Result = &longrunningpb.Operation_Error{Error: res.Status}
	return out
}

// response packs a reply as an Any of the method's output type, in
// protobuf whatever the route's encoding.
func (o *Operations) response(method string, res *operations.Result) (*anypb.Any, error) {
	t := o.table()
	r := t.Lookup(method)
	if r == nil {
		return nil, fmt.Errorf("%s is no longer routed", method)
	}
	body := res.Body
	if res.ContentType == wire.ContentTypeJSON {
		m := dynamicpb.NewMessage(r.Output)
		if err := (protojson.UnmarshalOptions{Resolver: t.Types(), DiscardUnknown: true}).Unmarshal(body, m); err != nil {
			return nil, fmt.Errorf("%s: decode the reply: %v", method, err)
		}
		var err error
		if body, err = proto.Marshal(m); err != nil {
			return nil, fmt.Errorf("%s: encode the reply: %v", method, err)
		}
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(r.Output.FullName()), Value: body}, nil
}

// opStatus gives the errors of the operations Store their gRPC status.
func opStatus(err error) error { return status.Error(operations.Code(err), err.Error()) }

// WithOperationsFiles returns files as RegisterLiveReflection takes them,
// with google/longrunning/operations.proto and its imports added, so that
// reflection shows google.longrunning.Operations too. It builds one
// registry per set of files.
func WithOperationsFiles(files func() *protoregistry.Files) func() *protoregistry.Files {
	var (
		mu     sync.Mutex
		of     *protoregistry.Files
		merged *protoregistry.Files
	)
	return func() *protoregistry.Files {
		f := files()
		mu.Lock()
		defer mu.Unlock()
		if f != of {
			of, merged = f, withFile(f, longrunningpb.File_google_longrunning_operations_proto)
		}
		return merged
	}
}

// withFile returns a registry of files and fd with the imports files lacks.
func withFile(files *protoregistry.Files, fd protoreflect.FileDescriptor) *protoregistry.Files {
	out := new(protoregistry.Files)
	files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		out.RegisterFile(f)
		return true
	})
	var add func(protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if _, err := out.FindFileByPath(f.Path()); err == nil {
			return
		}
		for i := range f.Imports().Len() {
			add(f.Imports().Get(i).FileDescriptor)
		}
		out.RegisterFile(f)
	}
	add(fd)
	return out
}
