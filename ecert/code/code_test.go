package code_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"yibao"
	"yibao/ecert/code"
	"yibao/gmcrypto"
)

func TestBase45RFC9285(t *testing.T) {
	for _, v := range []struct{ in, out string }{
		{"AB", "BB8"}, {"Hello!!", "%69 VD92EX0"}, {"base-45", "UJCLQE7W581"}, {"ietf!", "QED8WEX0"}, {"", ""},
	} {
		if got := code.EncodeBase45([]byte(v.in)); got != v.out {
			t.Errorf("encode %q = %q, want %q", v.in, got, v.out)
		}
		back, err := code.DecodeBase45(v.out)
		if err != nil || string(back) != v.in {
			t.Errorf("decode %q = %q %v", v.out, back, err)
		}
	}
	for _, bad := range []string{"GGW", "ZZZ", "a", "abc", "A", "BB8~"} {
		if _, err := code.DecodeBase45(bad); err == nil {
			t.Errorf("decode %q: no error", bad)
		}
	}
}

// chain is a national root, a platform of 370100 and one device.
type chain struct {
	root, platform, device *gmcrypto.PrivateKey
	cred                   *code.Credential
	verifier               *code.Verifier
}

var now = time.Date(2026, 11, 23, 10, 0, 5, 0, time.UTC)

