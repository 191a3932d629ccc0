package edge

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
	"github.com/figway/figway/internal/app"
	"github.com/figway/figway/internal/testing/fault"
	"github.com/figway/figway/internal/testing/figway"
	"github.com/figway/figway/internal/testing/idp"
	"github.com/figway/figway/internal/testing/poll"
	"github.com/figway/figway/internal/testing/proc"
	"github.com/figway/figway/internal/testing/prom"
	"github.com/figway/figway/internal/testing/rabbitmq"
	"github.com/figway/figway/worker"
)

// authRoutes: GetOrder to the broker with auth (from defaults) and a rate
// limit per the x-user-id its sub claim becomes, and a breaker that one
// failure opens; ListOrders to legacy with auth, an edge check in front of
// the passthrough, and a tight rate limit; CancelOrder with the auth of a
// second issuer, whose key set misbehaves.
const authRoutes = `
server: {grpc: %q, http: %q, admin: %q, shutdown_grace: 2s, max_header_bytes: 1048576}
descriptors: [%q]
broker: {url: %q}
legacy: {grpc: %q, http: %q}
defaults:
  auth:
    jwt:
      issuer: %q
      audiences: [orders-api]
      jwks: {url: %q, refresh: 1s}
      claims_to_headers: {sub: x-user-id, tenant: x-tenant-id}
routes:
  - method: orders.v1.OrderService/GetOrder
    routing_key: orders.get
    breaker: {failures: 1}
    rate_limit: {per: x-user-id, rate: 100/s, burst: 20, max_keys: 1000}
  - method: orders.v1.OrderService/ListOrders
    to: legacy
    rate_limit: {per: x-user-id, rate: 6/m, burst: 1}
  - method: orders.v1.OrderService/CancelOrder
    routing_key: orders.get
    auth: {jwt: {issuer: %q, audiences: [orders-api], jwks: {url: %q, refresh: 1s}}}
topology:
  queues: [{name: orders.get}]
`

// legacyOrders is the legacy gRPC service: it records the metadata of the
// ListOrders calls figway passes through.
type legacyOrders struct {
	ordersv1.UnimplementedOrderServiceServer
	mu   sync.Mutex
	seen []metadata.MD
}

func (l *legacyOrders) ListOrders(ctx context.Context, _ *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	l.mu.Lock()
	l.seen = append(l.seen, md)
	l.mu.Unlock()
	return &ordersv1.ListOrdersResponse{}, nil
}

func (l *legacyOrders) last() metadata.MD {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		return nil
	}
	return l.seen[len(l.seen)-1]
}

