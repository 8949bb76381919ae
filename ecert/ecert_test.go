package ecert_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/ecert"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/registry"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

type world struct {
	t         *testing.T
	db        *sqlstore.DB
	reg       *registry.Service
	svc       *ecert.Service
	now       time.Time
	adm       context.Context
	wechat    context.Context
	alipay    context.Context
	h1, h2    context.Context
	h1Beijing context.Context
}

const (
	Adult   = "37010000000000000001"
	Child   = "37010000000000000002"
	Beijing = "11010000000000000003"
)

func idNumber(prefix17 string) string {
	w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, c := range prefix17 {
		sum += int(c-'0') * w[i]
	}
	return prefix17 + string("10X98765432"[sum%11])
}

var ids = map[string]string{Adult: idNumber("37010219800101001"), Child: idNumber("37010220150505002"), Beijing: idNumber("11010119750303003")}
var names = map[string]string{Adult: "张伟", Child: "张小宝", Beijing: "李华"}

func newWorld(t *testing.T) *world {
	db := sqltest.Open(t)
	keys, _ := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": []byte("0123456789abcdef")})
	w := &world{t: t, db: db, now: time.Date(2026, 11, 23, 2, 0, 5, 0, time.UTC)}
	clock := func() time.Time { return w.now }
	w.reg = registry.New(db, keys, []byte("blind-index-key-for-tests-only!!"))
	w.reg.SetClock(clock)
	w.svc = ecert.New(db, w.reg, []byte("master key for tests only......."), ecert.OutboxSMS{DB: db}, ecert.Config{}, nil)
	w.svc.SetClock(clock)
	bg := context.Background()
	w.adm = yibao.WithPrincipal(bg, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "admin", Role: yibao.RoleAdmin})
	w.wechat = yibao.WithPrincipal(bg, &yibao.Principal{Kind: yibao.PrincipalChannel, Subject: "ch_wechat", Role: yibao.RoleChannel, DisplayName: "微信"})
	w.alipay = yibao.WithPrincipal(bg, &yibao.Principal{Kind: yibao.PrincipalChannel, Subject: "ch_alipay", Role: yibao.RoleChannel, DisplayName: "支付宝"})
	w.h1 = yibao.WithPrincipal(bg, &yibao.Principal{Kind: yibao.PrincipalAPIKey, Subject: "k1", Role: yibao.RoleHIS, Institution: "H37010000001"})
	w.h2 = yibao.WithPrincipal(bg, &yibao.Principal{Kind: yibao.PrincipalAPIKey, Subject: "k2", Role: yibao.RoleHIS, Institution: "H37020000001"})
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	a := w.adm
	must(w.reg.CreateRegion(a, yibao.Region{Admdvs: "370100", Name: "济南市"}))
	must(w.reg.CreateRegion(a, yibao.Region{Admdvs: "370200", Name: "青岛市"}))
	must(w.reg.CreateRegion(a, yibao.Region{Admdvs: "110100", Name: "北京市"}))
	must(w.reg.CreateScheme(a, yibao.Scheme{Insutype: "310", Name: "职工基本医疗保险", Kind: yibao.SchemeEmployeeBasic}))
	must(w.reg.CreateInstitution(a, yibao.Institution{Code: "H37010000001", Name: "第一医院", Kind: yibao.KindHospital, Level: 3, Admdvs: "370100"}))
	must(w.reg.CreateInstitution(a, yibao.Institution{Code: "H37020000001", Name: "青岛医院", Kind: yibao.KindHospital, Level: 3, Admdvs: "370200"}))
	for psn, admdvs := range map[string]string{Adult: "370100", Child: "370100", Beijing: "110100"} {
		must(w.reg.CreatePerson(a, yibao.Person{PsnNo: psn, IDNumber: ids[psn], Name: names[psn], Phone: "13900000" + psn[len(psn)-3:],
			Category: yibao.CategoryActive, Admdvs: admdvs}))
		must(w.reg.CreateCoverage(a, yibao.Coverage{PsnNo: psn, Insutype: "310", Admdvs: admdvs, StartDate: "2020-01-01"}))
	}
	for _, ch := range []string{"ch_wechat", "ch_alipay"} {
		must(w.svc.CreateChannel(a, ch, ch, gmcrypto.DeterministicKey([]byte(ch)).Public().Bytes()))
	}
	if err := w.svc.EnsurePlatforms(bg); err != nil {
		t.Fatal(err)
	}
	return w
}

var otpRe = regexp.MustCompile(`验证码 ([0-9]{6})`)

