package config

import (
	"slices"
	"strings"
	"testing"
)

func TestQueues(t *testing.T) {
	c := &Config{Topology: Topology{
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
	}}
	for _, tc := range []struct {
		route Route
		want  []string
	}{
		{Route{Exchange: "t", RoutingKey: "orders.get"}, []string{"all", "get", "qq"}},
		{Route{Exchange: "t", RoutingKey: "orders.get.v2"}, []string{"all", "star"}},
		{Route{Exchange: "t", RoutingKey: "orders"}, []string{"all"}},
		{Route{Exchange: "t", RoutingKey: "billing.pay"}, nil},
		{Route{Exchange: "d", RoutingKey: "orders.get"}, []string{"get", "cq"}},
		{Route{Exchange: "d", RoutingKey: "orders.put"}, nil},
		{Route{Exchange: "f", RoutingKey: "anything"}, []string{"all"}},
		{Route{Exchange: "amq.topic", RoutingKey: "x.y"}, []string{"star"}},
		{Route{Exchange: "h", RoutingKey: "k"}, nil},
		{Route{Exchange: "elsewhere", RoutingKey: "k"}, nil},
		{Route{RoutingKey: "orders.get"}, []string{"orders.get"}},
		{Route{RoutingKey: "qq"}, []string{"qq"}},
		{Route{Exchange: "t", RoutingKey: "x", Queue: "qq"}, []string{"qq"}},
		{Route{RoutingKey: "sq"}, nil},
		{Route{Exchange: "t", RoutingKey: "billing.pay", Queue: "billing"}, []string{"billing"}},
		{Route{To: TargetLegacy}, nil},
	} {
		if got := c.Queues(&tc.route); !slices.Equal(got, tc.want) {
			t.Errorf("Queues(%+v) = %q; want %q", tc.route, got, tc.want)
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
