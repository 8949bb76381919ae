package faceid_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/demo"
	"yibao/face"
	"yibao/face/eval"
	"yibao/face/onnx"
	"yibao/faceid"
	"yibao/gmcrypto"
	"yibao/money"
	"yibao/pay"
	"yibao/settlement"
)

const hospital = "H37010000001"

type env struct {
	t        *testing.T
	a        *app.App
	d        *demo.Dataset
	cashier  context.Context
	key      *gmcrypto.PrivateKey
	terminal string
	enrolled eval.Person
	other    eval.Person
}

// newEnv opens a platform with face payment on; without the models the
// test is skipped (.ci/run installs them).
func newEnv(t *testing.T) *env {
	t.Helper()
	paths, err := face.Locate("")
	if err != nil {
		t.Skipf("face models not installed (%v): run %s", err, face.InstallHint)
	}
	a, d := apptest.Open(t, func(c *app.Config) { c.Face = "auto" })
	if on, msg := a.Face.Status(); !on {
		t.Fatalf("face payment is off: %s", msg)
	}
	emb, err := onnx.New(paths)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	enrolled, other, err := eval.DemoPersons(context.Background(), emb, paths)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, a: a, d: d, enrolled: enrolled, other: other,
		cashier: yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: hospital})}
	e.key, _ = gmcrypto.GenerateKey(nil)
	pub, _ := gmcrypto.MarshalPublicKeyPEM(e.key.Public())
	e.terminal = "T-" + hospital + "-1"
	if _, err := a.Face.RegisterTerminal(e.cashier, faceid.Terminal{TerminalID: e.terminal, Name: "counter 1", PublicKey: string(pub)}); err != nil {
		t.Fatal(err)
	}
	return e
}

func jpg(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zoom returns the centre of img magnified by f, same size (nearest
// neighbour): the face looks closer.
func zoom(img image.Image, f float64) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(b)
	cx, cy := float64(b.Min.X+b.Dx()/2), float64(b.Min.Y+b.Dy()/2)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			sx, sy := int(cx+(float64(x)-cx)/f), int(cy+(float64(y)-cy)/f)
			out.Set(x, y, img.At(sx, sy))
		}
	}
	return out
}

// person is a demo person with a phone (for 1:N) and an ID number.
type person struct {
	psn, id, name, last4 string
}

func (e *env) person(i int) person {
	e.t.Helper()
	ctx := yibao.WithPrincipal(context.Background(), yibao.System("test"))
	var adults []string
	for _, p := range e.d.Persons {
		if p.Admdvs == "370100" && p.BirthDate < "2000-01-01" && p.Phone != "" {
			adults = append(adults, p.PsnNo)
		}
	}
	p, err := e.a.Registry.Person(ctx, adults[i], true)
	if err != nil {
		e.t.Fatal(err)
	}
	return person{psn: p.PsnNo, id: p.IDNumber, name: p.Name, last4: p.Phone[len(p.Phone)-4:]}
}

func (e *env) enrol(p person, img image.Image) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.a.Face.GiveConsent(ctx, p.psn, faceid.ConsentVersion, "app"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.a.Face.Enrol(ctx, p.psn, jpg(e.t, img)); err != nil {
		e.t.Fatal(err)
	}
}

// request builds a signed verification answering a fresh challenge with
// frames of img: moving closer or farther as asked.
func (e *env) request(img image.Image, idNumber, last4 string) faceid.VerifyRequest {
	e.t.Helper()
	ch, err := e.a.Face.NewChallenge(e.cashier, e.terminal)
	if err != nil {
		e.t.Fatal(err)
	}
	near := zoom(img, 1.3)
	frames := []image.Image{img, zoom(img, 1.15), near}
	if ch.Kind == "farther" {
		frames = []image.Image{near, zoom(img, 1.15), img}
	}
	r := faceid.VerifyRequest{TerminalID: e.terminal, ChallengeID: ch.ChallengeID, Nonce: nonce(), Timestamp: time.Now().Unix(), IDNumber: idNumber, PhoneLast4: last4}
	var hashes []string
	for _, f := range frames {
		b := jpg(e.t, jitter(f))
		r.Frames = append(r.Frames, base64.StdEncoding.EncodeToString(b))
		hashes = append(hashes, faceid.FrameDigest(b))
	}
	e.sign(&r, hashes)
	return r
}

func (e *env) sign(r *faceid.VerifyRequest, hashes []string) {
	sig, err := e.key.Sign([]byte(faceid.SigningString(*r, hashes)))
	if err != nil {
		e.t.Fatal(err)
	}
	r.Signature = base64.StdEncoding.EncodeToString(sig)
}

