package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWT is one route's token check (YAML auth.jwt); config validates it
// and applies the defaults.
type JWT struct {
	// Issuer is the iss claim every token must carry. Required.
	Issuer string
	// Audiences lists what the aud claim must hold: at least one of them.
	// Required.
	Audiences []string
	// JWKS is where the keys come from.
	JWKS JWKS
	// Algorithms are the signature algorithms accepted (asymmetric only).
	// If Algorithms is empty, DefaultAlgorithms are.
	Algorithms []string
	// ClockSkew is how far exp and nbf may be off. If ClockSkew is 0,
	// DefaultClockSkew is used.
	ClockSkew time.Duration
	// ClaimsToHeaders maps a claim's name to the header it becomes.
	ClaimsToHeaders map[string]string
	// ForwardToken passes the token on, to the worker and to legacy; if
	// false, it is removed from the call.
	ForwardToken bool
}

// JWKS is where a key set comes from: exactly one of URL and File.
type JWKS struct {
	URL  string // http:// or https://
	File string // an absolute path (config resolves it)
	// Refresh is how often the set is read again. If Refresh is 0,
	// DefaultRefresh is used.
	Refresh time.Duration
}

// The defaults of JWT and JWKS.
const (
	DefaultClockSkew = 30 * time.Second
	DefaultRefresh   = 10 * time.Minute
)

// DefaultAlgorithms are the algorithms accepted when a route names none.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// MaxTokenBytes bounds a token: a longer one is refused before it is
// parsed.
const MaxTokenBytes = 16 << 10

// Reason is why a token was refused: the reason label of
// figway_auth_refused_total.
type Reason string

// The reasons a token is refused for.
const (
	ReasonMissing     Reason = "missing"       // no bearer token (the gateway's)
	ReasonMalformed   Reason = "malformed"     // not a JWS compact token
	ReasonTooLarge    Reason = "too_large"     // over MaxTokenBytes
	ReasonAlgorithm   Reason = "algorithm"     // alg not accepted (none, HS256, …)
	ReasonUnknownKey  Reason = "unknown_key"   // no key of the set has its kid
	ReasonNoKeys      Reason = "no_keys"       // the set was never read
	ReasonSignature   Reason = "signature"     // the signature does not verify
	ReasonExpired     Reason = "expired"       // exp passed
	ReasonNotYetValid Reason = "not_yet_valid" // nbf to come
	ReasonIssuer      Reason = "issuer"        // iss not the route's issuer
	ReasonAudience    Reason = "audience"      // aud holds none of the audiences
	ReasonClaims      Reason = "claims"        // exp missing, or a claim of the wrong type
)

// Error is a refused token: why, and what the caller is told.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return "token refused: " + e.Detail }

// Why returns the reason, for the gateway's counters.
func (e *Error) Why() string { return string(e.Reason) }

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Verifier checks the tokens of one route. It is safe for concurrent use.
type Verifier struct {
	keys      *KeySet // nil: every token refused (no keys)
	algs      []string
	parser    *jwt.Parser
	unchecked *jwt.Parser // reads the header before anything is trusted
}

// NewVerifier returns the Verifier of j over keys (nil refuses every token).
func NewVerifier(j JWT, keys *KeySet) *Verifier {
	algs := j.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	skew := j.ClockSkew
	if skew == 0 {
		skew = DefaultClockSkew
	}
	return &Verifier{
		keys: keys,
		algs: slices.Clone(algs),
		parser: jwt.NewParser(
			jwt.WithValidMethods(algs),
			jwt.WithIssuer(j.Issuer),
			jwt.WithAudience(j.Audiences...),
			jwt.WithLeeway(skew),
			jwt.WithExpirationRequired(),
			jwt.WithJSONNumber(),
		),
		unchecked: jwt.NewParser(jwt.WithJSONNumber()),
	}
}

// Verify checks token and returns its claims, or an *Error. It waits for
// a key set to be read at most as long as [KeySet] allows, never past
// ctx.
func (v *Verifier) Verify(ctx context.Context, token string) (map[string]any, error) {
	if len(token) > MaxTokenBytes {
		return nil, refuse(ReasonTooLarge, "token of %d bytes, over the limit of %d", len(token), MaxTokenBytes)
	}
	// The algorithm is checked first, from the header alone: alg none and
	// an HMAC "signed" with a public key never reach a key.
	head, _, err := v.unchecked.ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenUnverifiable) {
			return nil, refuse(ReasonAlgorithm, "unknown signing algorithm")
		}
		return nil, refuse(ReasonMalformed, "malformed token")
	}
	if alg, _ := head.Header["alg"].(string); !slices.Contains(v.algs, alg) {
		return nil, refuse(ReasonAlgorithm, "signing algorithm %q not accepted", clip(alg))
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx)); err != nil {
		return nil, refusal(err)
	}
	return claims, nil
}

// keyfunc finds the key of a token by its kid, refreshing the set once
// when the kid is unknown.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if v.keys == nil {
			return nil, refuse(ReasonNoKeys, "no key set")
		}
		kid, _ := t.Header["kid"].(string)
		kf, err := v.keys.keyfunc(ctx, kid)
		if err != nil {
			return nil, err
		}
		return kf(t)
	}
}

// refusal is the *Error of a failed parse.
func refusal(err error) *Error {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ReasonMalformed, "malformed token")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return refuse(ReasonUnknownKey, "no key fits the token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(ReasonSignature, "signature does not verify")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(ReasonExpired, "token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse(ReasonNotYetValid, "token not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuse(ReasonIssuer, "wrong issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse(ReasonAudience, "wrong audience")
	}
	return refuse(ReasonClaims, "invalid claims")
}

// clip bounds what of a caller's value goes into a message.
func clip(s string) string {
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
