package app

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/figway/figway/adapters/statuspage"
	"github.com/figway/figway/gateway"
	"github.com/figway/figway/ramp"
	"github.com/figway/figway/wire"
)

// newRamps builds the ramp controller and its log when a route of the
// routes file ramps; a figway without one declares no stream.
func (a *App) newRamps(stream string) {
	if stream == "" {
		return
	}
	host, _ := os.Hostname()
	a.rampLog = a.client.NewRampLog(stream)
	a.ramps = ramp.New(ramp.Config{Log: a.rampLog, Table: func() *gateway.Table { return a.gw.Table() }, Replica: host + "-" + wire.NewID()[:8], Logger: a.log})
}

// rampSource is what the metrics read of the ramps: nil without any.
func (a *App) rampSource() interface {
	Weight(string) int
	Events(string) map[string]uint64
} {
	if a.ramps == nil {
		return nil
	}
	return a.ramps
}

// rampActionTimeout bounds an admin action: its append and its reading
// back from the stream.
const rampActionTimeout = 10 * time.Second

// handleRamps serves the ramps on the admin listener: GET /v1/ramps, and
// POST /v1/ramps/{package.Service/Method}:{pause|resume|promote|rollback}
// (docs/operations.md, "Ramps"). A POST needs the admin token unless the
// listener is on loopback.
func (a *App) handleRamps(mux *http.ServeMux, exposed bool) {
	mux.HandleFunc("GET /v1/ramps", func(w http.ResponseWriter, _ *http.Request) {
		out := []ramp.Status{}
		if a.ramps != nil {
			out = a.ramps.Statuses()
		}
		writeJSON(w, http.StatusOK, map[string]any{"ramps": out})
	})
	mux.HandleFunc("POST /v1/ramps/{target...}", func(w http.ResponseWriter, r *http.Request) {
		if code, msg := a.adminAllowed(r, exposed); code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="figway admin"`)
			}
			writeJSON(w, code, map[string]string{"error": msg})
			return
		}
		target := r.PathValue("target")
		i := strings.LastIndex(target, ":")
		if i < 0 {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "want POST /v1/ramps/{package.Service/Method}:pause|:resume|:promote|:rollback"})
			return
		}
		method, action := target[:i], target[i+1:]
		if a.ramps == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": method + ": no route ramps"})
			return
		}
		var body struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 {
			json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body)
		}
		ctx, cancel := context.WithTimeout(r.Context(), rampActionTimeout)
		defer cancel()
		st, err := a.ramps.Act(ctx, method, action, body.Reason)
		if err != nil {
			writeJSON(w, rampErrorCode(err), map[string]string{"error": err.Error()})
			return
		}
		a.log.Info("ramp action", "route", method, "action", action, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, st)
	})
}

// adminAllowed returns 0 when r may change figway's state: the admin
// listener is on loopback, or r carries server.admin_token_file's token
// as a bearer token. Otherwise it returns the HTTP status of the refusal
// and why.
func (a *App) adminAllowed(r *http.Request, exposed bool) (int, string) {
	if !exposed {
		return 0, ""
	}
	want := a.cfg.Server.AdminToken
	if len(want) == 0 {
		return http.StatusForbidden, "admin mutations off loopback need server.admin_token_file"
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
		return http.StatusUnauthorized, "a bearer token from server.admin_token_file is required"
	}
	return 0, ""
}

func rampErrorCode(err error) int {
	switch {
	case errors.Is(err, ramp.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ramp.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ramp.ErrNotReady):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	if errors.Is(err, ramp.ErrUnknownAction) {
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// statusRamps is what the status page shows of the ramps.
func (a *App) statusRamps() []statuspage.Ramp {
	if a.ramps == nil {
		return nil
	}
	var out []statuspage.Ramp
	for _, st := range a.ramps.Statuses() {
		r := statuspage.Ramp{Method: st.Method, Steps: st.Steps, Step: st.Step, Weight: st.Weight, Reason: st.Reason, NextStep: -1}
		switch {
		case !st.Started:
			r.State = "not started"
		case st.Done:
			r.State = "done"
		case st.Paused:
			r.State = "paused"
		default:
			r.State = "ramping"
		}
		if st.NextStepIn != nil {
			r.NextStep = time.Duration(*st.NextStepIn * float64(time.Second))
		}
		r.Gate = gateFigures(st.Gate)
		for i := len(st.Events) - 1; i >= 0 && len(r.Events) < 5; i-- {
			e := st.Events[i]
			r.Events = append(r.Events, statuspage.RampEvent{At: e.At, Event: e.Event, Weight: e.Weight, Reason: e.Reason})
		}
		out = append(out, r)
	}
	return out
}

// gateFigures lists a gate's figures against the limits it has.
func gateFigures(g ramp.Gate) []statuspage.GateFigure {
	pct := func(f float64) string { return strconv.FormatFloat(f*100, 'g', 3, 64) + " %" }
	ms := func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) + " ms" }
	calls := strconv.FormatUint(g.Calls, 10)
	if g.Running > 0 {
		calls += " + " + strconv.FormatUint(g.Running, 10) + " running"
	}
	out := []statuspage.GateFigure{{Name: "broker-side calls", Value: calls,
		Limit: "≥ " + strconv.Itoa(g.MinCalls) + " to judge"}}
	if g.MaxErrorRate != nil {
		out = append(out, statuspage.GateFigure{Name: "error rate", Value: pct(g.ErrorRate), Limit: "≤ " + pct(*g.MaxErrorRate),
			Breaks: g.ErrorRate > *g.MaxErrorRate})
	}
	if g.MaxP99Ms > 0 {
		out = append(out, statuspage.GateFigure{Name: "p99", Value: ms(g.P99Ms), Limit: "≤ " + ms(g.MaxP99Ms), Breaks: g.P99Ms > g.MaxP99Ms})
	}
	if g.MaxP99VsLegacy > 0 {
		f := statuspage.GateFigure{Name: "p99 vs legacy's " + ms(g.LegacyP99Ms), Value: "–", Limit: "≤ × " + strconv.FormatFloat(g.MaxP99VsLegacy, 'g', 3, 64)}
		if g.LegacyP99Ms > 0 {
			x := g.P99Ms / g.LegacyP99Ms
			f.Value, f.Breaks = "× "+strconv.FormatFloat(x, 'f', 2, 64), x > g.MaxP99VsLegacy
		}
		out = append(out, f)
	}
	if g.MaxShadowMismatch != nil {
		out = append(out, statuspage.GateFigure{Name: "shadow mismatch (" + strconv.FormatUint(g.Compared, 10) + " compared)",
			Value: pct(g.ShadowMismatch), Limit: "≤ " + pct(*g.MaxShadowMismatch), Breaks: g.ShadowMismatch > *g.MaxShadowMismatch})
	}
	return out
}
