// Package metrics is figway's Prometheus instrumentation: one registry per
// process, served on the admin listener's /metrics.
//
// Two kinds of series live here. Counters and histograms of events are
// pushed by hooks at the edges — [Metrics.StreamInterceptor] on the gRPC
// server, [Metrics.HTTP] around the REST handler, [Metrics.ObserveConfirm]
// on the AMQP client's publisher confirms, [Metrics.Reloaded] after each
// reload. Gauges of state (calls in flight, breaker states, the broker
// connection) and the AMQP client's own counters are pulled at scrape time
// from [Sources], so they never drift from what they describe and nothing
// in the gateway's hot path writes them.
//
// Every route label is a full method name of the route table, or
// "unrouted": never a raw path, so label cardinality is bounded by the
// routes file.
//
// # Series
//
//	figway_requests_total{route,ingress,code}             counter
//	figway_request_duration_seconds{route,ingress}        histogram
//	figway_requests_in_flight{route}                      gauge (pulled)
//	figway_route_max_in_flight{route}                     gauge (pulled)
//	figway_breaker_state{route,state}                     gauge, 1 for the current state (pulled)
//	figway_publish_confirm_duration_seconds{result}       histogram, result ack|nack
//	figway_replies_unmatched_total                        counter (pulled)
//	figway_replies_pending                                gauge (pulled)
//	figway_broker_reconnects_total                        counter (pulled)
//	figway_broker_channels_renewed_total                  counter (pulled)
//	figway_broker_stalls_total                            counter (pulled)
//	figway_broker_channels_stuck_total                    counter (pulled)
//	figway_broker_connected, figway_broker_blocked        gauges (pulled)
//	figway_ready                                          gauge (pulled)
//	figway_routes                                         gauge (pulled)
//	figway_no_consumer_total{route}                       counter (pulled; rpc routes with known queues)
//	figway_canary_calls_total{route,to}                   counter, to broker|legacy (pulled; routes with weight)
//	figway_fallbacks_total{route}                         counter (pulled; routes with fallback)
//	figway_fallback_active{route}                         gauge (pulled; routes with fallback)
//	figway_shadow_copies_total{route,result}              counter, result sent|dropped|failed (pulled; shadow routes)
//	figway_shadow_mismatches_total{route}                 counter (pulled; shadow routes with compare)
//	figway_shadow_matches_total{route}                    counter (pulled; shadow routes with compare)
//	figway_route_weight{route}                            gauge (pulled; routes that publish: a ramp's step, a weight, 100 or 0)
//	figway_ramp_events_total{route,event}                 counter (pulled; ramped routes)
//	figway_config_reloads_total{result}                   counter, result ok|failed
//	figway_config_last_reload_successful                  gauge
//	figway_config_last_reload_success_timestamp_seconds   gauge
//	figway_build_info{version,goversion}                  gauge, always 1
//
// plus the standard go_* and process_* collectors.
package metrics
