package main

import (
	"fmt"
	"io"

	"github.com/figway/figway/adapters/httpin"
	"github.com/figway/figway/internal/app"
)

// openapiCmd prints the OpenAPI document of the REST bindings of a routes
// file, as the REST listener serves it on server.openapi_path.
func openapiCmd(args []string, stdout, stderr io.Writer) int {
	cfg, t, code := loadTable("openapi", args, stderr)
	if code != 0 {
		return code
	}
	doc, err := httpin.OpenAPI(t, app.RESTOptions(cfg, versionString()))
	if err != nil {
		fmt.Fprintln(stderr, "figway: REST bindings:", err)
		return 1
	}
	stdout.Write(doc)
	fmt.Fprintln(stdout)
	return 0
}
