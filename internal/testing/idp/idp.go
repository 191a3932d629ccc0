// Package idp is a token issuer for tests: it signs JSON Web Tokens
// with keys it rotates, and serves their key set over HTTP on loopback,
// counting the fetches, and can make that endpoint hang or serve any
// document.
package idp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Issuer issues tokens as an identity provider would.
type Issuer struct {
	// Name is the iss of its tokens.
	Name string

	srv     *httptest.Server
	fetches atomic.Int64
	hang    chan struct{} // closed to release hanging fetches; nil: no hang

	mu       sync.Mutex
	keys     []key  // published; keys[0] signs
	override []byte // served instead of keys, if set
	n        int
}

type key struct {
	kid  string
	priv *rsa.PrivateKey
}

// New starts an issuer with one RSA key, its key set served at JWKSURL.
func New(name string) (*Issuer, error) {
	i := &Issuer{Name: name}
	if _, err := i.Rotate(false); err != nil {
		return nil, err
	}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	return i, nil
}

// JWKSURL is where the key set is served.
func (i *Issuer) JWKSURL() string { return i.srv.URL + "/.well-known/jwks.json" }

// Close stops serving, releasing fetches that hang.
func (i *Issuer) Close() {
	i.Hang(false)
	i.srv.CloseClientConnections()
	i.srv.Close()
}

// Fetches counts the key set's fetches so far.
func (i *Issuer) Fetches() int64 { return i.fetches.Load() }

// Rotate makes a new signing key and publishes it; with keepOld, the keys
// before it stay published (as providers do for the tokens they signed),
// else they are dropped. It returns the new kid.
func (i *Issuer) Rotate(keepOld bool) (string, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.n++
	k := key{kid: fmt.Sprintf("key-%d", i.n), priv: priv}
	if keepOld {
		i.keys = append([]key{k}, i.keys...)
	} else {
		i.keys = []key{k}
	}
	return k.kid, nil
}

// KID is the kid of the signing key.
func (i *Issuer) KID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[0].kid
}

// PublicKey returns the signing key's public key.
func (i *Issuer) PublicKey() *rsa.PublicKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return &i.keys[0].priv.PublicKey
}

// Claims are a valid token's claims for aud, subject sub, valid for an hour.
func (i *Issuer) Claims(aud, sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": i.Name, "aud": aud, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// Mint signs claims with the signing key, RS256, naming its kid.
func (i *Issuer) Mint(claims jwt.MapClaims) string {
	i.mu.Lock()
	k := i.keys[0]
	i.mu.Unlock()
	return Sign(jwt.SigningMethodRS256, k.priv, k.kid, claims)
}

// Sign signs claims with method and key, kid in the header if not empty.
func Sign(method jwt.SigningMethod, k any, kid string, claims jwt.MapClaims) string {
	t := jwt.NewWithClaims(method, claims)
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(k)
	if err != nil {
		panic(fmt.Sprintf("idp: sign: %v", err))
	}
	return s
}

// Hang makes the key set's endpoint hold every fetch without answering
// until Hang(false).
func (i *Issuer) Hang(on bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case on && i.hang == nil:
		i.hang = make(chan struct{})
	case !on && i.hang != nil:
		close(i.hang)
		i.hang = nil
	}
}

// Serve makes the endpoint answer doc instead of the key set (nil: the key
// set again).
func (i *Issuer) Serve(doc []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.override = doc
}

// Set returns the published key set's JSON.
func (i *Issuer) Set() ([]byte, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return setOf(i.keys)
}

func setOf(keys []key) ([]byte, error) {
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(&k.priv.PublicKey, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
		})
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	return json.Marshal(set)
}

// ManyKeys returns a key set of n keys (one RSA key published n times
// under n kids): a huge set without generating n keys.
func ManyKeys(n int) ([]byte, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	keys := make([]key, n)
	for j := range keys {
		keys[j] = key{kid: fmt.Sprintf("many-%d", j), priv: priv}
	}
	return setOf(keys)
}

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	i.fetches.Add(1)
	i.mu.Lock()
	hang := i.hang
	i.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	// What is served is what the issuer holds once the fetch is let go.
	i.mu.Lock()
	doc := i.override
	var err error
	if doc == nil {
		doc, err = setOf(i.keys)
	}
	i.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}
