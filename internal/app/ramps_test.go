package app

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/figway/figway/config"
)

// TestAdminAllowed: on loopback every mutation is taken; off loopback,
// only with the admin token, and none without a token file.
func TestAdminAllowed(t *testing.T) {
	token := []byte("0123456789abcdef0123")
	for _, tc := range []struct {
		name    string
		exposed bool
		token   []byte
		auth    string
		want    int
	}{
		{"loopback, no token", false, nil, "", 0},
		{"loopback, token file, none sent", false, token, "", 0},
		{"exposed, no token file", true, nil, "Bearer 0123456789abcdef0123", http.StatusForbidden},
		{"exposed, none sent", true, token, "", http.StatusUnauthorized},
		{"exposed, wrong token", true, token, "Bearer 0123456789abcdef0124", http.StatusUnauthorized},
		{"exposed, not bearer", true, token, "Basic 0123456789abcdef0123", http.StatusUnauthorized},
		{"exposed, the token", true, token, "Bearer 0123456789abcdef0123", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &App{cfg: &config.Config{Server: config.Server{AdminToken: tc.token}}}
			req := httptest.NewRequest("POST", "/v1/ramps/x.v1.S/M:pause", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if got, why := a.adminAllowed(req, tc.exposed); got != tc.want {
				t.Errorf("adminAllowed = %d (%s); want %d", got, why, tc.want)
			}
		})
	}
}
