package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOpenAPICommand prints the demo's OpenAPI document: JSON, OpenAPI
// 3.1, every REST binding of the demo's routes.
func TestOpenAPICommand(t *testing.T) {
	code, stdout, stderr := runCLI("openapi", "-config", "../../examples/orders/figway.yaml")
	if code != 0 {
		t.Fatalf("figway openapi = %d: %s", code, stderr)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("figway openapi printed no JSON: %v\n%s", err, stdout)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q; want 3.1.0", doc.OpenAPI)
	}
	for path, verb := range map[string]string{"/v1/orders": "post", "/v1/orders/{order_id}": "get", "/v1/orders/{order_id}:cancel": "post"} {
		if doc.Paths[path][verb] == nil {
			t.Errorf("no %s %s in the document", verb, path)
		}
	}
	if code, _, stderr := runCLI("openapi", "-config", "no-such-file.yaml"); code != 1 || !strings.Contains(stderr, "no-such-file.yaml") {
		t.Errorf("figway openapi -config no-such-file.yaml = %d %q; want 1 naming the file", code, stderr)
	}
}
