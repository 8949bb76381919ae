package web_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yibao/ecert/code"
	"yibao/gmcrypto"
)

// TestJSGeneratorMakesCodesGoAccepts runs app/ybcode.js (with the vendored
// sm-crypto) under Node and checks its codes with the Go verifier: the
// browser and the platform implement the same format.
func TestJSGeneratorMakesCodesGoAccepts(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the browser suite (.ci/run) covers the page")
	}
	plat := gmcrypto.DeterministicKey([]byte("js test platform"))
	root := gmcrypto.DeterministicKey([]byte("js test root"))
	now := time.Now()
	pc, err := code.IssuePlatformCert(root, 370100, 1, plat.Public(), now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	dev := gmcrypto.DeterministicKey([]byte("js test device"))
	var id code.CertID
	copy(id[:], "JS-GENERATOR")
	cred, err := code.IssueCredential(plat, 370100, 1, id, dev.Public(), now.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`
const sm2 = require(%q);
const YBCode = require(%q)(sm2);
const device = {privateKey: %q, publicKey: %q, credential: %q, stepSeconds: 20};
for (let i = 0; i < 3; i++) console.log(YBCode.generate(device, %d, 1000 + i));
console.log(YBCode.base45(Buffer.from("Hello!!")));
`, abs(t, "app/vendor/sm2-0.5.8.js"), abs(t, "app/ybcode.js"), hex.EncodeToString(dev.Bytes()), hex.EncodeToString(dev.Public().Bytes()),
		hex.EncodeToString(cred.Bytes()), now.UnixMilli())
	out, err := exec.Command(node, "-e", script).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 || lines[3] != "%69 VD92EX0" {
		t.Fatalf("output: %q", out)
	}
	v := &code.Verifier{Platform: func(a, k uint32) (*gmcrypto.PublicKey, bool) { return pc.Public, a == 370100 && k == 1 }}
	for i, l := range lines[:3] {
		c, err := v.Verify(l, now)
		if err != nil {
			t.Fatalf("code %d from JS refused: %v\n%s", i, err, l)
		}
		if c.Counter != uint16(1000+i) || c.Credential.CertID != id {
			t.Fatalf("code %d: %+v", i, c)
		}
	}
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); err != nil {
		t.Fatal(err)
	}
	return a
}
