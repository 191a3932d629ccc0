package config

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/figway/figway/config/yamlfile"
)

// percent returns an integer from 0 to 100, or nil when the key is absent;
// what says what the percentage is of.
func (d *decoder) percent(v *yamlfile.Value, path, what string) *int {
	if v == nil || v.Kind == yamlfile.Null {
		return nil
	}
	n, ok := v.V.(int64)
	if !ok || v.Kind != yamlfile.Scalar {
		d.WrongType(v, path, "an integer from 0 to 100")
		return nil
	}
	if n < 0 || n > 100 {
		d.P.At(path, "must be from 0 to 100 (the percentage of %s), not %d", what, n)
		return nil
	}
	w := int(n)
	return &w
}

// shadow decodes shadow: true (every call mirrored), false, or {percent:
// N} (a sample of N% of the calls).
func (d *decoder) shadow(v *yamlfile.Value, path string) (on bool, percent int) {
	if v == nil || v.Kind == yamlfile.Null {
		return false, 0
	}
	if v.Kind == yamlfile.Mapping {
		f := d.Fields(v, path, "percent")
		p := d.percent(f["percent"], yamlfile.Field(path, "percent"), "calls mirrored")
		if p == nil {
			if f["percent"] == nil {
				d.P.At(yamlfile.Field(path, "percent"), "required: the percentage of calls mirrored, 0 to 100 (or write shadow: true for all)")
			}
			return true, 0
		}
		return true, *p
	}
	if b, ok := v.V.(bool); ok && v.Kind == yamlfile.Scalar {
		if b {
			return true, 100
		}
		return false, 0
	}
	d.WrongType(v, path, "true, false or {percent: N}")
	return false, 0
}

// fieldPaths returns a list of dot-separated field paths, such as
// created_at or items.sku.
func (d *decoder) fieldPaths(v *yamlfile.Value, path string) []string {
	items, _ := d.Strs(v, path)
	var out []string
	for _, it := range items {
		out = append(out, it.S)
	}
	return out
}

// validateMigration checks the keys that move a method between legacy and
// the broker step by step: canary weight, sticky key, shadow comparison.
func validateMigration(c *Config, r *Route, path string, p *yamlfile.Problems) {
	hasGRPCLegacy := c.Legacy.GRPC != ""
	if r.Weight != nil {
		switch {
		case r.To != TargetBroker:
			p.Once(yamlfile.Field(path, "weight"), "a canary weight splits the calls of a broker route between the broker and legacy; this route sends every call to legacy")
		case !hasGRPCLegacy:
			p.Once(yamlfile.Field(path, "weight"), "a canary sends the rest of the calls to legacy: set legacy.grpc")
		}
	}
	if r.StickyBy != "" {
		if r.Weight == nil && r.Ramp == nil && (!r.Shadow || r.ShadowPercent == 100) {
			p.Once(yamlfile.Field(path, "sticky_by"), "sticky_by keeps a caller on one side of a canary split, or in or out of a shadow sample: set weight, ramp, or shadow: {percent: N}")
		} else if err := checkHeader(r.StickyBy); err != nil {
			p.Once(yamlfile.Field(path, "sticky_by"), "%v", err)
		}
	}
	if r.Compare {
		if !r.Shadow {
			p.Once(yamlfile.Field(path, "compare"), "compare checks a shadow copy's reply against legacy's: set shadow: true")
		}
		if !hasGRPCLegacy {
			p.Once(yamlfile.Field(path, "compare"), "compare needs legacy's reply as a message: set legacy.grpc")
		}
	}
	if len(r.IgnoreFields) > 0 && !r.Compare {
		p.Once(yamlfile.Field(path, "ignore_fields"), "ignore_fields lists fields left out of a shadow comparison: set compare: true")
	}
	if len(r.IgnoreMetadata) > 0 && !r.Compare {
		p.Once(yamlfile.Field(path, "ignore_metadata"), "ignore_metadata lists reply metadata left out of a shadow comparison: set compare: true")
	}
	if r.Desc != nil {
		for i, f := range r.IgnoreFields {
			if !hasFieldPath(r.Desc.Output(), f) {
				p.At(yamlfile.Index(yamlfile.Field(path, "ignore_fields"), i), "%s has no field %q (use proto field names, dot-separated for nested fields)", r.Desc.Output().FullName(), f)
			}
		}
	}
}

// hasFieldPath reports whether md has the dot-separated field path f.
func hasFieldPath(md protoreflect.MessageDescriptor, f string) bool {
	parts := strings.Split(f, ".")
	for i, name := range parts {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return false
		}
		if i < len(parts)-1 {
			if fd.Message() == nil {
				return false
			}
			md = fd.Message()
		}
	}
	return true
}
