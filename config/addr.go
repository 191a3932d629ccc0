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

// redactURLs returns s with the password of every URL in it — the text
// between "scheme://user:" and the last "@" before the URL ends (a quote,
// a space or the end of s) — replaced by xxxxx. It sees passwords with
// unescaped "/", "?" or "#" too, which a URL parser would not.
func redactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, "\"'` \t\n")
		if end < 0 {
			end = len(s)
		}
		at := strings.LastIndex(s[:end], "@")
		if at < 0 {
			continue
		}
		user, _, hasPassword := strings.Cut(s[:at], ":")
		if !hasPassword {
			continue
		}
		if strings.ContainsAny(user, "/?#") {
			user = "xxxxx" // not a plain user name: hide it as well
		}
		b.WriteString(user + ":xxxxx")
		s = s[at:]
	}
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
	u, err := amqp.ParseURI(s)
	if err == nil {
		if u.Port < 1 || u.Port > 65535 {
			return fmt.Errorf("invalid AMQP URL %q: port %d is not 1-65535", Redact(s), u.Port)
		}
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
		const hint = ` (a reserved character such as "@", ":", "/", "?" or "#" in the user name or password must be percent-encoded)`
		// The parser's own words may quote a piece of the password
		// (`invalid port ":S3cr" after host` for "u:S3cr/et@h"): then say
		// only what is wrong.
		if showsPassword(s, urlErr.Err.Error()) {
			return errors.New("not a valid URL" + hint)
		}
		return fmt.Errorf("%w%s", urlErr.Err, hint)
	case errors.As(err, &urlErr):
		return urlErr.Err
	}
	return err
}

// showsPassword reports whether text holds a piece of the password of the
// URL s: any part of it between the reserved characters a parser splits
// it at.
func showsPassword(s, text string) bool {
	_, rest, _ := strings.Cut(s, "://")
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return false
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return false
	}
	for _, piece := range strings.FieldsFunc(pw, func(r rune) bool { return strings.ContainsRune("/?#@:", r) }) {
		if strings.Contains(text, piece) {
			return true
		}
	}
	return false
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
