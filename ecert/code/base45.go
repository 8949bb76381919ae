package code

import "errors"

// Base45 (RFC 9285) maps two bytes to three characters of the QR code's
// alphanumeric alphabet, so a binary payload fills a QR symbol almost as
// densely as its byte mode would, while staying printable and
// case-insensitive for scanners.
const alphabet45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

var rev45 [256]int8

func init() {
	for i := range rev45 {
		rev45[i] = -1
	}
	for i := 0; i < len(alphabet45); i++ {
		rev45[alphabet45[i]] = int8(i)
	}
}

// EncodeBase45 encodes b (RFC 9285 §4).
func EncodeBase45(b []byte) string {
	out := make([]byte, 0, (len(b)/2)*3+2)
	for i := 0; i+1 < len(b); i += 2 {
		n := int(b[i])<<8 | int(b[i+1])
		out = append(out, alphabet45[n%45], alphabet45[n/45%45], alphabet45[n/2025])
	}
	if len(b)%2 == 1 {
		n := int(b[len(b)-1])
		out = append(out, alphabet45[n%45], alphabet45[n/45])
	}
	return string(out)
}

var errBase45 = errors.New("not Base45")

// DecodeBase45 decodes s, rejecting characters outside the alphabet, a
// dangling single character and groups that overflow (RFC 9285 §4.2).
func DecodeBase45(s string) ([]byte, error) {
	if len(s)%3 == 1 {
		return nil, errBase45
	}
	out := make([]byte, 0, len(s)/3*2+1)
	for i := 0; i < len(s); i += 3 {
		var v [3]int
		k := min(3, len(s)-i)
		for j := 0; j < k; j++ {
			d := rev45[s[i+j]]
			if d < 0 {
				return nil, errBase45
			}
			v[j] = int(d)
		}
		if k == 3 {
			n := v[0] + v[1]*45 + v[2]*2025
			if n > 0xFFFF {
				return nil, errBase45
			}
			out = append(out, byte(n>>8), byte(n))
		} else {
			n := v[0] + v[1]*45
			if n > 0xFF {
				return nil, errBase45
			}
			out = append(out, byte(n))
		}
	}
	return out, nil
}
