package nhsa_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/auth"
	"yibao/nhsa/client"
	"yibao/settlement"
)

// xrFixture is a HIS client of the treating node's first Nanjing hospital,
// the insured node's employees with a filing for Jiangsu (long_term,
// referred, temporary, emergency, then ones without) and their ID numbers.
func xrFixture(t *testing.T, sd, js *app.RegionNode) (*client.Client, []string, map[string]string) {
	t.Helper()
	var his *client.Client
	for _, in := range js.Dataset.Institutions {
		for _, k := range js.Dataset.APIKeys {
			if his == nil && in.Kind == yibao.KindHospital && in.Admdvs == "320100" && k.FixmedinsCode == in.Code {
				his = &client.Client{BaseURL: js.URL, FixmedinsCode: in.Code, FixmedinsName: in.Name, Admvs: "320100", Opter: "001",
					OpterName: "收费员", Signer: &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}}
			}
		}
	}
	ps := app.DemoCrossRegionPersons(sd.Dataset)
	if his == nil || len(ps) < 8 {
		t.Fatal("demo data lacks a Nanjing hospital key or Shandong employees")
	}
	idOf := map[string]string{}
	for _, p := range sd.Dataset.Persons {
		idOf[p.PsnNo] = p.IDNumber
	}
	return his, ps, idOf
}

// TestCrossRegionRegistration: a Jiangsu hospital's HIS registers (2201)
// and admits (2401) patients insured in Shandong with their ID card, on
// the national interface. The first time, the treating node has never
// seen them: the credential is checked against the insured node's answer
// through the hub, the visit gets the filing's status, and insuplc_admdvs
// in the envelope routes the look-up (a region that does not keep the
// person is refused).
func TestCrossRegionRegistration(t *testing.T) {
	ctx := context.Background()
	r := apptest.Regions(t, "37", "32")
	sd, js := r.Node("37"), r.Node("32")
	his, ps, idOf := xrFixture(t, sd, js)
	cases := []struct {
		name      string
		infno     string
		insuplc   string // "": the client sends its own region
		psn, cert string
		wantCross string // the visit's cross_status; "" for a refusal
		err       string
	}{
		{"ID card, insured region named", "2201", "370100", ps[0], idOf[ps[0]], "long_term", ""},
		{"the same patient again, known here now", "2201", "370100", ps[0], idOf[ps[0]], "long_term", ""},
		{"insured region read from the psn_no", "2201", "", ps[1], idOf[ps[1]], "referred", ""},
		{"admission with the card (03)", "2401", "370100", ps[2], idOf[ps[2]], "temporary", ""},
		{"no filing", "2201", "370100", ps[4], idOf[ps[4]], "unregistered", ""},
		{"someone else's ID card", "2201", "370100", ps[3], idOf[ps[5]], "", "不一致"},
		{"unknown ID number", "2201", "370100", ps[3], "110101199003074477", "", "不一致"},
		{"a patient known here, with an insured region no node keeps", "2201", "440100", ps[0], idOf[ps[0]], "", "no node keeps region 440100"},
		{"insured region named is the place of treatment's province", "2201", "320200", ps[5], idOf[ps[5]], "", "无此参保人"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := *his
			cl.InsuplcAdmdvs = c.insuplc
			var input any
			switch c.infno {
			case "2201":
				input = map[string]any{"data": map[string]string{"psn_no": c.psn, "insutype": "310", "begntime": now(), "mdtrt_cert_type": "02",
					"mdtrt_cert_no": c.cert, "ipt_otp_no": "XR-" + c.psn[len(c.psn)-4:], "dept_code": "NK", "dept_name": "内科"}}
			case "2401":
				input = map[string]any{"mdtrtinfo": map[string]string{"psn_no": c.psn, "insutype": "310", "begntime": now(), "mdtrt_cert_type": "03",
					"mdtrt_cert_no": c.cert, "ipt_no": "ZY-" + c.psn[len(c.psn)-4:], "adm_dept_codg": "NK", "adm_dept_name": "内科"}}
			}
			resp, err := cl.Send(ctx, c.infno, cl.NewMsgid(), input)
			if err != nil {
				t.Fatal(err)
			}
			if c.err != "" {
				if resp.OK() || !strings.Contains(resp.ErrMsg, c.err) {
					t.Fatalf("infcode %s err_msg %q, want a refusal mentioning %q", resp.Infcode, resp.ErrMsg, c.err)
				}
				return
			}
			if !resp.OK() {
				t.Fatalf("refused: %s", resp.ErrMsg)
			}
			var out struct {
				Data struct {
					MdtrtID string `json:"mdtrt_id"`
				} `json:"data"`
				Result struct {
					MdtrtID string `json:"mdtrt_id"`
				} `json:"result"`
			}
			json.Unmarshal(resp.Output, &out)
			id := out.Data.MdtrtID + out.Result.MdtrtID
			v, err := js.App.Settle.GetVisit(yibao.WithPrincipal(ctx, yibao.System("test")), id)
			if err != nil {
				t.Fatalf("visit %q: %v", id, err)
			}
			if v.PsnNo != c.psn || v.InsuAdmdvs != "370100" || v.CrossStatus != c.wantCross || v.CrossScope != "out_of_province" {
				t.Fatalf("visit of %s insured in %s, cross %s/%s; want %s, 370100, %s/out_of_province", v.PsnNo, v.InsuAdmdvs,
					v.CrossStatus, v.CrossScope, c.psn, c.wantCross)
			}
			if v.MdtrtCertNo != yibao.MaskID(c.cert) {
				t.Fatalf("visit records credential %q, want the masked number", v.MdtrtCertNo)
			}
		})
	}
}

