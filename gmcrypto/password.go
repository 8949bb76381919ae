package gmcrypto

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emmansun/gmsm/sm3"
)

// DefaultPasswordIterations is the PBKDF2-SM3 cost of new password hashes:
// about 30 ms per check on the project's 2-core machine (see the benchmark),
// slow for guessing, fast enough for a login.
const DefaultPasswordIterations = 60_000

// ErrPasswordHash is returned for a stored hash that cannot be parsed.
var ErrPasswordHash = errors.New("gmcrypto: malformed password hash")

// HashPassword returns "$pbkdf2-sm3$i=<n>$<salt>$<key>" (base64 without
// padding) for password, with a random 16-byte salt. iterations ≤ 0 means
// DefaultPasswordIterations.
func HashPassword(password string, iterations int) (string, error) {
	if iterations <= 0 {
		iterations = DefaultPasswordIterations
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sm3.New, password, salt, iterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$pbkdf2-sm3$i=%d$%s$%s", iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches encoded, in constant time
// with respect to the key.
func CheckPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "pbkdf2-sm3" || !strings.HasPrefix(parts[2], "i=") {
		return false, ErrPasswordHash
	}
	iter, err := strconv.Atoi(parts[2][2:])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false, ErrPasswordHash
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[3])
	want, err2 := enc.DecodeString(parts[4])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false, ErrPasswordHash
	}
	got, err := pbkdf2.Key(sm3.New, password, salt, iter, len(want))
	if err != nil {
		return false, err
	}
	return HMACEqual(got, want), nil
}
