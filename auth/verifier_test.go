package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/figway/figway/auth"
	"github.com/figway/figway/internal/testing/idp"
	"github.com/figway/figway/internal/testing/poll"
)

const aud = "orders-api"

// fixture is an issuer, and Keys reading its key set, run until the test
// ends.
type fixture struct {
	iss  *idp.Issuer
	keys *auth.Keys
	jwt  auth.JWT
	v    *auth.Verifier
}

func newFixture(t *testing.T, timing auth.Timing) *fixture {
	t.Helper()
	iss, err := idp.New("https://id.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{iss: iss, keys: auth.NewKeys(timing, slog.New(slog.DiscardHandler))}
	f.jwt = auth.JWT{Issuer: iss.Name, Audiences: []string{aud}, JWKS: auth.JWKS{URL: iss.JWKSURL(), Refresh: time.Hour}}
	f.v = f.keys.Verifier(f.jwt)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.keys.Run(ctx) })
	t.Cleanup(func() { iss.Close(); cancel(); wg.Wait() })
	poll.Until(t, 10*time.Second, "the key set is read", func() bool { return f.keys.States()[0].Up })
	return f
}

func reason(err error) auth.Reason {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}

func TestVerifyValid(t *testing.T) {
	f := newFixture(t, auth.Timing{})
	claims, err := f.v.Verify(context.Background(), f.iss.Mint(f.iss.Claims(aud, "u-1")))
	if err != nil || claims["sub"] != "u-1" {
		t.Fatalf("Verify(valid token) = %v, %v; want sub u-1", claims, err)
	}
	// aud may be a list holding the audience among others.
	c := f.iss.Claims(aud, "u-2")
	c["aud"] = []string{"billing", aud}
	if _, err := f.v.Verify(context.Background(), f.iss.Mint(c)); err != nil {
		t.Errorf("Verify(aud list with %s) = %v", aud, err)
	}
}

