package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Redact returns the URL raw with the password of its userinfo replaced by
// "xxxxx", so that a broker or legacy URL can be logged and shown in
// errors. It works on the text, not on a parse: whatever might be a
// password, up to the last "@", goes, even when raw is not a valid URL
// (a password with an unescaped "/" or "#" would fool url.Parse).
func Redact(raw string) string {
	prefix, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return raw
	}
	if strings.ContainsAny(user, "/?#") {
		user = "xxxxx" // not a plain user name: hide it as well
	}
	return prefix + user + ":xxxxx" + rest[at:]
}

// checkListen checks a listen address: host:port, where the host may be
// empty (all interfaces) and the port 0 (any free port).
func checkListen(s string) error {
	return checkHostPort(s, false)
}

// checkDial checks an address to connect to: host:port with both set.
func checkDial(s string) error {
	return checkHostPort(s, true)
}

func checkHostPort(s string, dial bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, such as 127.0.0.1:8080, not %q", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (dial && n == 0) {
		lo := 0
		if dial {
			lo = 1
		}
		return fmt.Errorf("port %q of %q is not a number from %d to 65535", port, s, lo)
	}
	if dial && host == "" {
		return fmt.Errorf("want host:port, such as 127.0.0.1:50051, not %q: the host is missing", s)
	}
	if strings.ContainsAny(host, " /\t") {
		return fmt.Errorf("host %q of %q is not a host name or IP address", host, s)
	}
	return nil
}

// checkAMQP checks a broker URL the way the AMQP client will parse it when
// it dials. No message repeats the password.
func checkAMQP(s string) error {
	if s == "" {
		return errors.New("empty URL; want amqp://user:password@host:5672/vhost")
	}
	_, err := amqp.ParseURI(s)
	if err == nil {
		return nil
	}
	return fmt.Errorf("invalid AMQP URL %q: %v", Redact(s), withoutURL(s, err))
}

// withoutURL returns the part of a URL parsing error that does not repeat
// the URL, since url.Error's own text holds the whole of it, password
// included.
func withoutURL(s string, err error) error {
	var escErr url.EscapeError
	var urlErr *url.Error
	switch {
	case errors.As(err, &escErr):
		// The bad escape may be a piece of the password: don't quote it.
		return errors.New(`invalid percent-escape: "%" must be followed by two hexadecimal digits`)
	case errors.As(err, &urlErr) && strings.Contains(s, "@"):
		return fmt.Errorf(`%w (a reserved character such as "@", ":", "/" or "#" in the user name or password must be percent-encoded)`, urlErr.Err)
	case errors.As(err, &urlErr):
		return urlErr.Err
	}
	return err
}

// checkHTTPURL checks the legacy REST upstream: an absolute http or https
// URL.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil && strings.Contains(s, "://") {
		return fmt.Errorf("invalid URL %q: %v", Redact(s), withoutURL(s, err))
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("want an absolute http:// or https:// URL, such as http://127.0.0.1:8000, not %q", Redact(s))
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", Redact(s))
	}
	return nil
}
