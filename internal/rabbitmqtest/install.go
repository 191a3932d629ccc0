package rabbitmqtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// installHint says how to get a broker; it ends every "not available" message.
const installHint = "install it with `apt-get install rabbitmq-server` (Debian/Ubuntu, as root), " +
	"or run `make test`, which installs it; or set FIGWAY_TEST_AMQP_URL to a broker of your own"

// errNotInstalled is returned by Start when no rabbitmq-server script is found.
var errNotInstalled = errors.New("rabbitmq-server is not installed")

// scripts are the server and control scripts of one RabbitMQ installation.
type scripts struct {
	server string // rabbitmq-server
	ctl    string // rabbitmqctl
}

// findScripts locates the RabbitMQ scripts to run.
//
// Debian and Ubuntu install /usr/sbin/rabbitmq-server as a symlink to
// /usr/lib/rabbitmq/bin/rabbitmq-script-wrapper, which, run as root, re-runs
// the real script through `su rabbitmq` (and cds to /var/lib/rabbitmq); its
// sibling /usr/lib/rabbitmq/bin/rabbitmq-server is the real script. The
// generic-unix tarball and Homebrew put the real scripts on PATH directly.
func findScripts() (scripts, error) {
	var candidates []string
	notFound := fmt.Errorf("%w (looked in PATH, /usr/sbin and /usr/local/sbin)", errNotInstalled)
	if p := os.Getenv("FIGWAY_RABBITMQ_SERVER"); p != "" {
		candidates = []string{p}
		notFound = fmt.Errorf("%w: FIGWAY_RABBITMQ_SERVER=%s is not a rabbitmq-server script with rabbitmqctl beside it", errNotInstalled, p)
	} else {
		if p, err := exec.LookPath("rabbitmq-server"); err == nil {
			candidates = append(candidates, p)
		}
		candidates = append(candidates, "/usr/sbin/rabbitmq-server", "/usr/local/sbin/rabbitmq-server")
	}
	for _, c := range candidates {
		real, err := filepath.EvalSymlinks(c)
		if err != nil {
			continue
		}
		dir := filepath.Dir(c)
		if filepath.Base(real) == "rabbitmq-script-wrapper" {
			dir = filepath.Dir(real)
		}
		s := scripts{server: filepath.Join(dir, "rabbitmq-server"), ctl: filepath.Join(dir, "rabbitmqctl")}
		if isExecutable(s.server) && isExecutable(s.ctl) {
			return s, nil
		}
	}
	return scripts{}, notFound
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// unavailableError reports that no broker could be had, and how to get one.
func unavailableError(err error) string {
	return fmt.Sprintf("rabbitmqtest: no RabbitMQ broker for this test: %v\n%s", err, installHint)
}
