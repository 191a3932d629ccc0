package config

import (
	"errors"
	"testing"
)

func TestFieldErrorError(t *testing.T) {
	errBad := errors.New(`invalid duration "5x"`)
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{Path: "routes[3].timeout", Line: 14, Err: errBad}, `routes[3].timeout (line 14): invalid duration "5x"`},
		{FieldError{Path: "routes[3].timeout", Err: errBad}, `routes[3].timeout: invalid duration "5x"`},
		{FieldError{Line: 2, Err: errBad}, `line 2: invalid duration "5x"`},
		{FieldError{Err: errBad}, `invalid duration "5x"`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q; want %q", tt.e, got, tt.want)
		}
		if !errors.Is(&tt.e, errBad) {
			t.Errorf("errors.Is(%#v, errBad) = false; want true", tt.e)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ url, want string }{
		{"amqp://guest:guest@localhost:5672/", "amqp://guest:xxxxx@localhost:5672/"},
		{"amqps://figway:s3cret@rabbit/shop?heartbeat=5", "amqps://figway:xxxxx@rabbit/shop?heartbeat=5"},
		{"amqp://localhost", "amqp://localhost"},
		{"amqp://user@localhost", "amqp://user@localhost"},
		{"amqp://:s3cret@localhost", "amqp://:xxxxx@localhost"},
		{"amqp://u:p@ss@host/v", "amqp://u:xxxxx@host/v"},
		{"amqp://u:pa/ss@host", "amqp://u:xxxxx@host"},
		{"amqp://u/x:pass@host", "amqp://xxxxx:xxxxx@host"},
		{"amqp://u%40x:p%2Fw@h", "amqp://u%40x:xxxxx@h"},
		{"guest:s3cret@localhost", "guest:xxxxx@localhost"},
		{"http://127.0.0.1:8000/x", "http://127.0.0.1:8000/x"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Redact(tt.url); got != tt.want {
			t.Errorf("Redact(%q) = %q; want %q", tt.url, got, tt.want)
		}
	}
}