// jitter changes a few corner pixels at random: two camera frames are
// never byte-identical.
func jitter(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			out.Set(x, y, img.At(x, y))
		}
	}
	var r [8]byte
	rand.Read(r[:])
	for i := 0; i < 8; i += 2 {
		out.Set(b.Min.X+int(r[i]%16), b.Min.Y+int(r[i+1]%16), color.RGBA{r[i], r[i+1], r[i], 255})
	}
	return out
}

func nonce() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestFacePayment: an enrolled person is identified 1:1 and 1:N, opens a
// visit with the face's ecToken and pays; a person not enrolled is
// refused; withdrawing consent deletes every template and the face no
// longer matches.
func TestFacePayment(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, bob := e.person(0), e.person(1)
	e.enrol(alice, e.enrolled.Photo)

	v, err := e.a.Face.Verify(e.cashier, e.request(e.enrolled.Frame, alice.id, ""))
	if err != nil {
		t.Fatal(err)
	}
	if v.PsnNo != alice.psn || v.Mode != "one_to_one" || v.EcToken == "" {
		t.Fatalf("1:1: %+v", v)
	}
	t.Logf("1:1 score %.3f liveness %.2f", v.Score, v.Liveness)
	v, err = e.a.Face.Verify(e.cashier, e.request(e.enrolled.Frame, "", alice.last4))
	if err != nil {
		t.Fatal(err)
	}
	if v.PsnNo != alice.psn || v.Mode != "one_to_n" {
		t.Fatalf("1:N: %+v", v)
	}
	// The face opens a visit and pays like a scanned code.
	psn, _, err := e.a.Ecert.TokenPerson(e.cashier, v.EcToken)
	if err != nil || psn != alice.psn {
		t.Fatalf("token: %s %v", psn, err)
	}
	vis, err := e.a.Settle.OpenVisit(e.cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: hospital, Type: "general_outpatient", DeptCode: "NK", DeptName: "内科", MdtrtCertType: "01"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Ecert.BindToken(ctx, v.EcToken, vis.MdtrtID); err != nil {
		t.Fatal(err)
	}
	var drug string
	for _, it := range e.d.Catalog {
		if it.Kind == yibao.ItemDrug && it.Class == "A" {
			drug = it.Code
			break
		}
	}
	if _, err := e.a.Settle.AddFeeLines(e.cashier, vis.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: drug, UnitPrice: money.Yuan(60_000), Quantity: money.MustRatio(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Pay.PayVisit(e.cashier, vis.MdtrtID, pay.PayRequest{Channel: pay.ChannelCounter}); !yibao.IsCode(err, yibao.CodePrecondition) || !strings.Contains(err.Error(), "face_limit_exceeded") {
		t.Fatalf("a ¥60,000 face-only payment: %v", err)
	}

	// Bob is not enrolled: refused both ways, even with Alice's digits.
	if _, err := e.a.Face.Verify(e.cashier, e.request(e.other.Frame, bob.id, "")); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("not enrolled, 1:1: %v", err)
	}
	if _, err := e.a.Face.Verify(e.cashier, e.request(e.other.Frame, alice.id, "")); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("another face with Alice's ID number: %v", err)
	}
	if _, err := e.a.Face.Verify(e.cashier, e.request(e.other.Frame, "", alice.last4)); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("another face with Alice's phone digits: %v", err)
	}

	// Withdrawal deletes every template; the face no longer matches.
	c, err := e.a.Face.Withdraw(ctx, alice.psn)
	if err != nil || c.Templates != 0 || c.Status != "withdrawn" {
		t.Fatalf("withdraw: %+v %v", c, err)
	}
	var n int
	e.a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM face_templates WHERE psn_no = ?`, alice.psn).Scan(&n)
	if n != 0 {
		t.Fatalf("%d templates left after withdrawal", n)
	}
	if _, err := e.a.Face.Verify(e.cashier, e.request(e.enrolled.Frame, alice.id, "")); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("after withdrawal: %v", err)
	}
	if _, err := e.a.Face.Enrol(ctx, alice.psn, jpg(t, e.enrolled.Photo)); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("enrolment without consent: %v", err)
	}
}

// TestBadFaceInput: no face, a dark image, a corrupt upload, a replayed
// frame or nonce, a forged signature, an unregistered terminal, a
// missing second factor and an unanswered challenge are refused and
// store nothing.
func TestBadFaceInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.person(0)
	if _, err := e.a.Face.GiveConsent(ctx, alice.psn, faceid.ConsentVersion, "app"); err != nil {
		t.Fatal(err)
	}
	blank := image.NewRGBA(image.Rect(0, 0, 480, 480))
	for i := range blank.Pix {
		blank.Pix[i] = 200
	}
	dark := image.NewRGBA(image.Rect(0, 0, 480, 480))
	for y := range 480 {
		for x := range 480 {
			c := e.enrolled.Photo.At(x, y)
			r, g, b, _ := c.RGBA()
			dark.Set(x, y, color.RGBA{uint8(r >> 12), uint8(g >> 12), uint8(b >> 12), 255})
		}
	}
	for _, c := range []struct {
		name string
		img  []byte
		want string
	}{
		{"no face", jpg(t, blank), "no_face"},
		{"dark", jpg(t, dark), "too_dark"},
		{"corrupt", []byte("\xff\xd8\xff not really a jpeg"), "bad_image"},
		{"huge", make([]byte, 9<<20), "bad_image"},
	} {
		if _, err := e.a.Face.Enrol(ctx, alice.psn, c.img); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	if c, _ := e.a.Face.ConsentOf(ctx, alice.psn); c.Templates != 0 {
		t.Fatalf("bad images stored %d templates", c.Templates)
	}
	e.enrol(alice, e.enrolled.Photo)

	// A good request works once; replaying it is refused.
	r := e.request(e.enrolled.Frame, alice.id, "")
	if _, err := e.a.Face.Verify(e.cashier, r); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Face.Verify(e.cashier, r); !yibao.IsCode(err, yibao.CodeReplay) {
		t.Fatalf("replayed request: %v", err)
	}
	// The same frames under a new nonce and challenge: replayed frames.
	r2 := e.request(e.enrolled.Frame, alice.id, "")
	r2.Frames = r.Frames
	hashes := digests(t, r2.Frames)
	e.sign(&r2, hashes)
	if _, err := e.a.Face.Verify(e.cashier, r2); !yibao.IsCode(err, yibao.CodeReplay) || !strings.Contains(err.Error(), "replayed_frame") {
		t.Fatalf("replayed frames: %v", err)
	}
	// Forged signature, altered frame.
	r3 := e.request(e.enrolled.Frame, alice.id, "")
	r3.IDNumber = e.person(1).id
	if _, err := e.a.Face.Verify(e.cashier, r3); !yibao.IsCode(err, yibao.CodeBadSignature) {
		t.Fatalf("altered request: %v", err)
	}
	// Unregistered terminal; another hospital's terminal.
	r4 := e.request(e.enrolled.Frame, alice.id, "")
	r4.TerminalID = "T-NOT-REGISTERED"
	if _, err := e.a.Face.Verify(e.cashier, r4); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("unregistered terminal: %v", err)
	}
	other := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c2", Role: yibao.RoleCashier, Institution: "H37010000002"})
	if _, err := e.a.Face.Verify(other, e.request(e.enrolled.Frame, alice.id, "")); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("another hospital's terminal: %v", err)
	}
	// No second factor.
	r5 := e.request(e.enrolled.Frame, "", "")
	if _, err := e.a.Face.Verify(e.cashier, r5); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("no second factor: %v", err)
	}
	// The challenge not answered: the same frame three times.
	ch, _ := e.a.Face.NewChallenge(e.cashier, e.terminal)
	still := faceid.VerifyRequest{TerminalID: e.terminal, ChallengeID: ch.ChallengeID, Nonce: nonce(), Timestamp: time.Now().Unix(), IDNumber: alice.id}
	for _, f := range []image.Image{e.enrolled.Frame, zoom(e.enrolled.Frame, 1.01), zoom(e.enrolled.Frame, 1.02)} {
		still.Frames = append(still.Frames, base64.StdEncoding.EncodeToString(jpg(t, jitter(f))))
	}
	e.sign(&still, digests(t, still.Frames))
	if _, err := e.a.Face.Verify(e.cashier, still); !yibao.IsCode(err, yibao.CodePrecondition) || !strings.Contains(err.Error(), "liveness_failed") {
		t.Fatalf("unanswered challenge: %v", err)
	}
	// Stale timestamp.
	r6 := e.request(e.enrolled.Frame, alice.id, "")
	r6.Timestamp -= 600
	e.sign(&r6, digests(t, r6.Frames))
	if _, err := e.a.Face.Verify(e.cashier, r6); !yibao.IsCode(err, yibao.CodeReplay) {
		t.Fatalf("stale request: %v", err)
	}
	// Nothing of the frames is stored: no table holds an image.
	var n int
	e.a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM face_verifications`).Scan(&n)
	if n == 0 {
		t.Fatal("no verification was recorded")
	}
}

func digests(t *testing.T, frames []string) []string {
	var out []string
	for _, f := range frames {
		b, err := base64.StdEncoding.DecodeString(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, faceid.FrameDigest(b))
	}
	return out
}

var _ = errors.New
