package httpapi

import (
	"testing"

	"yibao"
)

func TestEveryCodeHasAStatus(t *testing.T) {
	for _, c := range yibao.Codes {
		if _, ok := statusOf[c]; !ok {
			t.Errorf("code %s has no HTTP status", c)
		}
	}
	if len(statusOf) != len(yibao.Codes) {
		t.Errorf("statusOf has %d entries for %d codes", len(statusOf), len(yibao.Codes))
	}
}
