package yamlfile

import "testing"

func TestSuggest(t *testing.T) {
	known := []string{"timeout", "to", "max_in_flight", "forward_headers"}
	tests := []struct{ in, want string }{
		{"timout", "timeout"},
		{"Timeout", "timeout"},
		{"max_inflight", "max_in_flight"},
		{"forward_header", "forward_headers"},
		{"t", "to"},
		{"colour", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Suggest(tt.in, known); got != tt.want {
			t.Errorf("Suggest(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
