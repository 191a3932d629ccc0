package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestLoadDescriptors(t *testing.T) {
	const routes = "broker: {url: \"amqp://h\"}\nroutes: [{method: acme.v1.OrderService/GetOrder, routing_key: k}]\n"
	tests := []struct {
		name        string
		setup       func(t *testing.T, dir string) // writes the sets
		descriptors string
		want        []string
	}{{
		name:        "missing key",
		setup:       func(*testing.T, string) {},
		descriptors: "",
		want:        []string{"descriptors: required: list the FileDescriptorSet files"},
	}, {
		name:        "empty list",
		setup:       func(*testing.T, string) {},
		descriptors: "descriptors: []\n",
		want:        []string{"descriptors (line 1): required"},
	}, {
		name:        "not a list",
		setup:       func(*testing.T, string) {},
		descriptors: "descriptors: api.binpb\n",
		want:        []string{`descriptors (line 1): want a list, not "api.binpb"`},
	}, {
		name: "with imports",
		setup: func(t *testing.T, dir string) {
			writeSet(t, dir, "api.binpb", append(importsProto(), apiProto())...)
		},
		descriptors: "descriptors: [api.binpb]\n",
	}, {
		name: "imports compiled into figway",
		setup: func(t *testing.T, dir string) {
			writeSet(t, dir, "api.binpb", apiProto()) // protoc without --include_imports
		},
		descriptors: "descriptors: [api.binpb]\n",
	}, {
		name: "split sets, one import twice",
		setup: func(t *testing.T, dir string) {
			writeSet(t, dir, "sub/google.binpb", importsProto()...)
			writeSet(t, dir, "acme.binpb", append(importsProto()[:1], apiProto())...)
		},
		descriptors: "descriptors: [sub/google.binpb, acme.binpb]\n",
	}, {
		name: "absolute path",
		setup: func(t *testing.T, dir string) {
			writeSet(t, dir, "api.binpb", apiProto())
		},
		descriptors: "descriptors: [ABS/api.binpb]\n",
	}, {
		name:        "no such file",
		setup:       func(*testing.T, string) {},
		descriptors: "descriptors: [nothere.binpb]\n",
		want:        []string{"descriptors[0] (line 1): DIR/nothere.binpb: no such file (a relative path is relative to the routes file)"},
	}, {
		name:        "directory",
		setup:       func(*testing.T, string) {},
		descriptors: "descriptors: [.]\n",
		want:        []string{"descriptors[0] (line 1): DIR is not a regular file; want a FileDescriptorSet made with buf build -o api.binpb"},
	}, {
		name:        "not a set",
		setup:       func(t *testing.T, dir string) { writeFile(t, dir, "api.yaml", "openapi: 3.0.0\n") },
		descriptors: "descriptors: [api.yaml]\n",
		want:        []string{"descriptors[0] (line 1): DIR/api.yaml is not a FileDescriptorSet ("},
	}, {
		name:        "empty set",
		setup:       func(t *testing.T, dir string) { writeFile(t, dir, "api.binpb", "") },
		descriptors: "descriptors: [api.binpb]\n",
		want:        []string{"descriptors[0] (line 1): DIR/api.binpb holds no file descriptors"},
	}, {
		name:        "empty path",
		setup:       func(*testing.T, string) {},
		descriptors: "descriptors: [\"\"]\n",
		want:        []string{"descriptors[0] (line 1): empty path"},
	}, {
		name: "import missing",
		setup: func(t *testing.T, dir string) {
			fd := apiProto()
			fd.Dependency = append(fd.Dependency, "acme/v1/common.proto")
			writeSet(t, dir, "api.binpb", fd)
		},
		descriptors: "descriptors: [api.binpb]\n",
		want: []string{"descriptors[0] (line 1): acme/v1/orders.proto imports acme/v1/common.proto, which none of the descriptor sets holds; " +
			"build them with buf build, or protoc --include_imports"},
	}, {
		name: "two versions of a file",
		setup: func(t *testing.T, dir string) {
			writeSet(t, dir, "a.binpb", apiProto())
			fd := apiProto()
			fd.MessageType = append(fd.MessageType, &descriptorpb.DescriptorProto{Name: proto.String("Extra")})
			writeSet(t, dir, "b.binpb", fd)
		},
		descriptors: "descriptors:\n  - a.binpb\n  - b.binpb\n",
		want:        []string{"descriptors[1] (line 3): DIR/b.binpb holds a acme/v1/orders.proto that differs from the one in descriptors[0]"},
	}, {
		name: "invalid file",
		setup: func(t *testing.T, dir string) {
			fd := apiProto()
			fd.Service[0].Method[0].InputType = proto.String(".acme.v1.Nope")
			writeSet(t, dir, "api.binpb", fd)
		},
		descriptors: "descriptors: [api.binpb]\n",
		want:        []string{`descriptors[0] (line 1): acme/v1/orders.proto: `},
	}, {
		name: "unnamed file",
		setup: func(t *testing.T, dir string) {
			writeSet(t, dir, "api.binpb", &descriptorpb.FileDescriptorProto{Package: proto.String("x")})
		},
		descriptors: "descriptors: [api.binpb]\n",
		want:        []string{"descriptors[0] (line 1): DIR/api.binpb: file descriptor 0 has no name"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			path := writeFile(t, dir, "figway.yaml", strings.ReplaceAll(tt.descriptors, "ABS", dir)+routes)
			for i := range tt.want {
				tt.want[i] = strings.ReplaceAll(tt.want[i], "DIR", dir)
			}
			c, err := Load(path)
			checkProblems(t, "Load("+path+")", err, tt.want)
			if err != nil {
				return
			}
			if want := filepath.Join(dir, filepath.Base(c.Descriptors[len(c.Descriptors)-1])); c.Descriptors[len(c.Descriptors)-1] != want {
				t.Errorf("Load(%q).Descriptors = %q; want absolute paths ending with %q", path, c.Descriptors, want)
			}
			if r, _ := c.Route("acme.v1.OrderService/GetOrder"); r.Desc == nil || r.Desc.Input().Fields().ByName("order_id") == nil {
				t.Errorf("Load(%q): route has Desc %v; want acme.v1.OrderService.GetOrder", path, r.Desc)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figway.yaml")
	_, err := Load(path)
	var fe *FieldError
	if !errors.As(err, &fe) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%q) = %v; want a *FieldError wrapping fs.ErrNotExist", path, err)
	}
}
