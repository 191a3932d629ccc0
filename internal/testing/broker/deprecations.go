package broker

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// RabbitMQ 4 deprecates features figway must not use: transient
// non-exclusive queues, global QoS, classic queue mirroring (removed),
// RAM nodes. A node logs the first use of each as a warning,
//
//	2026-12-07 11:54:48.942278+00:00 [warning] <0.619.0> Deprecated features: `transient_nonexcl_queues`: Feature `transient_nonexcl_queues` is deprecated.
//	2026-12-07 11:54:48.942278+00:00 [warning] <0.619.0> By default, this feature can still be used for now.
//	...
//
// (one message of several lines, each with the same prefix). Close reads
// the node's logs for them and rabbitmq.Main fails the test binary if any node
// logged one.

// deprecatedFeature finds the feature a "Deprecated features" warning names.
var deprecatedFeature = regexp.MustCompile("Deprecated features: `([^`]+)`")

// logPrefix is the timestamp, level and Erlang process of a log line.
var logPrefix = regexp.MustCompile(`^(\S+ \S+ \[(\w+)\] <[^>]*>) `)

// A Deprecation is a deprecated feature a node's log says was used.
type Deprecation struct {
	// Feature is the name RabbitMQ gives the feature
	// (transient_nonexcl_queues, global_qos, ...), or, for another
	// warning about something deprecated, that warning's first line.
	Feature string
	// Line is the first line of the warning, as logged.
	Line string
}

// DeprecatedFeatures returns the deprecated features the node's logs say
// were used so far, once each, in the order logged; nil for an external
// node.
func (n *Node) DeprecatedFeatures() ([]Deprecation, error) {
	if n.external {
		return nil, nil
	}
	logs, err := filepath.Glob(filepath.Join(n.dir, "log", "*.log"))
	if err != nil {
		return nil, err
	}
	var found []Deprecation
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			return found, err
		}
		found, err = scanDeprecations(f, found)
		f.Close()
		if err != nil {
			return found, fmt.Errorf("rabbitmqtest: read %s: %w", path, err)
		}
	}
	return found, nil
}

// scanDeprecations appends to found the deprecations a log reports that
// found does not have yet. A message is a run of lines with the same
// prefix; a warning or error message that mentions deprecation counts.
func scanDeprecations(r io.Reader, found []Deprecation) ([]Deprecation, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prev := ""
	for sc.Scan() {
		line := sc.Text()
		m := logPrefix.FindStringSubmatch(line)
		if m == nil || m[1] == prev {
			continue // a message's later line, or not a log line
		}
		prev = m[1]
		if level := m[2]; level != "warning" && level != "error" {
			continue
		}
		d := Deprecation{Line: line}
		if f := deprecatedFeature.FindStringSubmatch(line); f != nil {
			d.Feature = f[1]
		} else if strings.Contains(strings.ToLower(line), "deprecat") {
			d.Feature = strings.TrimPrefix(line, m[0])
		} else {
			continue
		}
		if !slices.ContainsFunc(found, func(e Deprecation) bool { return e.Feature == d.Feature }) {
			found = append(found, d)
		}
	}
	return found, sc.Err()
}

// AllowDeprecatedFeatures exempts the node from the check rabbitmq.Main makes: for
// a test that uses a deprecated feature on purpose, on a node of its own.
func (n *Node) AllowDeprecatedFeatures() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deprecationsAllowed = true
}

// deprecationsSeen are the deprecations of the nodes closed so far, with the
// node that logged them.
var deprecationsSeen struct {
	sync.Mutex
	report []string
}

// checkDeprecations reads the node's logs and records what they report for
// rabbitmq.Main. Called by Close, before the node's directory goes.
func (n *Node) checkDeprecations() {
	found, err := n.DeprecatedFeatures()
	if err != nil {
		found = append(found, Deprecation{Feature: "(could not read the log)", Line: err.Error()})
	}
	deprecationsSeen.Lock()
	defer deprecationsSeen.Unlock()
	for _, d := range found {
		deprecationsSeen.report = append(deprecationsSeen.report,
			fmt.Sprintf("  %s (RabbitMQ %s node %s):\n    %s", d.Feature, n.serverVersion, n.name, d.Line))
	}
}

// DeprecationReport returns what the tests' rabbitmq.Main prints when nodes logged
// deprecations, or "" when none did.
func DeprecationReport() string {
	deprecationsSeen.Lock()
	defer deprecationsSeen.Unlock()
	if len(deprecationsSeen.report) == 0 {
		return ""
	}
	return "rabbitmqtest: the broker logged the use of deprecated features (RabbitMQ 4 deprecates them and a later " +
		"version removes them: figway must not use them; see docs/operations.md):\n" +
		strings.Join(deprecationsSeen.report, "\n")
}
