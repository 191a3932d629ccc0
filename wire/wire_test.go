package wire

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func TestReplyStatus(t *testing.T) {
	details, _ := status.New(codes.NotFound, "ignored").WithDetails(&errdetails.ResourceInfo{ResourceName: "o-1"})
	detailBytes, _ := proto.Marshal(details.Proto())
	tests := []struct {
		name     string
		h        amqp.Table
		code     codes.Code
		msg      string
		nDetails int
		bad      bool
	}{
		{"absent is OK", amqp.Table{}, codes.OK, "", 0, false},
		{"zero is OK", amqp.Table{HeaderStatus: int32(0), HeaderMessage: "ignored"}, codes.OK, "", 0, false},
		{"int8", amqp.Table{HeaderStatus: int8(5), HeaderMessage: "nf"}, codes.NotFound, "nf", 0, false},
		{"int16", amqp.Table{HeaderStatus: int16(3)}, codes.InvalidArgument, "", 0, false},
		{"int64 (pika, amqplib)", amqp.Table{HeaderStatus: int64(14), HeaderMessage: []byte("down")}, codes.Unavailable, "down", 0, false},
		{"uint8", amqp.Table{HeaderStatus: uint8(7)}, codes.PermissionDenied, "", 0, false},
		{"integral double (amqplib)", amqp.Table{HeaderStatus: float64(9)}, codes.FailedPrecondition, "", 0, false},
		{"decimal string", amqp.Table{HeaderStatus: "16"}, codes.Unauthenticated, "", 0, false},
		{"details kept, code and message from headers", amqp.Table{HeaderStatus: int32(5), HeaderMessage: "order o-1 not found", HeaderDetails: detailBytes}, codes.NotFound, "order o-1 not found", 1, false},
		{"code out of range", amqp.Table{HeaderStatus: int32(17)}, 0, "", 0, true},
		{"negative code", amqp.Table{HeaderStatus: int64(-1)}, 0, "", 0, true},
		{"fractional", amqp.Table{HeaderStatus: 2.5}, 0, "", 0, true},
		{"not a number", amqp.Table{HeaderStatus: "five"}, 0, "", 0, true},
		{"wrong type", amqp.Table{HeaderStatus: true}, 0, "", 0, true},
		{"message not text", amqp.Table{HeaderStatus: int32(2), HeaderMessage: int32(1)}, 0, "", 0, true},
		{"details not a Status", amqp.Table{HeaderStatus: int32(2), HeaderDetails: []byte{0xff, 0xff}}, 0, "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ReplyStatus(tc.h)
			if tc.bad {
				if !errors.Is(err, ErrBadStatus) {
					t.Fatalf("ReplyStatus(%v) = %v, %v; want ErrBadStatus", tc.h, st, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReplyStatus(%v): %v", tc.h, err)
			}
			if st.Code() != tc.code || st.Message() != tc.msg || len(st.Details()) != tc.nDetails {
				t.Errorf("ReplyStatus(%v) = %v %q %d details; want %v %q %d", tc.h, st.Code(), st.Message(), len(st.Details()), tc.code, tc.msg, tc.nDetails)
			}
		})
	}
}

func TestSetStatusRoundTrip(t *testing.T) {
	in, _ := status.New(codes.NotFound, "no such order").WithDetails(&errdetails.ResourceInfo{ResourceName: "o-9"})
	h := SetStatus(nil, in)
	out, err := ReplyStatus(h)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in.Proto(), out.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("status after SetStatus/ReplyStatus (-want +got):\n%s", diff)
	}
	if SetStatus(nil, nil) != nil || SetStatus(nil, status.New(codes.OK, "")) != nil {
		t.Error("SetStatus of OK wrote headers; want none")
	}
}

func TestFormatTime(t *testing.T) {
	at := func(ns int) time.Time { return time.Date(2026, 11, 26, 12, 0, 1, ns, time.FixedZone("CET", 3600)) }
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{at(0), "2026-11-26T11:00:01.000000000Z"},
		{at(500_400_000), "2026-11-26T11:00:01.500400000Z"},
		{at(7), "2026-11-26T11:00:01.000000007Z"},
	} {
		got := FormatTime(tc.in)
		if got != tc.want || len(got) != 30 {
			t.Errorf("FormatTime(%v) = %q; want %q (30 characters)", tc.in, got, tc.want)
		}
		back, ok, err := Deadline(map[string]any{HeaderDeadline: got})
		if !ok || err != nil || !back.Equal(tc.in) {
			t.Errorf("Deadline(%q) = %v %v %v; want %v", got, back, ok, err, tc.in)
		}
	}
	// The hand-written formatter agrees with the layout everywhere.
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		in := time.Unix(r.Int64N(253402300800), r.Int64N(1e9)).In(time.FixedZone("", r.IntN(50_000)-25_000))
		if got, want := FormatTime(in), in.UTC().Format(TimeLayout); got != want {
			t.Fatalf("FormatTime(%v) = %q; want %q", in, got, want)
		}
	}
	if got, want := FormatTime(time.Date(12345, 1, 2, 3, 4, 5, 6, time.UTC)), "12345-01-02T03:04:05.000000006Z"; got != want {
		t.Errorf("FormatTime(year 12345) = %q; want %q", got, want)
	}
	// Other publishers may send fewer digits, or none: still a deadline.
	for _, s := range []string{"2026-11-26T12:00:01Z", "2026-11-26T12:00:01.5+01:00", "2026-11-26T12:00:01.5004Z"} {
		if _, ok, err := Deadline(map[string]any{HeaderDeadline: s}); !ok || err != nil {
			t.Errorf("Deadline(%q) = %v, %v; want a deadline", s, ok, err)
		}
	}
}

