package httpapi_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"yibao/auth"
	"yibao/demo"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/httpapi"
)

// TestEcertOverHTTP: a person activates on the WeChat channel simulator
// (every request signed with the channel's SM2 key), shows a code, the
// hospital's HIS resolves it once — the second time is a replay — and
// registers the visit with the ecToken; the person reads their summary;
// the lost phone is revoked.
func TestEcertOverHTTP(t *testing.T) {
	e := newEnv(t)
	var psn, id, name string
	for _, p := range e.data.Persons {
		for _, c := range e.data.Coverages {
			if c.PsnNo == p.PsnNo && c.Admdvs == "370100" && c.EndDate == "" && p.Phone != "" && psn == "" {
				psn, id, name = p.PsnNo, p.IDNumber, p.Name
			}
		}
	}
	channel := &auth.Signer{KeyID: "ch_wechat", SM2: demo.ChannelKey("ch_wechat")}
	signed := func(sg *auth.Signer, method, path string, body any, status int) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		if body == nil {
			b = nil
		}
		req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if method != "GET" {
			req.Header.Set(httpapi.HeaderIdempotencyKey, e.idem())
		}
		if err := sg.Sign(req, b); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		e.validate(req, b, resp, out)
		if resp.StatusCode != status {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, out)
		}
		var m map[string]any
		json.Unmarshal(out, &m)
		return m
	}
	act := signed(channel, "POST", "/api/v1/ecert/activations", map[string]any{"id_number": id, "name": name}, 201)
	resp, body := e.do("admin", "GET", "/api/v1/ecert/dev/sms?limit=1", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("sms outbox: %s", body)
	}
	otp := regexp.MustCompile(`验证码 ([0-9]{6})`).FindStringSubmatch(string(body))
	if otp == nil {
		t.Fatalf("no code in %s", body)
	}
	device, _ := gmcrypto.GenerateKey(nil)
	bind := signed(channel, "POST", "/api/v1/ecert/activations/"+act["activation_id"].(string)+"/confirm",
		map[string]any{"otp": otp[1], "device_public_key": hex.EncodeToString(device.Public().Bytes())}, 201)
	cred, _ := hex.DecodeString(bind["credential"].(string))
	dev := &code.Device{Key: device, Credential: cred}
	text, err := dev.Generate(time.Now(), int(bind["step_seconds"].(float64)), 1)
	if err != nil {
		t.Fatal(err)
	}
	// The page shows it as an image.
	resp, png := e.do("cashier", "POST", "/api/v1/ecert/render", []byte(`{"code":"`+text+`"}`), nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("render: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	his := e.signer
	res := signed(his, "POST", "/api/v1/ecert/resolve", map[string]any{"code": text}, 200)
	token := res["ec_token"].(string)
	if len(token) > 40 || res["person"].(map[string]any)["psn_no"] != psn {
		t.Fatalf("%v", res)
	}
	again := signed(his, "POST", "/api/v1/ecert/resolve", map[string]any{"code": text}, 409)
	if !strings.Contains(again["message"].(string), "code_replayed") {
		t.Fatalf("%v", again)
	}
	v := signed(his, "POST", "/api/v1/visits", map[string]any{"ec_token": token, "fixmedins_code": e.vars["{H1}"], "visit_type": "general_outpatient"}, 201)
	if v["psn_no"] != psn || v["mdtrt_cert_type"] != "01" || v["mdtrt_cert_no"] != bind["cert_id"] {
		t.Fatalf("visit %v", v)
	}
	sum := signed(channel, "GET", "/api/v1/ecert/bindings/"+bind["binding_id"].(string)+"/summary", nil, 200)
	if sum["psn_no"] != psn {
		t.Fatalf("summary %v", sum)
	}
	// Another channel cannot read it; the HIS cannot activate.
	alipay := &auth.Signer{KeyID: "ch_alipay", SM2: demo.ChannelKey("ch_alipay")}
	signed(alipay, "GET", "/api/v1/ecert/bindings/"+bind["binding_id"].(string)+"/summary", nil, 404)
	signed(his, "POST", "/api/v1/ecert/activations", map[string]any{"id_number": id, "name": name}, 403)
	// Lost phone: revoke; the next code is refused.
	signed(channel, "POST", "/api/v1/ecert/certs/"+bind["cert_id"].(string)+"/revoke", map[string]any{"reason": "lost phone"}, 200)
	text2, _ := dev.Generate(time.Now(), int(bind["step_seconds"].(float64)), 2)
	gone := signed(his, "POST", "/api/v1/ecert/resolve", map[string]any{"code": text2}, 403)
	if !strings.Contains(gone["message"].(string), "device_revoked") {
		t.Fatalf("%v", gone)
	}
	// A suspended channel is refused at its next request.
	if st, body := e.dual("PUT", "/api/v1/ecert/channels/ch_wechat/status", []byte(`{"status":"suspended"}`)); st != 200 {
		t.Fatalf("suspend: %d %s", st, body)
	}
	signed(channel, "POST", "/api/v1/ecert/activations", map[string]any{"id_number": id, "name": name}, 403)
	// The directory needs no login.
	resp, body = e.do("anon", "GET", "/api/v1/ecert/directory", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"admdvs":"370100"`) {
		t.Fatalf("directory: %s", body)
	}
}