// TestHostileTokens refuses each hostile token, with its reason, quickly:
// none reaches a key it should not, none waits for anything.
func TestHostileTokens(t *testing.T) {
	f := newFixture(t, auth.Timing{})
	pub, err := x509.MarshalPKIXPublicKey(f.iss.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := f.iss.Claims(aud, "u-1")
		mod(c)
		return c
	}
	now := time.Now()
	tests := []struct {
		name  string
		token string
		want  auth.Reason
	}{
		{"alg none", idp.Sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, f.iss.KID(), f.iss.Claims(aud, "u-1")), auth.ReasonAlgorithm},
		{"HS256 signed with the RSA public key", idp.Sign(jwt.SigningMethodHS256, pubPEM, f.iss.KID(), f.iss.Claims(aud, "u-1")), auth.ReasonAlgorithm},
		{"expired", f.iss.Mint(valid(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), auth.ReasonExpired},
		{"not yet valid", f.iss.Mint(valid(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), auth.ReasonNotYetValid},
		{"wrong issuer", f.iss.Mint(valid(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com/" })), auth.ReasonIssuer},
		{"wrong audience", f.iss.Mint(valid(func(c jwt.MapClaims) { c["aud"] = "billing-api" })), auth.ReasonAudience},
		{"no exp", f.iss.Mint(valid(func(c jwt.MapClaims) { delete(c, "exp") })), auth.ReasonClaims},
		{"1 MB token", f.iss.Mint(valid(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 1<<20) })), auth.ReasonTooLarge},
		{"signed by another key, same kid", idp.Sign(jwt.SigningMethodES256, ec, f.iss.KID(), f.iss.Claims(aud, "u-1")), auth.ReasonUnknownKey},
		{"tampered claims", tamper(f.iss.Mint(f.iss.Claims(aud, "u-1"))), auth.ReasonSignature},
		{"not a token", "not.a.token", auth.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := f.v.Verify(context.Background(), tt.token)
			took := time.Since(start)
			t.Logf("%s: refused in %v: %v", tt.name, took, err)
			if got := reason(err); got != tt.want {
				t.Errorf("Verify = %v (reason %q); want reason %q", err, got, tt.want)
			}
			if took > 500*time.Millisecond {
				t.Errorf("refused in %v; want well under 500ms", took)
			}
		})
	}
}

// tamper changes the payload of a signed token, keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	c := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(tok, c)
	c["sub"] = "admin"
	forged := idp.Sign(jwt.SigningMethodHS256, []byte("x"), "", c)
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

// TestUnknownKIDRefreshesOnce: a token with a kid the set does not hold
// reads the set again at once — and a new key is found — but a flood of
// unknown kids reads it once per Timing.UnknownKID.
func TestUnknownKIDRefreshesOnce(t *testing.T) {
	f := newFixture(t, auth.Timing{UnknownKID: time.Hour})
	before := f.iss.Fetches()
	if _, err := f.iss.Rotate(true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := f.v.Verify(context.Background(), f.iss.Mint(f.iss.Claims(aud, "u-1"))); err != nil {
		t.Fatalf("Verify(token of a key published since the last read) = %v; want the set read again and the token valid", err)
	}
	t.Logf("a token of a new key verified in %v (one read of the set)", time.Since(start))
	start = time.Now()
	tok := f.iss.Mint(f.iss.Claims(aud, "u-1"))
	for i := range 100 {
		_, err := f.v.Verify(context.Background(), withKID(t, tok, fmt.Sprint("nope-", i)))
		if reason(err) != auth.ReasonUnknownKey {
			t.Fatalf("Verify(unknown kid) = %v; want unknown_key", err)
		}
	}
	t.Logf("100 tokens of unknown kids refused in %v", time.Since(start))
	if got := f.iss.Fetches() - before; got != 1 {
		t.Errorf("the key set was fetched %d times for a new kid and 100 unknown ones; want 1 (one refresh per interval)", got)
	}
}

// withKID returns tok with its header's kid replaced (its signature no
// longer fits, which matters not: the kid is looked up first).
func withKID(t *testing.T, tok, kid string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	h["kid"] = kid
	raw, _ = json.Marshal(h)
	parts[0] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// TestHostileKeySets: a key set of 10,000 keys, an endpoint that hangs
// and one that is down are each refused as a read, the keys read before
// stay in use, and a token waits at most Timing.Wait for a read it needs.
func TestHostileKeySets(t *testing.T) {
	wait := 300 * time.Millisecond
	f := newFixture(t, auth.Timing{Fetch: 2 * time.Second, Wait: wait, UnknownKID: time.Millisecond, Retry: time.Hour})
	good := f.iss.Mint(f.iss.Claims(aud, "u-1"))
	many, err := idp.ManyKeys(10_000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a key set of 10,000 keys is %d bytes", len(many))
	for _, tt := range []struct {
		name  string
		setUp func()
	}{
		{"10,000 keys", func() { f.iss.Serve(many) }},
		{"not JSON", func() { f.iss.Serve([]byte("<html>")) }},
		{"hangs", func() { f.iss.Hang(true) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.setUp()
			defer func() { f.iss.Hang(false); f.iss.Serve(nil) }()
			// An unknown kid asks for a read, which fails: refused, in at
			// most Wait.
			start := time.Now()
			_, err := f.v.Verify(context.Background(), withKID(t, good, "many-9999"))
			took := time.Since(start)
			t.Logf("token of an unknown kid refused in %v: %v", took, err)
			if reason(err) != auth.ReasonUnknownKey {
				t.Errorf("Verify(unknown kid) = %v; want unknown_key", err)
			}
			if took > wait+500*time.Millisecond {
				t.Errorf("refused in %v; want at most the wait, %v, and a margin", took, wait)
			}
			// The keys read before still verify, at once.
			start = time.Now()
			if _, err := f.v.Verify(context.Background(), good); err != nil {
				t.Errorf("Verify(token of a key read before) = %v; want the last good keys kept", err)
			}
			t.Logf("token of a key read before verified in %v", time.Since(start))
		})
	}
	poll.Until(t, 10*time.Second, "the failed reads are counted", func() bool {
		s := f.keys.States()[0]
		return s.ReadsFailed >= 2 && s.Keys == 1
	})
}

// TestNoKeysYet: a set whose first read hangs refuses tokens with no_keys
// within Timing.Wait, and serves them once the endpoint answers.
func TestNoKeysYet(t *testing.T) {
	iss, err := idp.New("https://id.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	iss.Hang(true)
	keys := auth.NewKeys(auth.Timing{Fetch: time.Second, Wait: 200 * time.Millisecond, UnknownKID: time.Millisecond, Retry: 100 * time.Millisecond},
		slog.New(slog.DiscardHandler))
	v := keys.Verifier(auth.JWT{Issuer: iss.Name, Audiences: []string{aud}, JWKS: auth.JWKS{URL: iss.JWKSURL()}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { keys.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	tok := iss.Mint(iss.Claims(aud, "u-1"))
	start := time.Now()
	_, err = v.Verify(context.Background(), tok)
	t.Logf("token refused in %v while the key set hangs: %v", time.Since(start), err)
	if reason(err) != auth.ReasonNoKeys {
		t.Errorf("Verify while the set was never read = %v; want no_keys", err)
	}
	if s := keys.States()[0]; s.Up {
		t.Errorf("State() = %+v; want not up", s)
	}
	iss.Hang(false)
	poll.Until(t, 10*time.Second, "the token verifies once the set answers", func() bool {
		_, err := v.Verify(context.Background(), tok)
		return err == nil
	})
}

// TestKeysFromFile reads a key set file, and reads it again when a token
// names a kid it did not hold.
func TestKeysFromFile(t *testing.T) {
	iss, err := idp.New("https://id.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	path := filepath.Join(t.TempDir(), "keys.json")
	write := func() {
		set, err := iss.Set()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, set, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write()
	keys := auth.NewKeys(auth.Timing{UnknownKID: time.Millisecond}, slog.New(slog.DiscardHandler))
	v := keys.Verifier(auth.JWT{Issuer: iss.Name, Audiences: []string{aud}, JWKS: auth.JWKS{File: path}})
	if _, err := v.Verify(context.Background(), iss.Mint(iss.Claims(aud, "u-1"))); err != nil {
		t.Fatalf("Verify(token of the file's key) = %v", err)
	}
	iss.Rotate(false)
	write()
	if _, err := v.Verify(context.Background(), iss.Mint(iss.Claims(aud, "u-1"))); err != nil {
		t.Errorf("Verify(token of a key written to the file since) = %v", err)
	}
}
