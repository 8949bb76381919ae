package httpapi_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"yibao/auth"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/httpapi"
	"yibao/nhsa/client"
)

// x7Case is one row of testdata/attack_access.json.
type x7Case struct {
	Name     string          `json:"name"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Body     json.RawMessage `json:"body"`
	Idem     bool            `json:"idem"`
	Status   int             `json:"status"`
	Code     string          `json:"code"`
	Filtered bool            `json:"filtered"`
	Cookie   string          `json:"cookie"`
	// nhsa cases
	Infno        string          `json:"infno"`
	Input        json.RawMessage `json:"input"`
	Err          string          `json:"err"`
	EnvelopeCode string          `json:"envelope_code"`
}

// x7Caller is who sends a request: a signed key, a bearer session or a
// patient's /app session cookie.
type x7Caller struct {
	name   string
	signer *auth.Signer
	token  string
	cookie string
}

// x7Send sends one request as c and returns the status, headers and body;
// /api/v1 answers are checked against openapi.yaml on the way.
func (e *env) x7Send(c x7Caller, method, path string, body []byte, idem bool) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idem {
		req.Header.Set(httpapi.HeaderIdempotencyKey, e.idem())
	}
	switch {
	case c.signer != nil:
		if err := c.signer.Sign(req, body); err != nil {
			e.t.Fatal(err)
		}
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.cookie != "":
		req.Header.Set("Cookie", "yb_app="+c.cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	e.validate(req, body, resp, out)
	return resp.StatusCode, resp.Header, out
}

// x7Must sends a request that has to succeed with status and decodes it.
func (e *env) x7Must(c x7Caller, method, path string, body any, status int) map[string]any {
	e.t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	st, _, out := e.x7Send(c, method, path, b, method != "GET")
	if st != status {
		e.t.Fatalf("%s %s %s: %d, want %d: %s", c.name, method, path, st, status, out)
	}
	var m map[string]any
	json.Unmarshal(out, &m)
	return m
}

// x7Patient activates the official-app e-certificate of a person
// in /app as a phone would and returns its session cookie and device.
func (e *env) x7Patient(idNumber, name string) (cookie string, dev *code.Device, b map[string]any) {
	e.t.Helper()
	anon := x7Caller{name: "anon"}
	act := e.x7Must(anon, "POST", "/app/api/activate", map[string]any{"id_number": idNumber, "name": name}, 201)
	_, _, sms := e.x7Send(x7Caller{name: "admin", token: e.tokens["admin"]}, "GET", "/api/v1/ecert/dev/sms?limit=1", nil, false)
	otp := regexp.MustCompile(`验证码 ([0-9]{6})`).FindSubmatch(sms)
	if otp == nil {
		e.t.Fatalf("no one-time code in %s", sms)
	}
	key, _ := gmcrypto.GenerateKey(nil)
	body, _ := json.Marshal(map[string]any{"activation_id": act["activation_id"], "otp": string(otp[1]),
		"device_public_key": hex.EncodeToString(key.Public().Bytes())})
	req, _ := http.NewRequest("POST", e.srv.URL+"/app/api/confirm", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		e.t.Fatalf("confirm: %d %s", resp.StatusCode, out)
	}
	json.Unmarshal(out, &b)
	for _, ck := range resp.Cookies() {
		if ck.Name == "yb_app" {
			cookie = ck.Value
		}
	}
	cred, _ := hex.DecodeString(b["credential"].(string))
	return cookie, &code.Device{Key: key, Credential: cred}, b
}

// x7Snapshot returns every row of the tables that hold B's business, each
// row as text, sorted: two snapshots are equal when nothing changed.
func x7Snapshot(t *testing.T, e *env) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range []string{"visits", "fee_lines", "settlements", "accumulators", "ledger_accounts", "ledger_transfers",
		"payment_orders", "payment_attempts", "payment_refunds", "payment_events", "withholding_agreements", "credit_guarantees",
		"outbox", "webhooks", "slots", "institutions", "api_keys", "approvals", "ecerts", "ecert_devices", "ec_tokens",
		"nhsa_files", "nhsa_visit_refs", "family_links", "reconciliations"} {
		rows, err := e.app.DB.Query(context.Background(), `SELECT * FROM `+table)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%v", vals))
		}
		rows.Close()
		sort.Strings(lines)
		out[table] = strings.Join(lines, "\n")
	}
	return out
}

// TestCrossTenantAccess is X7: the full matrix of hospital A's callers
// against hospital B's objects, patient P1 against P2's, and A's HIS on
// the national interface against B's. Every attempt is refused with a
// stable status and code, changes none of B's records, leaks none of B's
// ids or patient data, and (REST and /app) leaves one audit entry.
func TestCrossTenantAccess(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h1, h2 := e.vars["{H1}"], e.vars["{H2}"]
	var keyB *auth.Signer
	for _, k := range e.data.APIKeys {
		if k.FixmedinsCode == h2 {
			keyB = &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}
		}
	}
	hisB := x7Caller{name: "B key", signer: keyB}
	keyA := x7Caller{name: "A key", signer: e.signer}
	cashierA := x7Caller{name: "A cashier", token: e.tokens["cashier"]}
	admin := x7Caller{name: "admin", token: e.tokens["admin"]}

	// Two patients of 济南 with employee cover, a phone and no visit yet:
	// P1 (A's side of the /app matrix) and P2, B's patient.
	type person struct{ psn, id, name string }
	var pp []person
	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	for _, p := range e.data.Persons {
		var n int
		e.app.DB.QueryRow(ctx, `SELECT COUNT(*) FROM visits WHERE psn_no = ?`, p.PsnNo).Scan(&n)
		for _, c := range e.data.Coverages {
			if c.PsnNo == p.PsnNo && c.Insutype == "310" && c.Admdvs == "370100" && c.EndDate == "" && p.Phone != "" && n == 0 && len(pp) < 2 {
				pp = append(pp, person{p.PsnNo, p.IDNumber, p.Name})
			}
		}
	}
	var drug string
	for _, it := range e.data.Catalog {
		if it.Kind == "drug" && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			drug = it.Code
			break
		}
	}
	if len(pp) < 2 || drug == "" || keyB == nil {
		t.Fatal("demo data lacks two fresh employees, a current class A drug or a key of the second hospital")
	}
	p1, p2 := pp[0], pp[1]

	// B's objects, made by B's own signed client.
	visit := func(lines bool) string {
		v := e.x7Must(hisB, "POST", "/api/v1/visits", map[string]any{"psn_no": p2.psn, "fixmedins_code": h2, "visit_type": "general_outpatient",
			"dept_code": "NK", "dept_name": "内科"}, 201)
		id := v["mdtrt_id"].(string)
		if lines {
			e.x7Must(hisB, "POST", "/api/v1/visits/"+id+"/fee-lines", map[string]any{"lines": []map[string]any{
				{"feedetl_sn": "1", "catalog_code": drug, "unit_price": "100.00", "quantity": "1"}}}, 200)
		}
		return id
	}
	v := map[string]string{"{H1}": h1, "{H2}": h2, "{PSN_B}": p2.psn, "{IDNO_B}": p2.id, "{DRUG}": drug, "{TODAY}": today,
		"{NOW}": time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05"), "{KEY_B}": keyB.KeyID}
	v["{VB_SETTLED}"] = visit(true)
	v["{SB_DONE}"] = e.x7Must(hisB, "POST", "/api/v1/visits/"+v["{VB_SETTLED}"]+"/settle", map[string]any{"pay_mode": "cash"}, 201)["setl_id"].(string)
	v["{VB_PENDING}"] = visit(true)
	v["{SB_PENDING}"] = e.x7Must(hisB, "POST", "/api/v1/visits/"+v["{VB_PENDING}"]+"/settle", map[string]any{"pay_mode": "later"}, 201)["setl_id"].(string)
	v["{VB_OPEN}"] = visit(true)
	v["{VB_PAID}"] = visit(true)
	v["{PO_PAID}"] = e.x7Must(hisB, "POST", "/api/v1/visits/"+v["{VB_PAID}"]+"/pay", map[string]any{"channel": "counter"}, 201)["pay_ord_id"].(string)
	v["{VB_MOBILE}"] = visit(true)
	v["{PO_MOBILE}"] = e.x7Must(hisB, "POST", "/api/v1/mobile-payments", map[string]any{"mdtrt_id": v["{VB_MOBILE}"], "med_org_ord": "B-ORD-1",
		"medfee_sumamt": "100.00"}, 201)["pay_ord_id"].(string)
	// B's visit and settlement on the national interface, a detail file.
	nhsaB := &client.Client{BaseURL: e.srv.URL, FixmedinsCode: h2, FixmedinsName: "B", Admvs: "370100", Opter: "001", OpterName: "收费员", Signer: keyB}
	nhsaA := &client.Client{BaseURL: e.srv.URL, FixmedinsCode: h1, FixmedinsName: "A", Admvs: "370100", Opter: "001", OpterName: "收费员", Signer: e.signer}
	call := func(c *client.Client, infno, msgid string, input any) map[string]any {
		t.Helper()
		if msgid == "" {
			msgid = c.NewMsgid()
		}
		out, err := c.CallMsgid(ctx, infno, msgid, input)
		if err != nil {
			t.Fatalf("%s: %v", infno, err)
		}
		var m map[string]any
		json.Unmarshal(out, &m)
		return m
	}
	reg := call(nhsaB, "2201", "", map[string]any{"data": map[string]string{"psn_no": p2.psn, "insutype": "310", "begntime": v["{NOW}"],
		"mdtrt_cert_type": "02", "mdtrt_cert_no": p2.id, "ipt_otp_no": "MZB1", "dept_code": "NK", "dept_name": "内科"}})
	v["{VB_NHSA}"] = reg["data"].(map[string]any)["mdtrt_id"].(string)
	call(nhsaB, "2204", "", map[string]any{"feedetail": []map[string]any{{"feedetl_sn": "1", "mdtrt_id": v["{VB_NHSA}"], "psn_no": p2.psn,
		"fee_ocur_time": v["{NOW}"], "med_list_codg": drug, "det_item_fee_sumamt": 80, "cnt": 1, "pric": 80}}})
	v["{MSGID_B}"] = nhsaB.NewMsgid()
	st := call(nhsaB, "2207", v["{MSGID_B}"], map[string]any{"data": map[string]any{"psn_no": p2.psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": p2.id,
		"med_type": "11", "medfee_sumamt": 80, "psn_setlway": "01", "mdtrt_id": v["{VB_NHSA}"], "insutype": "310", "acct_used_flag": "1"}})
	v["{SB_NHSA}"] = st["setlinfo"].(map[string]any)["setl_id"].(string)
	detail := []int{}
	for _, b := range []byte(v["{SB_NHSA}"] + "\t" + v["{VB_NHSA}"] + "\t" + p2.psn + "\t80.00\t0\t0\t0\n") {
		detail = append(detail, int(b))
	}
	v["{FILE_B}"] = call(nhsaB, "9101", "", map[string]any{"fsUploadIn": map[string]any{"in": detail, "filename": "b.txt", "fixmedins_code": h2}})["file_qury_no"].(string)
	// B's events, set aside for want of a webhook.
	if _, err := e.app.Delivery.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.app.DB.QueryRow(ctx, `SELECT id FROM outbox WHERE fixmedins_code = ? AND status = 'skipped' ORDER BY id LIMIT 1`, h2).Scan(new(string)); err != nil {
		t.Fatalf("no skipped event of B: %v", err)
	}
	var evB string
	e.app.DB.QueryRow(ctx, `SELECT id FROM outbox WHERE fixmedins_code = ? AND status = 'skipped' ORDER BY id LIMIT 1`, h2).Scan(&evB)
	v["{EV_B}"] = evB
	// The patients' /app sessions; P2 shows a code at B (B's ecToken) and
	// signs a wallet agreement.
	ck1, dev1, _ := e.x7Patient(p1.id, p1.name)
	ck2, dev2, b2 := e.x7Patient(p2.id, p2.name)
	v["{CERT_B}"], v["{BINDING_B}"] = b2["cert_id"].(string), b2["binding_id"].(string)
	step := int(b2["step_seconds"].(float64))
	text, _ := dev2.Generate(time.Now(), step, 1)
	v["{ECTOKEN_B}"] = e.x7Must(hisB, "POST", "/api/v1/ecert/resolve", map[string]any{"code": text}, 200)["ec_token"].(string)
	v["{AG_B}"] = e.x7Must(x7Caller{name: "P2", cookie: ck2}, "POST", "/app/api/agreements", map[string]any{"channel": "wechat", "limit": "500.00"}, 201)["agreement_no"].(string)
	p1App := x7Caller{name: "P1", cookie: ck1}
	// A forged session: P1's MAC on P2's binding id.
	forged := x7Caller{name: "P1 forged", cookie: v["{BINDING_B}"] + ck1[strings.Index(ck1, "."):]}

	// What must never reach A or P1 unless they sent it themselves.
	secrets := map[string]string{"B's patient number": p2.psn, "B's patient ID number": p2.id, "B's patient name": p2.name}
	for k, x := range v {
		if strings.Contains(k, "B") && k != "{KEY_B}" {
			secrets[k] = x
		}
	}
	expand := func(s string) string {
		for k, x := range v {
			s = strings.ReplaceAll(s, k, x)
		}
		return s
	}
	leak := func(request string, out []byte) string {
		for what, s := range secrets {
			if s != "" && bytes.Contains(out, []byte(s)) && !strings.Contains(request, s) {
				return what
			}
		}
		return ""
	}

	var cases struct {
		Rest, App, Nhsa []x7Case
	}
	raw, err := os.ReadFile("testdata/attack_access.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}

	before := x7Snapshot(t, e)
	var attempts, refused, filtered, leaks int
	audited := map[string]string{} // request id → case, for every refusal that must be audited
	run := func(c x7Caller, tc x7Case) {
		t.Helper()
		attempts++
		path := expand(tc.Path)
		var body []byte
		if tc.Body != nil {
			body = []byte(expand(string(tc.Body)))
		}
		st, hdr, out := e.x7Send(c, tc.Method, path, body, tc.Idem)
		if what := leak(tc.Method+" "+path+" "+string(body), out); what != "" || (st < 300 && !tc.Filtered) {
			leaks++
			t.Errorf("LEAK %s / %s: %d, %s in %s", c.name, tc.Name, st, what, clip(string(out)))
			return
		}
		if st != tc.Status {
			t.Errorf("%s / %s: %d, want %d: %s", c.name, tc.Name, st, tc.Status, clip(string(out)))
			return
		}
		if tc.Filtered {
			filtered++
			return
		}
		var eb httpapi.ErrorBody
		json.Unmarshal(out, &eb)
		if string(eb.Code) != tc.Code {
			t.Errorf("%s / %s: code %s, want %s: %s", c.name, tc.Name, eb.Code, tc.Code, out)
			return
		}
		refused++
		if st == 403 || st == 404 || (st == 401 && c.cookie == "") {
			audited[hdr.Get("X-Request-Id")] = c.name + " / " + tc.Name
		}
	}
	for _, tc := range cases.Rest {
		for _, c := range []x7Caller{keyA, cashierA} {
			run(c, tc)
		}
	}
	for _, tc := range cases.App {
		c := p1App
		if tc.Cookie == "forged" {
			c = forged
		}
		if strings.Contains(string(tc.Body), "{CODE_P1}") {
			v["{CODE_P1}"], _ = dev1.Generate(time.Now(), step, uint16(attempts))
		}
		run(c, tc)
	}
	nhsaRefused := 0
	for _, tc := range cases.Nhsa {
		attempts++
		cl := nhsaA
		if tc.EnvelopeCode != "" {
			fake := *nhsaA
			fake.FixmedinsCode = expand(tc.EnvelopeCode)
			cl = &fake
		}
		var input any
		json.Unmarshal([]byte(expand(string(tc.Input))), &input)
		resp, err := cl.Send(ctx, tc.Infno, cl.NewMsgid(), input)
		if err != nil {
			t.Fatalf("%s: %v", tc.Name, err)
		}
		js, _ := json.Marshal(resp)
		if what := leak(expand(string(tc.Input)), js); what != "" || resp.OK() {
			leaks++
			t.Errorf("LEAK nhsa / %s: infcode %s, %s in %s", tc.Name, resp.Infcode, what, clip(string(js)))
			continue
		}
		if !strings.Contains(resp.ErrMsg, tc.Err) {
			t.Errorf("nhsa / %s: err_msg %q, want it to name %q", tc.Name, resp.ErrMsg, tc.Err)
			continue
		}
		nhsaRefused++
	}
	after := x7Snapshot(t, e)
	changed := 0
	for table, rows := range before {
		if after[table] != rows {
			changed++
			t.Errorf("table %s changed during the attempts:\nbefore:\n%s\nafter:\n%s", table, clip(rows), clip(after[table]))
		}
	}
	// A reconciles its own detail file naming B's settlement (writing only
	// A's own files): the platform
	// answers "no such settlement" and the result file shows none of B's data.
	own := []int{}
	for _, b := range []byte(v["{SB_NHSA}"] + "\t" + v["{VB_NHSA}"] + "\t" + p2.psn + "\t80.00\t0\t0\t0\n") {
		own = append(own, int(b))
	}
	attempts++
	fileA := call(nhsaA, "9101", "", map[string]any{"fsUploadIn": map[string]any{"in": own, "filename": "a.txt", "fixmedins_code": h1}})["file_qury_no"]
	res := call(nhsaA, "3202", "", map[string]any{"data": map[string]any{"setl_optins": "370100", "file_qury_no": fileA, "stmt_begndate": today,
		"stmt_enddate": today, "medfee_sumamt": 0, "fund_pay_sumamt": 0, "cash_payamt": 0, "fixmedins_setl_cnt": 0}})["fileinfo"].(map[string]any)
	file, err := nhsaA.Download(ctx, res["file_qury_no"].(string), res["filename"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(file, []byte("平台无此结算")) || res["mismatched"] != 1.0 {
		leaks++
		t.Errorf("LEAK 3202 with B's settlement in A's file: %+v\n%s", res, file)
	} else {
		nhsaRefused++
	}

	// Every refused REST and /app attempt left exactly one audit entry of
	// kind access, naming the x7Caller, with no person number in clear.
	rows, err := e.app.DB.Query(ctx, `SELECT body FROM audit_entries WHERE kind = ?`, httpapi.AuditKindAccess)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]int{}
	for rows.Next() {
		var body string
		rows.Scan(&body)
		var en struct {
			Actor string
			Data  struct {
				RequestID string `json:"request_id"`
			}
		}
		json.Unmarshal([]byte(body), &en)
		entries[en.Data.RequestID]++
		if en.Actor == "" || strings.Contains(body, p2.psn) || strings.Contains(body, p1.psn) || strings.Contains(body, v["{BINDING_B}"]) {
			t.Errorf("audit entry without an actor or with personal data in clear: %s", body)
		}
	}
	rows.Close()
	// …and nothing else did: a forged patient session authenticated
	// nobody, so there is nobody to hold to account and nothing is written.
	if total := len(entries); total != len(audited) {
		t.Errorf("%d access entries for %d audited refusals", total, len(audited))
	}
	unaudited := 0
	for id, name := range audited {
		if entries[id] != 1 {
			unaudited++
			t.Errorf("%s: %d audit entries, want 1", name, entries[id])
		}
	}
	// The owner is not refused: B reads its own settlement, P2 their receipt.
	e.x7Must(hisB, "GET", "/api/v1/settlements/"+v["{SB_DONE}"], nil, 200)
	e.x7Must(x7Caller{name: "P2", cookie: ck2}, "GET", "/app/api/settlements/"+v["{SB_DONE}"], nil, 200)
	e.x7Must(admin, "GET", "/api/v1/visits/"+v["{VB_OPEN}"], nil, 200)

	t.Logf("X7: %d REST cases × 2 callers of A (signed key, cashier) + %d patient /app cases + %d national-interface cases = %d attempts: "+
		"%d refused with the expected code, %d lists answered without B's data, leaks %d, tables changed %d, refusals audited %d/%d",
		len(cases.Rest), len(cases.App), len(cases.Nhsa)+1, attempts, refused+nhsaRefused, filtered, leaks, changed, len(audited)-unaudited, len(audited))
	t.Logf("X7: no regional administrator role exists (administrators are the bureau's, platform-wide), so region X vs region Y is not a case")
}