// authFixture is a figway in-process with authRoutes, a worker, the
// legacy services and two issuers.
type authFixture struct {
	iss, other        *idp.Issuer
	grpc, http, admin string
	orders            ordersv1.OrderServiceClient
	other2            ordersv1.OrderServiceClient // a second client, on its own connection
	legacy            *legacyOrders
	legacyHTTP        chan http.Header
	// worker records what the worker got: the metadata of each order id.
	seen    sync.Map // order id → map[string][]string
	served  atomic.Int64
	succeed atomic.Int64 // GetOrder calls the test saw answered OK
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	f := &authFixture{legacy: &legacyOrders{}, legacyHTTP: make(chan http.Header, 16)}
	var err error
	if f.iss, err = idp.New("https://id.example.com/"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.iss.Close)
	if f.other, err = idp.New("https://other.example.com/"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.other.Close)
	f.other.Hang(true) // from the start: figway never has its keys

	legacyGRPC := figway.ServeLegacy(t, f.legacy)
	lh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case f.legacyHTTP <- r.Header.Clone():
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"orders": []}`)
	}))
	t.Cleanup(lh.Close)

	url := rabbitmq.ForTest(t).NewVHost(t)
	desc, err := filepath.Abs("../../examples/orders/orders.binpb")
	if err != nil {
		t.Fatal(err)
	}
	f.grpc, f.http, f.admin = proc.FreeAddr(t), proc.FreeAddr(t), proc.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "figway.yaml")
	y := fmt.Sprintf(authRoutes, f.grpc, f.http, f.admin, desc, url, legacyGRPC, lh.URL,
		f.iss.Name, f.iss.JWKSURL(), f.other.Name, f.other.JWKSURL())
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}

	w := worker.New(worker.Config{URL: url, Queue: "orders.get", Logger: slog.New(slog.DiscardHandler)})
	worker.Handle(w, "orders.v1.OrderService/GetOrder", func(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
		f.served.Add(1)
		f.seen.Store(req.GetOrderId(), worker.Metadata(ctx))
		return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
	})
	fault.RunWorker(t, w)

	figway.ServeApp(t, path, figway.Addrs{GRPC: f.grpc, HTTP: f.http, Admin: f.admin}, true, app.Options{Version: "test"})
	fault.WaitConsuming(t, w)
	conn, err := grpc.NewClient(f.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(4<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.orders = ordersv1.NewOrderServiceClient(conn)
	f.other2 = f.dial(t)
	return f
}

// dial returns a client on a connection of its own: a second client.
func (f *authFixture) dial(t *testing.T) ordersv1.OrderServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(f.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ordersv1.NewOrderServiceClient(conn)
}

// get calls GetOrder for id with token (none if ""), and extra metadata.
func (f *authFixture) get(token, id string, kv ...string) (*ordersv1.Order, metadata.MD, error) {
	return f.getOn(f.orders, token, id, kv...)
}

// getOn is get on client c.
func (f *authFixture) getOn(c ordersv1.OrderServiceClient, token, id string, kv ...string) (*ordersv1.Order, metadata.MD, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		kv = append(kv, "authorization", "Bearer "+token)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	var trailer metadata.MD
	o, err := c.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id}, grpc.Trailer(&trailer))
	if err == nil {
		f.succeed.Add(1)
	}
	return o, trailer, err
}

func (f *authFixture) token(sub string) string {
	c := f.iss.Claims("orders-api", sub)
	c["tenant"] = "acme"
	return f.iss.Mint(c)
}

func (f *authFixture) workerSaw(t *testing.T, id string) map[string][]string {
	t.Helper()
	v, ok := f.seen.Load(id)
	if !ok {
		t.Fatalf("the worker never got order %s", id)
	}
	md, _ := v.(map[string][]string)
	return md
}

// TestAuthAndRateLimits runs a whole figway with auth and rate limits
// against a real key set endpoint that rotates its keys, real gRPC and
// REST clients, a worker on a real RabbitMQ and the legacy services.
func TestAuthAndRateLimits(t *testing.T) {
	f := newAuthFixture(t)

	t.Run("claims become headers, forged ones and the token go", func(t *testing.T) {
		if _, _, err := f.get(f.token("u-1"), "claims", "x-user-id", "forged", "x-tenant-id", "forged"); err != nil {
			t.Fatalf("GetOrder with a valid token = %v", err)
		}
		md := f.workerSaw(t, "claims")
		if !slices.Equal(md["x-user-id"], []string{"u-1"}) || !slices.Equal(md["x-tenant-id"], []string{"acme"}) {
			t.Errorf("the worker got x-user-id %q, x-tenant-id %q; want the claims' u-1 and acme, not the caller's", md["x-user-id"], md["x-tenant-id"])
		}
		if _, ok := md["authorization"]; ok {
			t.Errorf("the worker got the token (forward_token is false)")
		}
	})

	t.Run("passthrough with auth", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := f.orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListOrders (to: legacy) without a token = %v; want UNAUTHENTICATED before legacy", err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.token("u-2"), "x-user-id", "forged")
		if _, err := f.orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{}); err != nil {
			t.Fatalf("ListOrders with a token = %v", err)
		}
		md := f.legacy.last()
		if !slices.Equal(md.Get("x-user-id"), []string{"u-2"}) || len(md.Get("authorization")) != 0 {
			t.Errorf("legacy got x-user-id %q, authorization %q; want u-2 and none", md.Get("x-user-id"), md.Get("authorization"))
		}
		// ListOrders allows a user one call every 10 s: the next is
		// refused before legacy, with retry-after.
		var trailer metadata.MD
		if _, err := f.orders.ListOrders(ctx, &ordersv1.ListOrdersRequest{}, grpc.Trailer(&trailer)); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("a second ListOrders within the second = %v; want RESOURCE_EXHAUSTED", err)
		} else if ra := trailer.Get("retry-after"); len(ra) != 1 || !inSeconds(ra[0], 1, 10) {
			t.Errorf("retry-after = %q; want 1 to 10 (seconds)", ra)
		}
		// REST, through the legacy HTTP service.
		req, _ := http.NewRequest("GET", "http://"+f.http+"/v1/orders", nil)
		if resp := do(t, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /v1/orders without a token = %d; want 401", resp.StatusCode)
		}
		req.Header.Set("Authorization", "Bearer "+f.token("u-3"))
		req.Header.Set("X-User-Id", "forged")
		if resp := do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/orders with a token = %d; want legacy's 200", resp.StatusCode)
		}
		h := <-f.legacyHTTP
		if !slices.Equal(h.Values("X-User-Id"), []string{"u-3"}) || h.Get("Authorization") != "" {
			t.Errorf("legacy HTTP got X-User-Id %q, Authorization %q; want u-3 and none", h.Values("X-User-Id"), h.Get("Authorization"))
		}
	})

	t.Run("REST answers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+f.http+"/v1/orders/rest-1", nil)
		resp := do(t, req)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("GET without a token = %d, WWW-Authenticate %q; want 401, Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		c := f.iss.Claims("orders-api", "u-1")
		c["exp"] = time.Now().Add(-time.Hour).Unix()
		req.Header.Set("Authorization", "Bearer "+f.iss.Mint(c))
		resp = do(t, req)
		if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(wa, `Bearer error="invalid_token"`) {
			t.Errorf("GET with an expired token = %d, WWW-Authenticate %q; want 401, Bearer error=\"invalid_token\"", resp.StatusCode, wa)
		}
		req.Header.Set("Authorization", "Bearer "+f.token("rest-user"))
		if resp = do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET with a token = %d; want 200", resp.StatusCode)
		}
		f.succeed.Add(1)
		if md := f.workerSaw(t, "rest-1"); !slices.Equal(md["x-user-id"], []string{"rest-user"}) {
			t.Errorf("the worker got x-user-id %q over REST; want rest-user", md["x-user-id"])
		}
		// ListOrders allows a user one call every 10 s: 429 with Retry-After.
		req, _ = http.NewRequest("GET", "http://"+f.http+"/v1/orders", nil)
		req.Header.Set("Authorization", "Bearer "+f.token("rest-limited"))
		first, second := do(t, req), do(t, req)
		if first.StatusCode != http.StatusOK || second.StatusCode != http.StatusTooManyRequests || !inSeconds(second.Header.Get("Retry-After"), 1, 10) {
			t.Errorf("two GET /v1/orders at once = %d, %d (Retry-After %q); want 200, 429 (1 to 10)",
				first.StatusCode, second.StatusCode, second.Header.Get("Retry-After"))
		}
		<-f.legacyHTTP // the first reached legacy
	})

	t.Run("hostile tokens, each refused quickly and alone", func(t *testing.T) { hostileTokens(t, f) })
	t.Run("keys rotate", func(t *testing.T) { rotation(t, f) })
	t.Run("rate limit accuracy and a second client", func(t *testing.T) { rateLimits(t, f) })
	t.Run("shown where people look", func(t *testing.T) { shown(t, f) })
}

// inSeconds reports whether s is a whole number of seconds from lo to hi.
func inSeconds(s string, lo, hi int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= lo && n <= hi
}

func do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// hostileTokens sends each hostile token while a good client, on a
// connection of its own, calls every 20 ms: each is refused with
// UNAUTHENTICATED within a second (the 1 MB token: within twice what
// 1 MB of headers takes to arrive at all, and a second; the key set that
// hangs: the 1 s wait, and a margin), and the good client sees no failure.
func hostileTokens(t *testing.T, f *authFixture) {
	pub, _ := x509.MarshalPKIXPublicKey(f.iss.PublicKey())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := f.iss.Claims("orders-api", "hostile")
		mod(c)
		return c
	}
	many, err := idp.ManyKeys(10_000)
	if err != nil {
		t.Fatal(err)
	}
	// What it costs to send and receive 1 MB of headers at all, with a
	// valid token: the bound of the 1 MB token is twice that (it varies as
	// much under load) and a second.
	start := time.Now()
	if _, _, err := f.get(f.token("big"), "big", "x-pad", strings.Repeat("x", 987_000)); err != nil {
		t.Fatalf("GetOrder with a valid token and 1 MB of another header = %v", err)
	}
	bigHeader := time.Since(start)
	t.Logf("a call with a valid token and 1 MB of another header answered in %v", bigHeader)
	tests := []struct {
		name  string
		call  func() error
		bound time.Duration
	}{
		{"alg none", f.refused(idp.Sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, f.iss.KID(), claims(func(jwt.MapClaims) {}))), time.Second},
		{"HS256 signed with the RSA public key", f.refused(idp.Sign(jwt.SigningMethodHS256, pubPEM, f.iss.KID(), claims(func(jwt.MapClaims) {}))), time.Second},
		{"expired", f.refused(f.iss.Mint(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }))), time.Second},
		{"not yet valid", f.refused(f.iss.Mint(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() }))), time.Second},
		{"wrong issuer", f.refused(f.iss.Mint(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com/" }))), time.Second},
		{"wrong audience", f.refused(f.iss.Mint(claims(func(c jwt.MapClaims) { c["aud"] = "billing-api" }))), time.Second},
		{"1 MB token", f.refused(f.iss.Mint(claims(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 740_000) }))), 2*bigHeader + time.Second},
		{"JWKS URL that hangs", f.cancel(f.other.Mint(f.other.Claims("orders-api", "x"))), 3 * time.Second},
		{"JWKS with 10,000 keys", func() error {
			f.other.Serve(many) // what the hanging fetch, let go, answers
			f.other.Hang(false)
			return f.cancel(f.other.Mint(f.other.Claims("orders-api", "x")))()
		}, 3 * time.Second},
	}
	stop := make(chan struct{})
	var good sync.WaitGroup

	var goodOK, goodFailed atomic.Int64
	good.Go(func() {
		tok := f.token("steady")
		for i := 0; i < 100_000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, _, err := f.getOn(f.other2, tok, fmt.Sprint("steady-", i)); err != nil {
				goodFailed.Add(1)
				t.Errorf("a good client's call failed while hostile tokens came: %v", err)
			} else {
				goodOK.Add(1)
			}
		}
	})
	for _, tt := range tests {
		start := time.Now()
		err := tt.call()
		took := time.Since(start)
		t.Logf("%s: refused in %v: %v", tt.name, took, err)
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v; want UNAUTHENTICATED", tt.name, err)
		}
		if took > tt.bound {
			t.Errorf("%s: refused in %v; want under %v", tt.name, took, tt.bound)
		}
	}
	close(stop)
	good.Wait()
	t.Logf("a good client meanwhile: %d calls answered, %d failed", goodOK.Load(), goodFailed.Load())
	if goodOK.Load() == 0 {
		t.Error("the good client got no answer while the hostile tokens came")
	}
}

func (f *authFixture) refused(token string) func() error {
	return func() error {
		_, _, err := f.get(token, "hostile")
		return err
	}
}

// cancel calls CancelOrder, the route of the other issuer.
func (f *authFixture) cancel(token string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		_, err := f.orders.CancelOrder(ctx, &ordersv1.CancelOrderRequest{OrderId: "x"})
		return err
	}
}

// rotation rotates the issuer's keys during the run: a token of a key
// published since the last read is served at once (the unknown kid reads
// the set), and a token of a key the issuer no longer publishes is
// refused once figway has read the set again (refresh: 1s).
func rotation(t *testing.T, f *authFixture) {
	old := f.token("rot")
	if _, err := f.iss.Rotate(true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := f.get(f.token("rot"), "rot-1"); err != nil {
		t.Fatalf("GetOrder with a token of a key published since = %v", err)
	}
	t.Logf("a token of a new key served in %v", time.Since(start))
	if _, err := f.iss.Rotate(false); err != nil { // the old keys withdrawn
		t.Fatal(err)
	}
	// Two rotations within 10 s: the second kid waits for the next
	// refresh (1 s), not for a read of its own.
	start = time.Now()
	poll.Until(t, 15*time.Second, "a token of the newest key is served", func() bool {
		_, _, err := f.get(f.token("rot"), "rot-2")
		return err == nil
	})
	t.Logf("a token of the key of a second rotation within 10 s served after %v", time.Since(start))
	start = time.Now()
	poll.Until(t, 15*time.Second, "a token of a withdrawn key is refused", func() bool {
		_, _, err := f.get(old, "rot-3")
		return status.Code(err) == codes.Unauthenticated
	})
	t.Logf("a token of a withdrawn key refused %v after the rotation", time.Since(start))
}

// rateLimits: a client looping at full speed, 32 calls at a time, for
// 10 s gets 100/s and its burst (±10 %), and a second client on the same
// route, on a connection of its own, calling every 100 ms meanwhile, is
// never refused and not slowed.
func rateLimits(t *testing.T, f *authFixture) {
	calm := f.token("calm")
	before := latencyOn(t, f, calm, 10, "calm-before-")

	loud := f.token("loud")
	const window = 10 * time.Second
	var ok, limited, other atomic.Int64
	var retryAfter atomic.Value
	var wg, calmWG sync.WaitGroup
	var during []time.Duration
	calmWG.Go(func() { during = latencyOn(t, f, calm, 60, "calm-during-") })
	start := time.Now()
	deadline := start.Add(window)
	for g := range 32 {
		wg.Go(func() {
			for i := 0; i < 200_000 && time.Now().Before(deadline); i++ {
				_, tr, err := f.get(loud, fmt.Sprint("loud-", g, "-", i))
				switch status.Code(err) {
				case codes.OK:
					ok.Add(1)
				case codes.ResourceExhausted:
					limited.Add(1)
					if v := tr.Get("retry-after"); len(v) > 0 {
						retryAfter.Store(v[0])
					}
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	calmWG.Wait()
	rate := float64(ok.Load()-20) / elapsed.Seconds()
	offered := float64(ok.Load()+limited.Load()) / elapsed.Seconds()
	t.Logf("loud client (32 calls at a time) over %v: %d answered, %d refused (retry-after %v), %d other; offered %.0f calls/s, got %.1f calls/s past the burst of 20 (limit 100/s)",
		elapsed.Round(time.Millisecond), ok.Load(), limited.Load(), retryAfter.Load(), other.Load(), offered, rate)
	if rate > 110 {
		t.Errorf("the loud client got %.1f calls/s; want at most 100/s +10%%", rate)
	}
	// The lower bound has more room than the upper: with 32 calls in
	// flight and each answered slowly on a loaded machine, there are
	// moments when none of the loud client's calls waits at the limiter,
	// and the tokens past the burst are lost (89.9/s seen at load average
	// 28). ratelimit's TestAllowRealClock holds the limiter itself to ±10%.
	switch {
	case offered >= 200 && rate < 80:
		t.Errorf("the loud client offered %.0f calls/s and got %.1f; want 100/s -20%%", offered, rate)
	case offered < 200:
		// The limiter cannot be held to a rate the machine did not offer;
		// ratelimit's TestAllowRealClock holds it to 100/s ±10%% in real time.
		t.Logf("the machine offered %.0f calls/s, under twice the limit: the lower bound is not judged here", offered)
	}
	if limited.Load() == 0 {
		t.Error("the loud client was never refused")
	}
	if ra, _ := retryAfter.Load().(string); ra != "1" {
		t.Errorf("retry-after of a refused call = %q; want 1", ra)
	}
	if other.Load() > 0 {
		t.Errorf("%d of the loud client's calls failed otherwise than RESOURCE_EXHAUSTED", other.Load())
	}
	p := func(ds []time.Duration, q float64) time.Duration {
		s := slices.Clone(ds)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[int(q*float64(len(s)-1))]
	}
	t.Logf("calm client: p50 %v, max %v before; p50 %v, p90 %v, max %v while the loud one looped (%d calls)",
		p(before, .5), p(before, 1), p(during, .5), p(during, .9), p(during, 1), len(during))
	// The bound holds on a loaded two-core machine under -race; a calm
	// client queued behind the loud one would wait seconds.
	if p(during, .5) > 10*p(before, .5)+500*time.Millisecond {
		t.Errorf("the calm client's median went from %v to %v while another looped", p(before, .5), p(during, .5))
	}
}

// latencyOn times n calls of GetOrder with token on a connection of its
// own, one every 100 ms, each of which must be answered.
func latencyOn(t *testing.T, f *authFixture, token string, n int, id string) []time.Duration {
	var out []time.Duration
	for i := range n {
		start := time.Now()
		if _, _, err := f.getOn(f.other2, token, fmt.Sprint(id, i)); err != nil {
			t.Errorf("the calm client's call %d failed: %v", i, err)
		}
		out = append(out, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// shown: the metrics count the refusals, the breaker that one failure
// opens is closed (refusals are no failures), nothing refused was
// published, the status page shows the refusals of the last minute and
// the OpenAPI document the bearer scheme.
func shown(t *testing.T, f *authFixture) {
	s := prom.Get(t, "http://"+f.admin+"/metrics")
	const route = "orders.v1.OrderService/GetOrder"
	for _, reason := range []string{"missing", "expired", "algorithm", "issuer", "audience", "not_yet_valid", "too_large"} {
		if v := s.Value("figway_auth_refused_total", "route", route, "reason", reason); v < 1 {
			t.Errorf("figway_auth_refused_total{reason=%q} = %v; want at least 1", reason, v)
		}
	}
	if v := s.Value("figway_rate_limited_total", "route", route); v < 1 {
		t.Errorf("figway_rate_limited_total = %v; want at least 1", v)
	}
	if v := s.Value("figway_breaker_state", "route", route, "state", "closed"); v != 1 {
		t.Errorf("the breaker of GetOrder (failures: 1) is not closed after the refusals: %v", s.Series("figway_breaker_state"))
	}
	if v := s.Value("figway_jwks_up", "jwks", f.iss.JWKSURL()); v != 1 {
		t.Errorf("figway_jwks_up of the good issuer = %v; want 1", v)
	}
	if v := s.Value("figway_jwks_up", "jwks", f.other.JWKSURL()); v != 0 {
		t.Errorf("figway_jwks_up of the misbehaving issuer = %v; want 0", v)
	}
	// Every call the worker served is one the test saw answered: nothing
	// refused was published.
	if served, answered := f.served.Load(), f.succeed.Load(); served > answered {
		t.Errorf("the worker served %d GetOrder calls, the clients were answered %d; refused calls were published", served, answered)
	}
	poll.Until(t, 15*time.Second, "the status page shows GetOrder's refusals", func() bool {
		resp, err := http.Get("http://" + f.admin + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		row := string(b)
		i := strings.Index(row, `data-method="`+route+`"`)
		if i < 0 {
			return false
		}
		row = row[i:]
		row = row[:strings.Index(row, "</tr>")]
		return strings.Contains(row, `data-col="auth-refused" class="e4">`) && strings.Contains(row, `data-col="rate-limited" class="e4">`)
	})
	resp, err := http.Get("http://" + f.http + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths      map[string]map[string]json.RawMessage
		Components struct {
			SecuritySchemes map[string]struct{ Type, Scheme string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("/openapi.json securitySchemes = %+v; want bearer", doc.Components.SecuritySchemes)
	}
	if op := string(doc.Paths["/v1/orders/{order_id}"]["get"]); !strings.Contains(op, `"security"`) {
		t.Errorf("GetOrder's operation has no security requirement: %s", op)
	}
}
