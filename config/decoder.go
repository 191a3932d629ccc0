package config

import "github.com/figway/figway/config/yamlfile"

// decoder turns the routes file's value tree into a Config. It checks each
// value on its own with the methods of [yamlfile.Decoder] and records the
// line of every path it sees; checks that involve several values are
// validate's.
type decoder struct {
	*yamlfile.Decoder

	// descriptors are the paths listed by the key descriptors, as written.
	descriptors []yamlfile.StrItem

	// broken holds the paths of list items that were not mappings (a
	// route written as a string, say): validate skips them rather than
	// report every field of them missing.
	broken map[string]bool
}

// object is fields for an item of a list, which it marks broken when it is
// not a mapping.
func (d *decoder) object(v *yamlfile.Value, path string, known ...string) map[string]*yamlfile.Value {
	if v.Kind != yamlfile.Mapping {
		d.broken[path] = true
	}
	if v.Kind == yamlfile.Null {
		d.WrongType(v, path, "a mapping")
	}
	return d.Fields(v, path, known...)
}
