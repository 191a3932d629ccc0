package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/figway/figway/config"
)

const rampUsage = `usage: figway ramp status|pause|resume|promote|rollback [flags] [package.Service/Method]

Reads or drives the ramps through a figway's admin listener (server.admin of
the routes file, or -admin). pause, resume, promote and rollback name the
route's method; status shows every ramp, or one.
`

// rampCmd is figway ramp: GET /v1/ramps and POST
// /v1/ramps/{method}:{action} on the admin listener.
func rampCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, rampUsage)
		return 2
	}
	action, args := args[0], args[1:]
	fs := flag.NewFlagSet("figway ramp "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "figway.yaml", "routes file: its server.admin and server.admin_token_file")
	admin := fs.String("admin", "", "admin listener `host:port` (default: the routes file's server.admin)")
	tokenFile := fs.String("token-file", "", "`file` of the admin token (default: the routes file's server.admin_token_file)")
	reason := fs.String("reason", "", "why, recorded with the change")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	method := fs.Arg(0)
	switch action {
	case "status":
	case "pause", "resume", "promote", "rollback":
		if method == "" {
			fmt.Fprintf(stderr, "figway ramp %s: name the route's method, such as orders.v1.OrderService/ListOrders\n", action)
			return 2
		}
	default:
		fmt.Fprintf(stderr, "figway ramp: unknown action %q\n\n%s", action, rampUsage)
		return 2
	}
	addr, token, ok := rampAdmin(stderr, *path, *admin, *tokenFile)
	if !ok {
		return 1
	}
	body, code, err := rampRequest(addr, token, action, method, *reason)
	if err != nil {
		fmt.Fprintln(stderr, "figway ramp:", err)
		return 1
	}
	if code != http.StatusOK {
		fmt.Fprintf(stderr, "figway ramp %s: %d %s\n", action, code, strings.TrimSpace(string(body)))
		return 1
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	return printRamps(stdout, stderr, body, action, method)
}

// rampAdmin returns the admin listener and the token figway ramp uses:
// admin and the token in tokenFile, or for what they leave out, the
// server.admin and server.admin_token_file of the routes file at path.
// It tells stderr why when it cannot.
func rampAdmin(stderr io.Writer, path, admin, tokenFile string) (addr, token string, ok bool) {
	addr = admin
	if admin == "" || tokenFile == "" {
		cfg, err := config.Load(path)
		if err != nil {
			printProblems(stderr, path, err)
			return "", "", false
		}
		if addr == "" {
			addr = cfg.Server.Admin
		}
		token = string(cfg.Server.AdminToken)
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "figway ramp:", err)
			return "", "", false
		}
		token = strings.TrimSpace(string(b))
	}
	return addr, token, true
}

// rampRequest asks the admin listener at addr.
func rampRequest(addr, token, action, method, reason string) ([]byte, int, error) {
	client := &http.Client{Timeout: 15 * time.Second}
	var req *http.Request
	var err error
	if action == "status" {
		req, err = http.NewRequest(http.MethodGet, "http://"+addr+"/v1/ramps", nil)
	} else {
		b, _ := json.Marshal(map[string]string{"reason": reason})
		u := "http://" + addr + "/v1/ramps/" + (&url.URL{Path: method}).EscapedPath() + ":" + action
		req, err = http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
	}
	if err != nil {
		return nil, 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return b, resp.StatusCode, err
}

// rampLine is what figway ramp prints of a ramp.
type rampLine struct {
	Method     string   `json:"method"`
	Steps      []int    `json:"steps"`
	Step       int      `json:"step"`
	Weight     int      `json:"weight"`
	Paused     bool     `json:"paused"`
	Done       bool     `json:"done"`
	Reason     string   `json:"reason"`
	NextStepIn *float64 `json:"next_step_in_seconds"`
	Gate       struct {
		Calls    uint64 `json:"calls"`
		Running  uint64 `json:"running"`
		MinCalls int    `json:"min_calls"`
	} `json:"gate"`
}

func printRamps(stdout, stderr io.Writer, body []byte, action, method string) int {
	var ramps []rampLine
	if action == "status" {
		var all struct {
			Ramps []rampLine `json:"ramps"`
		}
		if err := json.Unmarshal(body, &all); err != nil {
			fmt.Fprintln(stderr, "figway ramp: not a list of ramps:", err)
			return 1
		}
		for _, r := range all.Ramps {
			if method == "" || r.Method == method {
				ramps = append(ramps, r)
			}
		}
	} else {
		var r rampLine
		if err := json.Unmarshal(body, &r); err != nil {
			fmt.Fprintln(stderr, "figway ramp: not a ramp:", err)
			return 1
		}
		ramps = append(ramps, r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tWEIGHT\tSTEP\tSTATE\tCALLS\tNEXT\tREASON")
	for _, r := range ramps {
		state, next := "ramping", "-"
		switch {
		case r.Done:
			state = "done"
		case r.Paused:
			state = "paused"
		}
		if r.NextStepIn != nil {
			next = (time.Duration(*r.NextStepIn * float64(time.Second))).Round(time.Second).String()
		}
		calls := strconv.FormatUint(r.Gate.Calls, 10)
		if r.Gate.Running > 0 {
			calls += "+" + strconv.FormatUint(r.Gate.Running, 10)
		}
		fmt.Fprintf(tw, "%s\t%d%%\t%d/%d\t%s\t%s/%d\t%s\t%s\n", r.Method, r.Weight, r.Step+1, len(r.Steps), state,
			calls, r.Gate.MinCalls, next, r.Reason)
	}
	tw.Flush()
	return 0
}