// TestCrossRegionPersonQuery: 1101 by ID card for a patient of another
// province never seen here finds them at the insured node the envelope
// names, with their coverage and the personal account balance kept there.
func TestCrossRegionPersonQuery(t *testing.T) {
	ctx := context.Background()
	r := apptest.Regions(t, "37", "32")
	sd, js := r.Node("37"), r.Node("32")
	his, ps, idOf := xrFixture(t, sd, js)
	sys := yibao.WithPrincipal(ctx, yibao.System("test"))
	snap, err := sd.App.Settle.SnapshotInsured(sys, settlement.SnapshotRequest{PsnNo: ps[6], Insutype: "310", Year: 2026})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, insuplc, cert string
		wantPsn, err        string
	}{
		{"first-time patient, insured region named", "370100", idOf[ps[6]], ps[6], ""},
		{"asked again, known here now", "370100", idOf[ps[6]], ps[6], ""},
		{"no insured region named", "", idOf[ps[7]], "", "无此参保人"},
		{"not insured in the region named", "370100", "110101199003074477", "", "无此参保人"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := *his
			cl.InsuplcAdmdvs = c.insuplc
			resp, err := cl.Send(ctx, "1101", cl.NewMsgid(), map[string]any{"data": map[string]string{"mdtrt_cert_type": "02", "mdtrt_cert_no": c.cert}})
			if err != nil {
				t.Fatal(err)
			}
			if c.err != "" {
				if resp.OK() || !strings.Contains(resp.ErrMsg, c.err) {
					t.Fatalf("infcode %s err_msg %q, want a refusal mentioning %q", resp.Infcode, resp.ErrMsg, c.err)
				}
				return
			}
			if !resp.OK() {
				t.Fatalf("refused: %s", resp.ErrMsg)
			}
			var out struct {
				Baseinfo struct {
					PsnNo string `json:"psn_no"`
				} `json:"baseinfo"`
				Insuinfo []struct {
					Balc          json.Number `json:"balc"`
					Insutype      string      `json:"insutype"`
					InsuplcAdmdvs string      `json:"insuplc_admdvs"`
				} `json:"insuinfo"`
			}
			json.Unmarshal(resp.Output, &out)
			if out.Baseinfo.PsnNo != c.wantPsn || len(out.Insuinfo) == 0 || out.Insuinfo[0].InsuplcAdmdvs != "370100" {
				t.Fatalf("1101 answered %+v", out)
			}
			for _, in := range out.Insuinfo {
				if in.Insutype == "310" && string(in.Balc) != snap.Account.String() {
					t.Fatalf("balance %s, the insured node keeps %s", in.Balc, snap.Account)
				}
			}
		})
	}
}
