package grpcin

import (
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
	names := map[string]grpc.ServiceInfo{
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
	opts := reflection.ServerOptions{
		Services:           services(names),
		DescriptorResolver: files,
		ExtensionResolver:  extensions(files),
	}
	reflectionv1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
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