func newChain(t testing.TB) *chain {
	c := &chain{root: gmcrypto.DeterministicKey([]byte("test root")), platform: gmcrypto.DeterministicKey([]byte("test platform 370100")),
		device: gmcrypto.DeterministicKey([]byte("test device"))}
	pc, err := code.IssuePlatformCert(c.root, 370100, 1, c.platform.Public(), now.AddDate(5, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := code.ParsePlatformCert(pc.Bytes(), c.root.Public(), now); err != nil {
		t.Fatal(err)
	}
	var id code.CertID
	copy(id[:], "certificate1")
	c.cred, err = code.IssueCredential(c.platform, 370100, 1, id, c.device.Public(), now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	c.verifier = &code.Verifier{Platform: func(admdvs, keyID uint32) (*gmcrypto.PublicKey, bool) {
		if admdvs == 370100 && keyID == 1 {
			return pc.Public, true
		}
		return nil, false
	}}
	return c
}

func (c *chain) code(t testing.TB, at time.Time, counter uint16) string {
	d := &code.Device{Key: c.device, Credential: c.cred.Bytes()}
	s, err := d.Generate(at, 20, counter)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTripThroughARealQRDecoder(t *testing.T) {
	c := newChain(t)
	text := c.code(t, now, 7)
	if len(text) != 343 {
		t.Fatalf("text length %d, docs/ecert.md says 343", len(text))
	}
	png, err := code.PNG(text)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	bmp, _ := gozxing.NewBinaryBitmapFromImage(img)
	// The image is a rendered symbol, not a photo: tell the decoder so.
	// Without the hint gozxing's finder-pattern detector misses about one
	// version-11 symbol in ten (it estimates an alignment pattern outside
	// the image); phones scan with their own detectors.
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		t.Fatalf("gozxing could not read the PNG: %v", err)
	}
	if res.GetText() != text {
		t.Fatal("the decoded text differs")
	}
	got, err := c.verifier.Verify(res.GetText(), now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Counter != 7 || got.Credential.CertID.String() != c.cred.CertID.String() {
		t.Fatalf("%+v", got)
	}
	svg, err := code.SVG(text)
	if err != nil || !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "M4 4h1v1h-1z") {
		t.Fatalf("svg: %v %.80s", err, svg)
	}
}

func TestRefusals(t *testing.T) {
	c := newChain(t)
	good := c.code(t, now, 1)
	other := gmcrypto.DeterministicKey([]byte("impostor"))
	forgedCred, _ := code.IssueCredential(other, 370100, 1, c.cred.CertID, c.device.Public(), now.AddDate(1, 0, 0))
	expiredCred, _ := code.IssueCredential(c.platform, 370100, 1, c.cred.CertID, c.device.Public(), now.AddDate(0, 0, -1))
	foreignCred, _ := code.IssueCredential(c.platform, 440300, 1, c.cred.CertID, c.device.Public(), now.AddDate(1, 0, 0))
	gen := func(key *gmcrypto.PrivateKey, cred []byte, at time.Time, step int) string {
		s, err := (&code.Device{Key: key, Credential: cred}).Generate(at, step, 1)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	raw, _ := code.DecodeBase45(good[4:])
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return code.Prefix + code.EncodeBase45(b)
	}
	cases := []struct {
		name string
		text string
		at   time.Time
		want code.Reason
		code yibao.Code
	}{
		{"not a code", "https://example.com/", now, code.BadPrefix, yibao.CodeInvalid},
		{"another version", "YB2:" + good[4:], now, code.BadVersion, yibao.CodeInvalid},
		{"version byte", flip(0), now, code.BadVersion, yibao.CodeInvalid},
		{"lower case", code.Prefix + strings.ToLower(good[4:]), now, code.BadEncoding, yibao.CodeInvalid},
		{"truncated", good[:len(good)-30], now, code.Truncated, yibao.CodeInvalid},
		{"over-long", good + "000", now, code.TooLong, yibao.CodeInvalid},
		{"far too long", strings.Repeat("A", 600), now, code.TooLong, yibao.CodeInvalid},
		{"counter changed after signing", flip(6), now, code.BadSignature, yibao.CodeBadSignature},
		{"signature bit flipped", flip(200), now, code.BadSignature, yibao.CodeBadSignature},
		{"credential bit flipped", flip(40), now, code.BadCredential, yibao.CodeBadSignature},
		{"credential forged by another key", gen(c.device, forgedCred.Bytes(), now, 20), now, code.BadCredential, yibao.CodeBadSignature},
		{"signed by a key the credential does not name", gen(other, c.cred.Bytes(), now, 20), now, code.BadSignature, yibao.CodeBadSignature},
		{"unknown platform", gen(c.device, foreignCred.Bytes(), now, 20), now, code.UnknownPlatform, yibao.CodeBadSignature},
		{"expired credential", gen(c.device, expiredCred.Bytes(), now, 20), now, code.CredentialExpire, yibao.CodePrecondition},
		{"two steps old", good, now.Add(41 * time.Second), code.Expired, yibao.CodePrecondition},
		{"two steps ahead", good, now.Add(-41 * time.Second), code.FromFuture, yibao.CodePrecondition},
		{"other step length", gen(c.device, c.cred.Bytes(), now, 30), now, code.BadStep, yibao.CodePrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.verifier.Verify(tc.text, tc.at)
			if code.ReasonOf(err) != tc.want || yibao.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v (%s), want %s / %s", err, yibao.ErrorCode(err), tc.want, tc.code)
			}
		})
	}
	// Within the window: this step and one either side.
	for _, d := range []time.Duration{-20 * time.Second, 0, 20 * time.Second} {
		if _, err := c.verifier.Verify(good, now.Add(d)); err != nil {
			t.Errorf("at %s: %v", d, err)
		}
	}
}

// TestPublishedVector checks the vector docs/ecert.md publishes for other
// vendors: fixed keys, a fixed time, the code text.
func TestPublishedVector(t *testing.T) {
	var v struct {
		Root, Platform, Device string // seeds of DeterministicKey
		PlatformCert           string
		Time                   string
		Code                   string
		CertID                 string
		Counter                uint16
	}
	b, err := os.ReadFile("testdata/vector.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339, v.Time)
	root := gmcrypto.DeterministicKey([]byte(v.Root))
	pcb, err := hexDecode(v.PlatformCert)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := code.ParsePlatformCert(pcb, root.Public(), at)
	if err != nil {
		t.Fatal(err)
	}
	ver := &code.Verifier{Platform: func(a, k uint32) (*gmcrypto.PublicKey, bool) { return pc.Public, a == pc.Admdvs && k == pc.KeyID }}
	c, err := ver.Verify(v.Code, at)
	if err != nil {
		t.Fatal(err)
	}
	if c.Credential.CertID.String() != v.CertID || c.Counter != v.Counter {
		t.Fatalf("cert id %s counter %d", c.Credential.CertID, c.Counter)
	}
}

func hexDecode(s string) ([]byte, error) {
	var out []byte
	for i := 0; i+1 < len(s); i += 2 {
		var b byte
		for _, ch := range s[i : i+2] {
			b <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				b |= byte(ch - '0')
			case ch >= 'a' && ch <= 'f':
				b |= byte(ch-'a') + 10
			}
		}
		out = append(out, b)
	}
	return out, nil
}

func TestVerifierIsSafeForConcurrentUse(t *testing.T) {
	c := newChain(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.verifier.Verify(c.code(t, now, uint16(i)), now); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func FuzzParse(f *testing.F) {
	c := newChain(f)
	f.Add(c.code(f, now, 1))
	f.Add("YB1:")
	f.Add("YB1:BB8")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		cd, err := code.Parse(s)
		if err != nil {
			if code.ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if len(cd.Raw()) != code.CodeLen {
			t.Fatalf("parsed %d bytes", len(cd.Raw()))
		}
		// Whatever parses must re-encode to the same text, upper case.
		if code.Prefix+code.EncodeBase45(cd.Raw()) != s {
			t.Fatalf("not canonical: %q", s)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	c := newChain(b)
	text := c.code(b, now, 1)
	c.verifier.Verify(text, now) // warm the credential cache
	for b.Loop() {
		if _, err := c.verifier.Verify(text, now); err != nil {
			b.Fatal(err)
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata/vector.json")

// TestWriteVector writes the published vector (go test -run WriteVector -update).
func TestWriteVector(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the vector")
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	root := gmcrypto.DeterministicKey([]byte("yibao vector root"))
	plat := gmcrypto.DeterministicKey([]byte("yibao vector platform 370100"))
	dev := gmcrypto.DeterministicKey([]byte("yibao vector device"))
	pc, _ := code.IssuePlatformCert(root, 370100, 1, plat.Public(), at.AddDate(10, 0, 0))
	var id code.CertID
	copy(id[:], "YIBAO-VECTOR")
	cred, _ := code.IssueCredential(plat, 370100, 1, id, dev.Public(), at.AddDate(1, 0, 0))
	text, _ := (&code.Device{Key: dev, Credential: cred.Bytes()}).Generate(at, 20, 42)
	out, _ := json.MarshalIndent(map[string]any{
		"root": "yibao vector root", "platform": "yibao vector platform 370100", "device": "yibao vector device",
		"platform_public_key": fmt.Sprintf("%x", plat.Public().Bytes()), "root_public_key": fmt.Sprintf("%x", root.Public().Bytes()),
		"platformcert": fmt.Sprintf("%x", pc.Bytes()), "time": at.Format(time.RFC3339), "code": text,
		"certid": id.String(), "counter": 42,
	}, "", "  ")
	os.WriteFile("testdata/vector.json", append(out, '\n'), 0o644)
}
