package gateway

import (
	"slices"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// diff returns the paths of the fields that differ between a and b,
// messages of one type, leaving out the paths in ignore. A path is the
// dot-separated proto field names ("items.sku"); an ignored path applies to
// every element of a repeated field. Unknown fields are not compared.
func diff(a, b protoreflect.Message, ignore map[string]bool) []string {
	return diffAt(a, b, ignore, "", nil)
}

func diffAt(a, b protoreflect.Message, ignore map[string]bool, prefix string, out []string) []string {
	fields := a.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		path := prefix + string(fd.Name())
		if ignore[path] {
			continue
		}
		ha, hb := a.Has(fd), b.Has(fd)
		switch {
		case !ha && !hb:
			continue
		case ha != hb:
			out = append(out, path)
			continue
		}
		va, vb := a.Get(fd), b.Get(fd)
		switch {
		case fd.IsList():
			la, lb := va.List(), vb.List()
			if la.Len() != lb.Len() {
				out = append(out, path)
				continue
			}
			for j := 0; j < la.Len(); j++ {
				if fd.Message() != nil {
					n := len(out)
					out = diffAt(la.Get(j).Message(), lb.Get(j).Message(), ignore, path+".", out)
					if len(out) > n {
						break // one difference per list is enough to report
					}
				} else if !la.Get(j).Equal(lb.Get(j)) {
					out = append(out, path)
					break
				}
			}
		case fd.IsMap():
			if !va.Equal(vb) {
				out = append(out, path)
			}
		case fd.Message() != nil:
			out = diffAt(va.Message(), vb.Message(), ignore, path+".", out)
		default:
			if !va.Equal(vb) {
				out = append(out, path)
			}
		}
	}
	return out
}

// transportKeys are the metadata that gRPC itself puts in a reply's header
// and trailer (legacy's come through grpc-go): they say nothing about the
// service's answer and are not compared.
var transportKeys = map[string]bool{"content-type": true, "date": true, "server": true, "user-agent": true}

// diffMetadata returns "header.<key>" (or "trailer.<key>") for each key
// whose values differ between legacy's metadata a and the worker's b,
// leaving out ignored keys and those of the transport.
func diffMetadata(kind string, a, b metadata.MD, ignore map[string]bool) []string {
	var out []string
	seen := map[string]bool{}
	for _, md := range []metadata.MD{a, b} {
		for k := range md {
			if seen[k] || ignore[k] || transportKeys[k] || strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, ":") {
				continue
			}
			seen[k] = true
			if !slices.Equal(a[k], b[k]) {
				out = append(out, kind+"."+k)
			}
		}
	}
	slices.Sort(out)
	return out
}
