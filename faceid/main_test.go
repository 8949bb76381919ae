package faceid_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"yibao/face"
)

// TestMain installs the face models on first use (npm ci in
// third_party/face, when npm is present), as the README's test command
// promises; without them the face tests skip with the reason.
func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	if _, err := face.Ensure(ctx, "", os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "face tests will skip:", err)
	}
	cancel()
	os.Exit(m.Run())
}
