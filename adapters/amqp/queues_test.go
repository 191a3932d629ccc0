package amqp

import (
	"slices"
	"strings"
	"testing"
)

func TestServingQueues(t *testing.T) {
	top := &Topology{
		Exchanges: []Exchange{{Name: "t", Type: "topic"}, {Name: "d", Type: "direct"}, {Name: "f", Type: "fanout"}, {Name: "h", Type: "headers"}},
		Queues: []Queue{
			{Name: "all", Bind: []Binding{{Exchange: "t", Key: "orders.#"}, {Exchange: "f"}}},
			{Name: "get", Bind: []Binding{{Exchange: "t", Key: "orders.get"}, {Exchange: "d", Key: "orders.get"}}},
			{Name: "star", Bind: []Binding{{Exchange: "t", Key: "*.get.*"}, {Exchange: "amq.topic", Key: "#"}}},
			{Name: "hq", Bind: []Binding{{Exchange: "h"}}},
			// Stream queues: their counts are not acted on.
			{Name: "qq", Type: "quorum", Bind: []Binding{{Exchange: "t", Key: "orders.get"}}},
			{Name: "sq", Arguments: map[string]any{"x-queue-type": "stream"}, Bind: []Binding{{Exchange: "d", Key: "orders.get"}}},
			{Name: "cq", Arguments: map[string]any{"x-queue-type": "classic"}, Bind: []Binding{{Exchange: "d", Key: "orders.get"}}},
		},
	}
	for _, tc := range []struct {
		queue, exchange, key string
		want                 []string
	}{
		{"", "t", "orders.get", []string{"all", "get", "qq"}},
		{"", "t", "orders.get.v2", []string{"all", "star"}},
		{"", "t", "orders", []string{"all"}},
		{"", "t", "billing.pay", nil},
		{"", "d", "orders.get", []string{"get", "cq"}},
		{"", "d", "orders.put", nil},
		{"", "f", "anything", []string{"all"}},
		{"", "amq.topic", "x.y", []string{"star"}},
		{"", "h", "k", nil},
		{"", "elsewhere", "k", nil},
		{"", "", "orders.get", []string{"orders.get"}},
		{"", "", "qq", []string{"qq"}},
		{"qq", "t", "x", []string{"qq"}},
		{"", "", "sq", nil},
		{"billing", "t", "billing.pay", []string{"billing"}},
	} {
		if got := top.ServingQueues(tc.queue, tc.exchange, tc.key); !slices.Equal(got, tc.want) {
			t.Errorf("ServingQueues(%q, %q, %q) = %q; want %q", tc.queue, tc.exchange, tc.key, got, tc.want)
		}
	}
}

func TestTopicMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.c", false},
		{"a.*", "a.b", true}, {"a.*", "a", false}, {"a.*", "a.b.c", false},
		{"a.#", "a", true}, {"a.#", "a.b.c", true}, {"#", "x.y.z", true},
		{"#.z", "x.y.z", true}, {"#.z", "x.y", false}, {"a.#.z", "a.z", true}, {"a.#.z", "a.b.c.z", true},
		{"*.#", "a", true}, {"*", "a.b", false},
	} {
		if got := topicMatch(strings.Split(tc.pattern, "."), strings.Split(tc.key, ".")); got != tc.want {
			t.Errorf("topicMatch(%q, %q) = %v; want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}
