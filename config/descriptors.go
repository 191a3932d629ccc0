package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/figway/figway/config/yamlfile"

	// Registers the google.api.http option, so that the method options of
	// the loaded descriptors hold it as a typed extension for the REST
	// ingress, and google/api/*.proto for the imports a set leaves out.
	_ "google.golang.org/genproto/googleapis/api/annotations"
)

// descriptorSource is one file of a descriptor set and the YAML path of
// the set it came from.
type descriptorSource struct {
	path string
	fd   *descriptorpb.FileDescriptorProto
}

// loadDescriptors reads the FileDescriptorSet files listed in the routes
// file, resolving relative paths against dir, and builds them into one
// registry. It returns the absolute paths, and the registry only if all of
// it loaded: routes are not checked against half an API.
func loadDescriptors(items []yamlfile.StrItem, dir string, p *yamlfile.Problems) ([]string, *protoregistry.Files) {
	if len(items) == 0 {
		return nil, nil // reported by the decoder
	}
	var paths []string
	sets := &descriptorSets{sources: map[string]descriptorSource{}, ok: true, p: p}
	for _, it := range items {
		if it.S == "" {
			sets.problem(it.Path, "empty path")
			continue
		}
		file := it.S
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		if abs, err := filepath.Abs(file); err == nil {
			file = abs
		}
		paths = append(paths, file)
		set, err := readSet(file)
		if err != nil {
			sets.problem(it.Path, "%v", err)
			continue
		}
		sets.add(it.Path, file, set)
	}
	if !sets.ok {
		return paths, nil
	}
	b := &builder{files: new(protoregistry.Files), sources: sets.sources, state: map[string]buildState{}, p: p}
	for _, name := range sets.names {
		b.build(name)
	}
	if b.failed {
		return paths, nil
	}
	return paths, b.files
}

// descriptorSets gathers the files of the routes file's descriptor sets,
// each file once.
type descriptorSets struct {
	sources map[string]descriptorSource // by file name
	names   []string                    // of sources, in the order of the sets
	ok      bool                        // no problem found
	p       *yamlfile.Problems
}

func (s *descriptorSets) problem(path, format string, args ...any) {
	s.p.At(path, format, args...)
	s.ok = false
}

// add adds the files of set, read from file and listed at path.
func (s *descriptorSets) add(path, file string, set *descriptorpb.FileDescriptorSet) {
	if len(set.GetFile()) == 0 {
		s.problem(path, "%s holds no file descriptors; make a descriptor set with buf build -o api.binpb", file)
	}
	for i, fd := range set.GetFile() {
		name := fd.GetName()
		if name == "" {
			s.problem(path, "%s: file descriptor %d has no name", file, i)
			continue
		}
		// The same import (google/api/http.proto, say) may come with
		// several sets: the same file twice is fine, two versions not.
		if prev, dup := s.sources[name]; dup {
			if !proto.Equal(prev.fd, fd) {
				s.problem(path, "%s holds a %s that differs from the one in %s; build the sets from the same sources", file, name, prev.path)
			}
			continue
		}
		s.sources[name] = descriptorSource{path, fd}
		s.names = append(s.names, name)
	}
}

func readSet(file string) (*descriptorpb.FileDescriptorSet, error) {
	info, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file (a relative path is relative to the routes file)", file)
	}
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; want a FileDescriptorSet made with buf build -o api.binpb", file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	set := new(descriptorpb.FileDescriptorSet)
	if err := proto.Unmarshal(data, set); err != nil {
		return nil, &setError{file, err}
	}
	return set, nil
}

type setError struct {
	file string
	err  error
}

func (e *setError) Error() string {
	return e.file + " is not a FileDescriptorSet (" + e.err.Error() + "); make one with buf build -o api.binpb"
}

func (e *setError) Unwrap() error { return e.err }

type buildState int

const (
	unbuilt buildState = iota
	building
	built
	broken
)

// builder registers files after their imports. An import that no set
// holds is taken from the files compiled into figway, if it is one of
// them (google/protobuf/*.proto, google/api/*.proto): protoc leaves
// imports out unless told --include_imports.
type builder struct {
	files   *protoregistry.Files
	sources map[string]descriptorSource
	state   map[string]buildState
	failed  bool
	p       *yamlfile.Problems
}

// build registers the file name and reports whether it could.
func (b *builder) build(name string) bool {
	switch b.state[name] {
	case built:
		return true
	case broken:
		return false
	case building:
		src := b.sources[name]
		b.fail(name, src.path, "%s is part of an import cycle", name)
		return false
	}
	src, ok := b.sources[name]
	if !ok {
		return b.linked(name)
	}
	b.state[name] = building
	for _, dep := range src.fd.GetDependency() {
		if b.build(dep) {
			continue
		}
		if _, known := b.sources[dep]; !known {
			b.fail(name, src.path, "%s imports %s, which none of the descriptor sets holds; build them with buf build, or protoc --include_imports", name, dep)
		} else {
			b.state[name] = broken // the import's own problem is reported
		}
		return false
	}
	fd, err := protodesc.NewFile(src.fd, b.files)
	if err == nil {
		err = b.files.RegisterFile(fd)
	}
	if err != nil {
		b.fail(name, src.path, "%s: %v", name, err)
		return false
	}
	b.state[name] = built
	return true
}

// linked registers a file compiled into figway, and its imports.
func (b *builder) linked(name string) bool {
	fd, err := protoregistry.GlobalFiles.FindFileByPath(name)
	if err != nil {
		b.state[name] = broken
		return false
	}
	b.state[name] = building
	imports := fd.Imports()
	for i := 0; i < imports.Len(); i++ {
		if !b.build(imports.Get(i).Path()) {
			b.state[name] = broken
			return false
		}
	}
	if err := b.files.RegisterFile(fd); err != nil {
		b.fail(name, "descriptors", "%s: %v", name, err)
		return false
	}
	b.state[name] = built
	return true
}

func (b *builder) fail(name, path, format string, args ...any) {
	b.state[name] = broken
	b.failed = true
	b.p.At(path, format, args...)
}
