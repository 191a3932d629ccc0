package broker

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// The RabbitMQ versions a node can run, chosen with FIGWAY_TEST_RABBITMQ.
const (
	// V3_10 is the machine's own rabbitmq-server package (Debian 12's
	// 3.10): the default.
	V3_10 = "3.10"
	// V4_0 is Debian 13's rabbitmq-server 4.0, installed by
	// `scripts/rabbitmq.sh ensure` in a Debian 13 root of its own and run
	// there with chroot.
	V4_0 = "4.0"
)

// versionEnv names the environment variable that chooses the version.
const versionEnv = "FIGWAY_TEST_RABBITMQ"

// errBadVersion marks a FIGWAY_TEST_RABBITMQ this package does not know:
// a mistake that fails the test even where a missing broker would skip it.
var errBadVersion = errors.New("unknown RabbitMQ version")

// Version returns the RabbitMQ version the nodes of this process run: the
// value of FIGWAY_TEST_RABBITMQ, [V3_10] or [V4_0]; [V3_10] when it is
// unset or empty. For logs, and for the rare test whose expectation
// depends on the version. An unknown value is returned as it is; starting a
// node then fails.
func Version() string {
	if v := os.Getenv(versionEnv); v != "" {
		return v
	}
	return V3_10
}

// installHint says how to get a broker; it ends every "not available" message.
const installHint = "install it with `apt-get install rabbitmq-server` (Debian/Ubuntu, as root), " +
	"or run `make test`, which installs it; or set FIGWAY_TEST_AMQP_URL to a broker of your own"

// installHint40 says how to get RabbitMQ 4.0.
const installHint40 = "prepare it with `scripts/rabbitmq.sh ensure 4.0` (as root: debootstrap, chroot), " +
	"or run `make test` as root, which does; or unset " + versionEnv + " to test on the machine's own rabbitmq-server"

// errNotInstalled is returned by Start when the RabbitMQ to run is not found.
var errNotInstalled = errors.New("rabbitmq-server is not installed")

// An installation is where the RabbitMQ scripts of one version are.
type installation struct {
	version string
	// root is the directory the node and rabbitmqctl run chrooted in
	// (RabbitMQ 4.0), or "" to run them on the machine itself.
	root   string
	server string // rabbitmq-server, as seen inside root
	ctl    string // rabbitmqctl, as seen inside root
}

// host returns path, a path as seen by the installation's programs, as
// this process sees it.
func (in installation) host(path string) string {
	if in.root == "" {
		return path
	}
	return filepath.Join(in.root, path)
}

// findInstallation locates the RabbitMQ to run. FIGWAY_RABBITMQ_SERVER, if
// set, names a rabbitmq-server script of this machine to run whatever the
// version.
func findInstallation() (installation, error) {
	v := Version()
	if os.Getenv("FIGWAY_RABBITMQ_SERVER") != "" {
		in, err := findScripts()
		in.version = v
		return in, err
	}
	switch v {
	case V3_10:
		return findScripts()
	case V4_0:
		return findRoot()
	}
	return installation{}, fmt.Errorf("%w: %s=%q; want %q or %q", errBadVersion, versionEnv, v, V3_10, V4_0)
}

// findScripts locates the rabbitmq-server package of the machine.
//
// Debian and Ubuntu install /usr/sbin/rabbitmq-server as a symlink to
// /usr/lib/rabbitmq/bin/rabbitmq-script-wrapper, which, run as root, re-runs
// the real script through `su rabbitmq` (and cds to /var/lib/rabbitmq); its
// sibling /usr/lib/rabbitmq/bin/rabbitmq-server is the real script. The
// generic-unix tarball and Homebrew put the real scripts on PATH directly.
func findScripts() (installation, error) {
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
		in := installation{version: V3_10, server: filepath.Join(dir, "rabbitmq-server"), ctl: filepath.Join(dir, "rabbitmqctl")}
		if isExecutable(in.server) && isExecutable(in.ctl) {
			return in, nil
		}
	}
	return installation{}, notFound
}

// root40 returns the directory of the Debian 13 root that RabbitMQ 4.0 runs
// in: $FIGWAY_RABBITMQ_CACHE/rabbitmq-4.0, by default
// /var/cache/figway/rabbitmq-4.0, where `scripts/rabbitmq.sh ensure`
// makes it (the two must agree).
func root40() string {
	cache := os.Getenv("FIGWAY_RABBITMQ_CACHE")
	if cache == "" {
		cache = "/var/cache/figway"
	}
	return filepath.Join(cache, "rabbitmq-4.0")
}

// findRoot locates RabbitMQ 4.0 in its root, ready to run: the scripts are
// there, /proc is mounted inside, and this process may chroot.
func findRoot() (installation, error) {
	// Debian's real scripts, not the /usr/sbin wrappers (see findScripts).
	in := installation{
		version: V4_0,
		root:    root40(),
		server:  "/usr/lib/rabbitmq/bin/rabbitmq-server",
		ctl:     "/usr/lib/rabbitmq/bin/rabbitmqctl",
	}
	if !isExecutable(in.host(in.server)) || !isExecutable(in.host(in.ctl)) {
		return installation{}, fmt.Errorf("%w: RabbitMQ 4.0 is not installed in %s", errNotInstalled, in.root)
	}
	// The Erlang VM reads /proc (the CPU count, its own limits); the
	// scripts read /proc/self.
	if _, err := os.Stat(in.host("/proc/self")); err != nil {
		return installation{}, fmt.Errorf("%w: /proc is not mounted in %s (scripts/rabbitmq.sh ensure mounts it)", errNotInstalled, in.root)
	}
	if os.Geteuid() != 0 {
		return installation{}, fmt.Errorf("%w: RabbitMQ 4.0 in %s runs with chroot, which needs root", errNotInstalled, in.root)
	}
	return in, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// unavailableError reports that no broker could be had, and how to get one.
func unavailableError(err error) string {
	hint := installHint
	if Version() == V4_0 && os.Getenv("FIGWAY_RABBITMQ_SERVER") == "" {
		hint = installHint40
	}
	return fmt.Sprintf("rabbitmqtest: no RabbitMQ %s broker for this test: %v\n%s", Version(), err, hint)
}