// activate runs the whole activation on a channel and returns the device.
func (w *world) activate(ch context.Context, psn, proxy string) (*code.Device, *ecert.Binding) {
	w.t.Helper()
	req := ecert.ActivationRequest{IDNumber: ids[psn], Name: names[psn]}
	if proxy != "" {
		req.ProxyIDNumber = ids[proxy]
	}
	act, err := w.svc.StartActivation(ch, req)
	if err != nil {
		w.t.Fatal(err)
	}
	msgs, err := w.svc.DevMessages(w.adm, 1)
	if err != nil || len(msgs) == 0 {
		w.t.Fatalf("no SMS: %v", err)
	}
	m := otpRe.FindStringSubmatch(msgs[0].Text)
	if m == nil {
		w.t.Fatalf("no code in %q", msgs[0].Text)
	}
	key, _ := gmcrypto.GenerateKey(nil)
	b, err := w.svc.ConfirmActivation(ch, act.ActivationID, m[1], key.Public().Bytes())
	if err != nil {
		w.t.Fatal(err)
	}
	cred, _ := hex.DecodeString(b.Credential)
	return &code.Device{Key: key, Credential: cred}, b
}

var counter uint16

func (w *world) code(d *code.Device) string {
	w.t.Helper()
	counter++
	s, err := d.Generate(w.now, w.svc.StepSeconds(), counter)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func TestActivateShowResolveOnce(t *testing.T) {
	w := newWorld(t)
	dev, b := w.activate(w.wechat, Adult, "")
	if len(b.CertID) != 20 || b.Status != "active" {
		t.Fatalf("%+v", b)
	}
	text := w.code(dev)
	res, err := w.svc.Resolve(w.h1, text)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.EcToken) > 40 || res.MdtrtCertType != "01" || res.Person.PsnNo != Adult || res.Person.Name != "" || len(res.Coverages) != 1 {
		t.Fatalf("%+v", res)
	}
	if !strings.Contains(res.Person.NameMask, "*") {
		t.Fatalf("the institution must see a masked name: %q", res.Person.NameMask)
	}
	// Once and only once, anywhere.
	if _, err := w.svc.Resolve(w.h1, text); !yibao.IsCode(err, yibao.CodeConflict) {
		t.Fatalf("second use: %v", err)
	}
	if _, err := w.svc.Resolve(w.h2, text); !yibao.IsCode(err, yibao.CodeConflict) {
		t.Fatalf("second use elsewhere: %v", err)
	}
	// The token works for its institution only.
	if psn, cert, err := w.svc.TokenPerson(w.h1, res.EcToken); err != nil || psn != Adult || cert != b.CertID {
		t.Fatalf("token: %s %s %v", psn, cert, err)
	}
	if _, _, err := w.svc.TokenPerson(w.h2, res.EcToken); !yibao.IsCode(err, yibao.CodeUnauthenticated) {
		t.Fatalf("token at another institution: %v", err)
	}
	w.now = w.now.Add(5 * time.Hour)
	if _, _, err := w.svc.TokenPerson(w.h1, res.EcToken); !yibao.IsCode(err, yibao.CodeUnauthenticated) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestReplayRaceIsAcceptedOnce(t *testing.T) {
	w := newWorld(t)
	dev, _ := w.activate(w.wechat, Adult, "")
	for round := range 5 {
		text := w.code(dev)
		var ok, replay int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := w.h1
				if i%2 == 1 {
					ctx = w.h2
				}
				_, err := w.svc.Resolve(ctx, text)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case yibao.IsCode(err, yibao.CodeConflict):
					replay++
				default:
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		wg.Wait()
		if ok != 1 || replay != 5 {
			t.Fatalf("round %d: %d accepted, %d refused as replays", round, ok, replay)
		}
	}
}

func TestRevocationAndReactivation(t *testing.T) {
	w := newWorld(t)
	old, b1 := w.activate(w.wechat, Adult, "")
	other, _ := w.activate(w.alipay, Adult, "")
	// Lost phone: the person revokes the WeChat device from Alipay.
	if n, err := w.svc.Revoke(w.alipay, b1.CertID, b1.BindingID, "lost phone"); err != nil || n != 1 {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if _, err := w.svc.Resolve(w.h1, w.code(old)); !yibao.IsCode(err, yibao.CodeForbidden) || !strings.Contains(err.Error(), "device_revoked") {
		t.Fatalf("revoked device: %v", err)
	}
	if _, err := w.svc.Resolve(w.h1, w.code(other)); err != nil {
		t.Fatalf("the other device still works: %v", err)
	}
	// Re-activation on a new phone keeps the certificate id and retires
	// the channel's previous device.
	newer, b3 := w.activate(w.alipay, Adult, "")
	if b3.CertID != b1.CertID {
		t.Fatalf("certificate id changed: %s → %s", b1.CertID, b3.CertID)
	}
	if _, err := w.svc.Resolve(w.h1, w.code(other)); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("the replaced device: %v", err)
	}
	if _, err := w.svc.Resolve(w.h1, w.code(newer)); err != nil {
		t.Fatal(err)
	}
	list, err := w.svc.Bindings(w.adm, b1.CertID)
	if err != nil || len(list) != 3 {
		t.Fatalf("bindings %d %v", len(list), err)
	}
	// The bureau revokes everything.
	if n, err := w.svc.Revoke(w.adm, b1.CertID, "", "bureau"); err != nil || n != 1 {
		t.Fatalf("revoke all: %d %v", n, err)
	}
	if _, err := w.svc.Resolve(w.h1, w.code(newer)); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("after revoking all: %v", err)
	}
	// A channel with no binding of this certificate learns nothing.
	if _, err := w.svc.Bindings(w.wechat, b1.CertID); !yibao.IsCode(err, yibao.CodeNotFound) {
		t.Fatalf("a foreign channel lists bindings: %v", err)
	}
}

