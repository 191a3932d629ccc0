package orders_test

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/descriptorpb"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// loadSet reads orders.binpb, the descriptor set that scripts/gen.sh builds
// next to this file, and resolves it the way figway does at start-up.
func loadSet(t *testing.T) (*descriptorpb.FileDescriptorSet, *protoregistry.Files) {
	t.Helper()
	b, err := os.ReadFile("orders.binpb")
	if err != nil {
		t.Fatal(err)
	}
	set := new(descriptorpb.FileDescriptorSet)
	// The annotations package is linked in, so google.api.http options are
	// parsed as extensions here rather than kept as unknown fields.
	if err := proto.Unmarshal(b, set); err != nil {
		t.Fatalf("unmarshal orders.binpb: %v", err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("protodesc.NewFiles(orders.binpb): %v", err)
	}
	return set, files
}

func orderService(t *testing.T, files *protoregistry.Files) protoreflect.ServiceDescriptor {
	t.Helper()
	const name = "orders.v1.OrderService"
	d, err := files.FindDescriptorByName(name)
	if err != nil {
		t.Fatalf("FindDescriptorByName(%q): %v", name, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		t.Fatalf("FindDescriptorByName(%q) = %T; want a service", name, d)
	}
	return sd
}

// TestDescriptorSetMatchesGeneratedCode proves that the committed gen/ and
// orders.binpb were built from the same orders.proto.
func TestDescriptorSetMatchesGeneratedCode(t *testing.T) {
	set, files := loadSet(t)
	path := orderService(t, files).ParentFile().Path()

	var got *descriptorpb.FileDescriptorProto
	for _, f := range set.GetFile() {
		if f.GetName() == path {
			got = proto.CloneOf(f)
		}
	}
	if got == nil {
		t.Fatalf("orders.binpb has no file %q", path)
	}
	// The set keeps source info so that reflection shows the doc comments;
	// protoc-gen-go strips it from the descriptor it embeds.
	got.SourceCodeInfo = nil

	want := protodesc.ToFileDescriptorProto(ordersv1.File_orders_v1_orders_proto)
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("%s in orders.binpb differs from gen/orders/v1 (-gen +binpb); run scripts/gen.sh:\n%s", path, diff)
	}
}

// TestDescriptorSetIsSelfContained checks that the set carries its imports:
// figway loads it alone, without any other descriptors.
func TestDescriptorSetIsSelfContained(t *testing.T) {
	_, files := loadSet(t)
	for _, path := range []string{
		"orders/v1/orders.proto",
		"google/api/annotations.proto",
		"google/api/http.proto",
		"google/protobuf/descriptor.proto",
		"google/protobuf/timestamp.proto",
	} {
		if _, err := files.FindFileByPath(path); err != nil {
			t.Errorf("FindFileByPath(%q): %v", path, err)
		}
	}
}

func TestHTTPRules(t *testing.T) {
	_, files := loadSet(t)
	methods := orderService(t, files).Methods()
	for _, tt := range []struct {
		method string
		want   *annotations.HttpRule
	}{
		{"GetOrder", &annotations.HttpRule{
			Pattern: &annotations.HttpRule_Get{Get: "/v1/orders/{order_id}"},
		}},
		{"ListOrders", &annotations.HttpRule{
			Pattern: &annotations.HttpRule_Get{Get: "/v1/orders"},
		}},
		{"PlaceOrder", &annotations.HttpRule{
			Pattern: &annotations.HttpRule_Post{Post: "/v1/orders"},
			Body:    "*",
		}},
		{"CancelOrder", &annotations.HttpRule{
			Pattern: &annotations.HttpRule_Post{Post: "/v1/orders/{order_id}:cancel"},
			Body:    "*",
		}},
		{"WatchOrder", nil},
	} {
		t.Run(tt.method, func(t *testing.T) {
			m := methods.ByName(protoreflect.Name(tt.method))
			if m == nil {
				t.Fatalf("OrderService has no method %s", tt.method)
			}
			var got *annotations.HttpRule
			if proto.HasExtension(m.Options(), annotations.E_Http) {
				got = proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("google.api.http of %s (-want +got):\n%s", m.FullName(), diff)
			}
		})
	}
}

func TestStreaming(t *testing.T) {
	_, files := loadSet(t)
	methods := orderService(t, files).Methods()
	for _, tt := range []struct {
		method         string
		client, server bool
	}{
		{"GetOrder", false, false},
		{"ListOrders", false, false},
		{"PlaceOrder", false, false},
		{"CancelOrder", false, false},
		{"WatchOrder", false, true},
	} {
		t.Run(tt.method, func(t *testing.T) {
			m := methods.ByName(protoreflect.Name(tt.method))
			if m == nil {
				t.Fatalf("OrderService has no method %s", tt.method)
			}
			if got := m.IsStreamingClient(); got != tt.client {
				t.Errorf("%s IsStreamingClient() = %v; want %v", m.FullName(), got, tt.client)
			}
			if got := m.IsStreamingServer(); got != tt.server {
				t.Errorf("%s IsStreamingServer() = %v; want %v", m.FullName(), got, tt.server)
			}
		})
	}
}

// TestDocComments checks that the set keeps the comments that grpcurl
// describe shows through figway's server reflection.
func TestDocComments(t *testing.T) {
	_, files := loadSet(t)
	sd := orderService(t, files)
	descs := []protoreflect.Descriptor{sd}
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		descs = append(descs, m, m.Input(), m.Output())
	}
	for _, d := range descs {
		loc := d.ParentFile().SourceLocations().ByDescriptor(d)
		if loc.LeadingComments == "" {
			t.Errorf("%s has no leading comment in orders.binpb", d.FullName())
		}
	}
}
