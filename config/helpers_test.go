package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The test API, acme.v1, is built here rather than taken from the example
// service, so that these tests depend on nothing else of the repository:
//
//	service OrderService {
//	  rpc GetOrder(GetOrderRequest) returns (Order) { option (google.api.http) = {get: "/v1/orders/{order_id}"}; }
//	  rpc PlaceOrder(PlaceOrderRequest) returns (PlaceOrderResponse);
//	  rpc ListOrders(ListOrdersRequest) returns (ListOrdersResponse);
//	  rpc WatchOrders(GetOrderRequest) returns (stream Order);
//	  rpc UploadOrders(stream Order) returns (PlaceOrderResponse);
//	  rpc Chat(stream Order) returns (stream Order);
//	}
const apiFile = "acme/v1/orders.proto"

func apiProto() *descriptorpb.FileDescriptorProto {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	repeated := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	fieldOf := func(name string, n int32, typ *descriptorpb.FieldDescriptorProto_Type, label *descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ, Label: label, JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	message := func(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
	}
	method := func(name, in, out string, clientStream, serverStream bool) *descriptorpb.MethodDescriptorProto {
		return &descriptorpb.MethodDescriptorProto{
			Name:            proto.String(name),
			InputType:       proto.String(".acme.v1." + in),
			OutputType:      proto.String(".acme.v1." + out),
			ClientStreaming: proto.Bool(clientStream),
			ServerStreaming: proto.Bool(serverStream),
		}
	}
	get := method("GetOrder", "GetOrderRequest", "Order", false, false)
	get.Options = &descriptorpb.MethodOptions{}
	proto.SetExtension(get.Options, annotations.E_Http, &annotations.HttpRule{
		Pattern: &annotations.HttpRule_Get{Get: "/v1/orders/{order_id}"},
	})
	return &descriptorpb.FileDescriptorProto{
		Name:       proto.String(apiFile),
		Package:    proto.String("acme.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/api/annotations.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			message("Filter", fieldOf("status", 1, str, optional, "")),
			message("GetOrderRequest",
				fieldOf("order_id", 1, str, optional, ""),
				fieldOf("filter", 2, msg, optional, ".acme.v1.Filter"),
				fieldOf("tags", 3, str, repeated, "")),
			message("Order",
				fieldOf("id", 1, str, optional, ""),
				fieldOf("status", 2, str, optional, "")),
			message("PlaceOrderRequest", fieldOf("order", 1, msg, optional, ".acme.v1.Order")),
			message("PlaceOrderResponse", fieldOf("id", 1, str, optional, "")),
			message("ListOrdersRequest", fieldOf("page_size", 1, descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum(), optional, "")),
			message("ListOrdersResponse", fieldOf("orders", 1, msg, repeated, ".acme.v1.Order")),
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("OrderService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				get,
				method("PlaceOrder", "PlaceOrderRequest", "PlaceOrderResponse", false, false),
				method("ListOrders", "ListOrdersRequest", "ListOrdersResponse", false, false),
				method("WatchOrders", "GetOrderRequest", "Order", false, true),
				method("UploadOrders", "Order", "PlaceOrderResponse", true, false),
				method("Chat", "Order", "Order", true, true),
			},
		}},
	}
}

// importsProto are the files that apiProto imports, as buf build would
// put them in the set.
func importsProto() []*descriptorpb.FileDescriptorProto {
	return []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(descriptorpb.File_google_protobuf_descriptor_proto),
		protodesc.ToFileDescriptorProto(annotations.File_google_api_http_proto),
		protodesc.ToFileDescriptorProto(annotations.File_google_api_annotations_proto),
	}
}

// writeSet writes a FileDescriptorSet of files to dir/name.
func writeSet(t testing.TB, dir, name string, files ...*descriptorpb.FileDescriptorProto) string {
	t.Helper()
	data, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, string(data))
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// apiDir returns a directory that holds api.binpb, the full acme.v1 set
// with its imports.
func apiDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	writeSet(t, dir, "api.binpb", append(importsProto(), apiProto())...)
	return dir
}

// fieldErrors returns the problems joined in err.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]*FieldError, 0, len(errs))
	for _, e := range errs {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %q (%T) is not a *FieldError", e, e)
		}
		out = append(out, fe)
	}
	return out
}
