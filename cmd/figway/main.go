// Command figway is the strangler-fig gateway: it serves legacy gRPC calls
// by bridging each routed method to RabbitMQ, per a routes file.
//
//	figway serve    -config figway.yaml   # run the gateway (the default)
//	figway validate -config figway.yaml   # exit 0, or every problem with its field path, exit 1
//	figway routes   -config figway.yaml   # print the resolved route table
//	figway openapi  -config figway.yaml   # print the OpenAPI document of the REST bindings
//	figway ramp status|pause|resume|promote|rollback [method]   # through the admin listener
//	figway version
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/figway/figway/config"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/internal/app"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: figway <command> [flags]

commands:
  serve     run the gateway (the default)
  validate  check a routes file: exit 0, or print every problem and exit 1
  routes    print the resolved route table
  openapi   print the OpenAPI 3.1 document of the REST bindings
  ramp      status|pause|resume|promote|rollback: read or drive the ramps
  version   print figway's version

Run 'figway <command> -h' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serveCmd(args, stderr)
	case "validate":
		return validateCmd(args, stdout, stderr)
	case "routes":
		return routesCmd(args, stdout, stderr)
	case "openapi":
		return openapiCmd(args, stdout, stderr)
	case "ramp":
		return rampCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "figway %s %s\n", versionString(), runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "figway: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// configFlag parses the flags every command shares.
func configFlag(name string, args []string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("figway "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "figway.yaml", "routes file")
	return fs, path
}

// loadTable parses the command's -config flag, loads the routes file and
// builds its route table. A code other than 0 is the command's exit code:
// 2 for bad flags, 1 for a file that does not load (its problems printed).
func loadTable(name string, args []string, stderr io.Writer) (*config.Config, *gateway.Table, int) {
	fs, path := configFlag(name, args, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, nil, 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printProblems(stderr, *path, err)
		return nil, nil, 1
	}
	t, err := cfg.Table(nil)
	if err != nil {
		fmt.Fprintln(stderr, "figway:", err)
		return nil, nil, 1
	}
	return cfg, t, 0
}

func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs, path := configFlag("validate", args, stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := config.Load(*path); err != nil {
		printProblems(stderr, *path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

// printProblems prints each problem of a failed load on a line of its own.
func printProblems(w io.Writer, path string, err error) {
	ps := app.Problems(err)
	fmt.Fprintf(w, "%s: %d problem(s)\n", path, len(ps))
	for _, p := range ps {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

func routesCmd(args []string, stdout, stderr io.Writer) int {
	_, t, code := loadTable("routes", args, stderr)
	if code != 0 {
		return code
	}
	printRoutes(stdout, t)
	return 0
}

func printRoutes(w io.Writer, t *gateway.Table) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tGOES TO\tPATTERN\tEXCHANGE\tROUTING KEY\tTIMEOUT\tENCODING\tMAX IN FLIGHT\tFORWARD")
	for _, r := range t.Routes() {
		if !r.Publishes() {
			fmt.Fprintf(tw, "%s\tlegacy\t-\t-\t-\t-\t-\t-\t-\n", r.Method)
			continue
		}
		ex := r.Exchange
		if ex == "" {
			ex = `""`
		}
		fwd := strings.Join(r.Forward, ",")
		if fwd == "" {
			fwd = "-"
		}
		pattern := string(r.Pattern)
		if r.Streams() {
			pattern = "stream" // an rpc request answered by a stream of replies
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			r.Method, r.GoesTo(), pattern, ex, r.RoutingKey, r.Timeout, r.Encoding, r.MaxInFlight(), fwd)
	}
	tw.Flush()
}
