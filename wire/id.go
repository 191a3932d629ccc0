package wire

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns 32 lowercase hex characters encoding 128 random bits. figway
// uses it for correlation ids and event ids: unguessable, so a forged reply
// cannot target a waiting call.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error (crypto/rand, Go 1.24+)
	var s [32]byte
	hex.Encode(s[:], b[:])
	return string(s[:])
}