func TestActivationErrors(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		name string
		ctx  context.Context
		req  ecert.ActivationRequest
		code yibao.Code
	}{
		{"a hospital cannot activate", w.h1, ecert.ActivationRequest{IDNumber: ids[Adult], Name: names[Adult]}, yibao.CodeForbidden},
		{"wrong name", w.wechat, ecert.ActivationRequest{IDNumber: ids[Adult], Name: "王五"}, yibao.CodeInvalid},
		{"unknown person, same answer", w.wechat, ecert.ActivationRequest{IDNumber: idNumber("37010219900101999"), Name: "王五"}, yibao.CodeInvalid},
		{"bad ID check character", w.wechat, ecert.ActivationRequest{IDNumber: ids[Adult][:17] + "0", Name: names[Adult]}, yibao.CodeInvalid},
		{"an adult without consent cannot be proxied", w.wechat, ecert.ActivationRequest{IDNumber: ids[Beijing], Name: names[Beijing], ProxyIDNumber: ids[Adult]}, yibao.CodeForbidden},
	}
	for _, c := range cases {
		if _, err := w.svc.StartActivation(c.ctx, c.req); !yibao.IsCode(err, c.code) {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	act, err := w.svc.StartActivation(w.wechat, ecert.ActivationRequest{IDNumber: ids[Adult], Name: names[Adult]})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := gmcrypto.GenerateKey(nil)
	for i := 1; i <= 5; i++ {
		_, err := w.svc.ConfirmActivation(w.wechat, act.ActivationID, "000000", key.Public().Bytes())
		if !yibao.IsCode(err, yibao.CodeInvalid) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	if _, err := w.svc.ConfirmActivation(w.wechat, act.ActivationID, "000000", key.Public().Bytes()); !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("after 5 wrong codes: %v", err)
	}
	if _, err := w.svc.ConfirmActivation(w.alipay, act.ActivationID, "000000", key.Public().Bytes()); !yibao.IsCode(err, yibao.CodeNotFound) {
		t.Fatalf("another channel's activation: %v", err)
	}
}

func TestGuardianHoldsAChildsCode(t *testing.T) {
	w := newWorld(t)
	dev, b := w.activate(w.wechat, Child, Adult)
	if b.ProxyPsnNo != Adult {
		t.Fatalf("%+v", b)
	}
	msgs, _ := w.svc.DevMessages(w.adm, 1)
	if msgs[0].PhoneMasked != yibao.MaskPhone("13900000"+Adult[len(Adult)-3:]) {
		t.Fatalf("the code went to %s, not the guardian", msgs[0].PhoneMasked)
	}
	res, err := w.svc.Resolve(w.h1, w.code(dev))
	if err != nil || res.Person.PsnNo != Child || !res.Proxy {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestCrossProvinceNeedsAFiling(t *testing.T) {
	w := newWorld(t)
	dev, _ := w.activate(w.wechat, Beijing, "")
	_, err := w.svc.Resolve(w.h1, w.code(dev))
	if !yibao.IsCode(err, yibao.CodePrecondition) || !strings.Contains(err.Error(), "cross_region_code") {
		t.Fatalf("%v", err)
	}
	// Within the province (Jinan → Qingdao) the code works.
	jn, _ := w.activate(w.wechat, Adult, "")
	if _, err := w.svc.Resolve(w.h2, w.code(jn)); err != nil {
		t.Fatal(err)
	}
}

func TestOfflineVerificationWithTheDirectoryOnly(t *testing.T) {
	w := newWorld(t)
	dev, _ := w.activate(w.wechat, Adult, "")
	dir := w.svc.Directory()
	root, _ := hex.DecodeString(dir.RootPublicKey)
	rootKey, err := gmcrypto.ParsePublicKey(root)
	if err != nil {
		t.Fatal(err)
	}
	trusted := map[string]*gmcrypto.PublicKey{}
	for _, e := range dir.Platforms {
		b, _ := hex.DecodeString(e.Cert)
		pc, err := code.ParsePlatformCert(b, rootKey, w.now)
		if err != nil {
			t.Fatal(err)
		}
		trusted[fmt.Sprint(pc.Admdvs, "/", pc.KeyID)] = pc.Public
	}
	v := &code.Verifier{StepSeconds: dir.StepSeconds, Platform: func(a, k uint32) (*gmcrypto.PublicKey, bool) {
		p, ok := trusted[fmt.Sprint(a, "/", k)]
		return p, ok
	}}
	c, err := v.Verify(w.code(dev), w.now)
	if err != nil || c.Credential.Admdvs != 370100 {
		t.Fatalf("%v", err)
	}
}
