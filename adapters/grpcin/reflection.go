package grpcin

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// RegisterReflection serves gRPC server reflection (v1 and v1alpha) for the
// services of files, which figway serves without having them compiled in,
// so that grpcurl and other tools need no proto files.
func RegisterReflection(s *grpc.Server, files *protoregistry.Files) {
	RegisterLiveReflection(s, func() *protoregistry.Files { return files })
}

// RegisterLiveReflection is RegisterReflection for descriptors that change
// while the server runs (a reload): every reflection request answers from
// what files returns then.
func RegisterLiveReflection(s *grpc.Server, files func() *protoregistry.Files) {
	l := &live{files: files}
	opts := reflection.ServerOptions{Services: l, DescriptorResolver: l, ExtensionResolver: l}
	reflectionv1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
}

// live answers reflection from the current descriptors, with the service
// list and extension index built once per set of descriptors.
type live struct {
	files func() *protoregistry.Files

	mu    sync.Mutex
	of    *protoregistry.Files // what names and types were built from
	names services
	types *protoregistry.Types
}

func (l *live) current() (*protoregistry.Files, services, *protoregistry.Types) {
	f := l.files()
	l.mu.Lock()
	defer l.mu.Unlock()
	if f != l.of {
		l.of, l.names, l.types = f, serviceNames(f), extensions(f)
	}
	return f, l.names, l.types
}

func (l *live) GetServiceInfo() map[string]grpc.ServiceInfo {
	_, names, _ := l.current()
	return names
}

// The lookups below answer from the current descriptors first, then from
// what figway is built with (protoregistry.GlobalFiles): the health and
// reflection services that the service list names are compiled in, not in
// the descriptor sets, and a client that lists them resolves them next.

func (l *live) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	f, _, _ := l.current()
	if fd, err := f.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (l *live) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	f, _, _ := l.current()
	if d, err := f.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

func (l *live) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	_, _, t := l.current()
	if x, err := t.FindExtensionByName(name); err == nil {
		return x, nil
	}
	return protoregistry.GlobalTypes.FindExtensionByName(name)
}

func (l *live) FindExtensionByNumber(message protoreflect.FullName, n protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	_, _, t := l.current()
	if x, err := t.FindExtensionByNumber(message, n); err == nil {
		return x, nil
	}
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, n)
}

func (l *live) RangeExtensionsByMessage(message protoreflect.FullName, f func(protoreflect.ExtensionType) bool) {
	_, _, t := l.current()
	if t.NumExtensionsByMessage(message) > 0 {
		t.RangeExtensionsByMessage(message, f)
		return
	}
	protoregistry.GlobalTypes.RangeExtensionsByMessage(message, f)
}

// serviceNames lists figway's own services and those of files.
func serviceNames(files *protoregistry.Files) services {
	names := services{
		healthpb.Health_ServiceDesc.ServiceName:                    {},
		reflectionv1.ServerReflection_ServiceDesc.ServiceName:      {},
		reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName: {},
	}
	files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := 0; i < f.Services().Len(); i++ {
			names[string(f.Services().Get(i).FullName())] = grpc.ServiceInfo{}
		}
		return true
	})
	return names
}

// extensions registers every extension declared in files, for reflection's
// extension queries (dynamicpb.Types cannot range over them).
func extensions(files *protoregistry.Files) *protoregistry.Types {
	t := new(protoregistry.Types)
	var add func(protoreflect.ExtensionDescriptors)
	var walk func(protoreflect.MessageDescriptors)
	add = func(xs protoreflect.ExtensionDescriptors) {
		for i := 0; i < xs.Len(); i++ {
			_ = t.RegisterExtension(dynamicpb.NewExtensionType(xs.Get(i)))
		}
	}
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			add(ms.Get(i).Extensions())
			walk(ms.Get(i).Messages())
		}
	}
	files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		add(f.Extensions())
		walk(f.Messages())
		return true
	})
	return t
}

type services map[string]grpc.ServiceInfo

func (s services) GetServiceInfo() map[string]grpc.ServiceInfo { return s }

// RegisterHealth serves grpc.health.v1 and returns its server, whose
// overall status ("") the caller keeps in step with readiness.
func RegisterHealth(s *grpc.Server) *health.Server {
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	return h
}
