// Package prom scrapes a Prometheus endpoint over HTTP for tests and
// reads series out of it with the Prometheus text parser.
package prom

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one scrape's metric families, by name.
type Scrape map[string]*dto.MetricFamily

// Get scrapes url (text format) and parses it; any failure fails the test.
func Get(t testing.TB, url string) Scrape {
	t.Helper()
	s, err := Fetch(url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Fetch scrapes url (text format) and parses it. Unlike Get, it may be
// called from any goroutine: it returns its failure.
func Fetch(url string) (Scrape, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse scrape of %s: %w", url, err)
	}
	return fams, nil
}

// Sum is the sum of the values of every series of family name (counters
// and gauges), 0 when there is none.
func (s Scrape) Sum(name string) float64 {
	var sum float64
	for _, m := range s[name].GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

// Find returns the series of family name whose labels include all of
// labels, given as name, value pairs; nil if there is none.
func (s Scrape) Find(name string, labels ...string) *dto.Metric {
	f := s[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if label(m, labels[i]) != labels[i+1] {
				continue next
			}
		}
		return m
	}
	return nil
}

// Value is the value of the series Find returns: a counter's or gauge's
// value, a histogram's sample count; -1 when there is no such series.
func (s Scrape) Value(name string, labels ...string) float64 {
	m := s.Find(name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return -1
}

// Series lists the label sets of family name, for failure messages.
func (s Scrape) Series(name string) string {
	f := s[name]
	if f == nil {
		return name + ": no such family"
	}
	var out []string
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		out = append(out, "{"+strings.Join(ls, ",")+"}")
	}
	sort.Strings(out)
	return name + strings.Join(out, " ")
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
