package nhsa_test

import (
	"context"
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	"yibao"
	"yibao/ecert"
	"yibao/ecert/code"
	"yibao/gmcrypto"
)

// Test1101WithAnEcToken: the patient shows the e-certificate; the HIS
// resolves it, then asks 1101 with mdtrt_cert_type 01 and registers 2201.
func Test1101WithAnEcToken(t *testing.T) {
	e := newEnv(t)
	ch := yibao.WithPrincipal(context.Background(), ecert.OfficialChannelPrincipal())
	var name string
	for _, p := range e.data.Persons {
		if p.PsnNo == e.psn {
			name = p.Name
		}
	}
	act, err := e.app.Ecert.StartActivation(ch, ecert.ActivationRequest{IDNumber: e.idNo, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := e.app.Ecert.DevMessages(systemCtx(), 1)
	otp := regexp.MustCompile(`验证码 ([0-9]{6})`).FindStringSubmatch(msgs[0].Text)[1]
	key, _ := gmcrypto.GenerateKey(nil)
	b, err := e.app.Ecert.ConfirmActivation(ch, act.ActivationID, otp, key.Public().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := hex.DecodeString(b.Credential)
	text, _ := (&code.Device{Key: key, Credential: cred}).Generate(time.Now(), b.StepSeconds, 1)
	his := yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalAPIKey, Subject: "k", Role: yibao.RoleHIS, Institution: "H37010000001"})
	res, err := e.app.Ecert.Resolve(his, text)
	if err != nil {
		t.Fatal(err)
	}
	info := decode[struct {
		Baseinfo struct {
			PsnNo string `json:"psn_no"`
		} `json:"baseinfo"`
	}](t, e.call(t, e.his, "1101", map[string]any{"data": map[string]string{"mdtrt_cert_type": "01", "mdtrt_cert_no": res.EcToken}}))
	if info.Baseinfo.PsnNo != e.psn {
		t.Fatalf("1101 with an ecToken: %+v", info)
	}
	reg := decode[struct {
		Data struct {
			MdtrtID string `json:"mdtrt_id"`
		} `json:"data"`
	}](t, e.call(t, e.his, "2201", map[string]any{"data": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
		"mdtrt_cert_type": "01", "mdtrt_cert_no": res.EcToken, "ipt_otp_no": "EC1", "dept_code": "NK", "dept_name": "内科"}}))
	v, err := e.app.Settle.GetVisit(systemCtx(), reg.Data.MdtrtID)
	if err != nil || v.MdtrtCertType != "01" || v.MdtrtCertNo != b.CertID {
		t.Fatalf("visit %+v %v", v, err)
	}
	// Another hospital cannot use this token.
	if _, err := e.other.Call(context.Background(), "1101", map[string]any{"data": map[string]string{"mdtrt_cert_type": "01", "mdtrt_cert_no": res.EcToken}}); err == nil {
		t.Fatal("the token worked at another hospital")
	}
}