func TestExpiration(t *testing.T) {
	for left, want := range map[time.Duration]string{
		-time.Second: "1", 0: "1", time.Microsecond: "1", time.Millisecond: "1",
		time.Millisecond + 1: "2", 2 * time.Second: "2000",
	} {
		if got := Expiration(left); got != want {
			t.Errorf("Expiration(%v) = %q; want %q", left, got, want)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) || seen[id] {
			t.Fatalf("NewID() = %q: want 32 lowercase hex, never repeated", id)
		}
		seen[id] = true
	}
}

// FuzzReplyStatus: reply headers come from any worker in any language;
// decoding them never panics, and what decodes is a valid gRPC code.
func FuzzReplyStatus(f *testing.F) {
	f.Add("5", "not found", []byte{}, int64(5), uint8(0))
	f.Add("x", "", []byte{0x08, 0x05}, int64(17), uint8(1))
	f.Add("", "m", []byte{0xff}, int64(-3), uint8(2))
	f.Fuzz(func(t *testing.T, code, msg string, details []byte, n int64, kind uint8) {
		h := amqp.Table{HeaderMessage: msg}
		switch kind % 4 {
		case 0:
			h[HeaderStatus] = code
		case 1:
			h[HeaderStatus] = n
		case 2:
			h[HeaderStatus] = float64(n) / 3
		case 3:
			h[HeaderStatus] = int32(n)
		}
		if len(details) > 0 {
			h[HeaderDetails] = details
		}
		st, err := ReplyStatus(h)
		if err != nil {
			if !errors.Is(err, ErrBadStatus) {
				t.Fatalf("error %v does not wrap ErrBadStatus", err)
			}
			return
		}
		if c := st.Code(); c > codes.Unauthenticated {
			t.Fatalf("decoded code %d out of range", c)
		}
	})
}

func TestReplyMetadataRoundTrip(t *testing.T) {
	in := ReplyMeta{
		Header:     map[string][]string{"location": {"/v1/orders/o-9"}, "x-multi": {"a", "b"}, "trace-bin": {"\x00\xff\x10"}},
		Trailer:    map[string][]string{"x-took": {"12ms"}},
		HTTPStatus: 201,
	}
	h, err := SetReplyMetadata(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := amqp.Table(h).Validate(); err != nil {
		t.Errorf("headers are not a valid AMQP table: %v", err)
	}
	want := map[string]any{
		"figway-rmd-location": "/v1/orders/o-9", "figway-rmd-x-multi": []any{"a", "b"}, "figway-rmd-trace-bin": "AP8Q",
		"figway-rmt-x-took": "12ms", "figway-http-status": int32(201),
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("SetReplyMetadata headers (-want +got):\n%s", diff)
	}
	out, err := ReplyMetadata(h)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("ReplyMetadata(SetReplyMetadata(m)) (-want +got):\n%s", diff)
	}
	if h, err := SetReplyMetadata(nil, ReplyMeta{}); h != nil || err != nil {
		t.Errorf("SetReplyMetadata of nothing = %v, %v; want nil, nil", h, err)
	}
}

func TestReplyMetadataFromOtherWorkers(t *testing.T) {
	tests := []struct {
		name string
		h    amqp.Table
		want ReplyMeta
		bad  string
	}{
		{"bytes and padded base64, int64 status (pika)", amqp.Table{"figway-rmd-etag": []byte(`"v1"`), "figway-rmt-sig-bin": "AP8Q", "figway-http-status": int64(204)},
			ReplyMeta{Header: map[string][]string{"etag": {`"v1"`}}, Trailer: map[string][]string{"sig-bin": {"\x00\xff\x10"}}, HTTPStatus: 204}, ""},
		{"padded base64", amqp.Table{"figway-rmd-k-bin": "AA=="}, ReplyMeta{Header: map[string][]string{"k-bin": {"\x00"}}}, ""},
		{"string status", amqp.Table{"figway-http-status": "202"}, ReplyMeta{HTTPStatus: 202}, ""},
		{"other headers ignored", amqp.Table{"figway-status": int32(0), "x": "y"}, ReplyMeta{}, ""},
		{"status not 2xx", amqp.Table{"figway-http-status": int32(404)}, ReplyMeta{}, "a reply may set 200-299 only"},
		{"status not a number", amqp.Table{"figway-http-status": "created"}, ReplyMeta{}, `"created" is not an integer`},
		{"upper-case key", amqp.Table{"figway-rmd-Location": "x"}, ReplyMeta{}, "lower-case"},
		{"reserved key", amqp.Table{"figway-rmt-grpc-status": "0"}, ReplyMeta{}, "reserved for gRPC"},
		{"transport key", amqp.Table{"figway-rmd-content-type": "text/html"}, ReplyMeta{}, "describes the transport"},
		{"not text", amqp.Table{"figway-rmd-n": int32(3)}, ReplyMeta{}, "want a string"},
		{"bad base64", amqp.Table{"figway-rmd-k-bin": "!!"}, ReplyMeta{}, "not base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReplyMetadata(tc.h)
			if tc.bad != "" {
				if !errors.Is(err, ErrBadMetadata) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("ReplyMetadata(%v) = %v, %v; want ErrBadMetadata saying %q", tc.h, got, err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ReplyMetadata(%v) (-want +got):\n%s", tc.h, diff)
			}
		})
	}
	for _, m := range []ReplyMeta{{HTTPStatus: 302}, {Header: map[string][]string{"Bad": {"x"}}}, {Trailer: map[string][]string{"grpc-x": {"x"}}}} {
		if _, err := SetReplyMetadata(nil, m); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("SetReplyMetadata(%+v) = %v; want ErrBadMetadata", m, err)
		}
	}
}
