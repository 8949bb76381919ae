package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
)

// TestClassify: the history's outcome of each kind of answer.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		err    error
		want   Type
		code   string
	}{
		{201, `{}`, nil, Ok, ""},
		{422, `{"code":"invalid_argument"}`, nil, Fail, "invalid_argument"},
		{422, `{"code":"credit_limit_exceeded"}`, nil, Fail, "credit_limit_exceeded"},
		{409, `{"code":"conflict"}`, nil, Fail, "conflict"},
		{409, `{"code":"idempotency_conflict"}`, nil, Info, "idempotency_conflict"},
		{409, `{"code":"idempotency_outcome_lost"}`, nil, Info, "idempotency_outcome_lost"},
		{429, `{"code":"rate_limited"}`, nil, Info, "rate_limited"},
		{500, `{"code":"internal"}`, nil, Info, "internal"},
		{502, `bad gateway`, nil, Info, "http_502"},
		{0, "", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), Info, "connection_refused"},
		{0, "", fmt.Errorf("read: %w", syscall.ECONNRESET), Info, "connection_reset"},
		{0, "", io.ErrUnexpectedEOF, Info, "connection_closed"},
		{0, "", context.DeadlineExceeded, Info, "timeout"},
		{0, "", errors.New("odd"), Info, "transport_error"},
	} {
		typ, code := classify(c.status, []byte(c.body), c.err)
		if typ != c.want || code != c.code {
			t.Errorf("%d %s %v: %s %q, want %s %q", c.status, c.body, c.err, typ, code, c.want, c.code)
		}
	}
}

// TestExtraPersonsAreValid: imported persons have valid, distinct ID
// numbers, person numbers and phones.
func TestExtraPersonsAreValid(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range extraPersons(500, 1) {
		for _, f := range []string{p[0], p[1], p[3]} {
			if seen[f] {
				t.Fatalf("duplicate %s", f)
			}
			seen[f] = true
		}
		if len(p[1]) != 18 {
			t.Fatalf("id %s", p[1])
		}
	}
}
