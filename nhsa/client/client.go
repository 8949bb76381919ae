// Package client is a Go client of the NHSA national interface (infno
// messages): what a HIS vendor embeds. It builds the envelope (msgid,
// inf_time, operator), signs the request with the institution key (the
// platform's signed headers, or the TIF gateway headers) and decodes the
// answer.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"yibao"
	"yibao/auth"
)

// Client talks to one platform for one institution.
type Client struct {
	BaseURL       string // e.g. http://127.0.0.1:8080
	FixmedinsCode string
	FixmedinsName string
	Admvs         string // mdtrtarea_admvs: the institution's region
	// InsuplcAdmdvs is sent as insuplc_admdvs, the patient's insured
	// region; empty: Admvs. A patient insured in another region is
	// registered (2201, 2401) with their region named here.
	InsuplcAdmdvs string
	Opter         string
	OpterName     string
	Signer        *auth.Signer // X-Yibao signed requests; or
	TIFPaasid     string       // TIF gateway headers with
	TIFSecretHex  string       // the key's HMAC secret in hex
	AppendInfno   bool         // call …/callService/{infno}
	HTTP          *http.Client
	Now           func() time.Time

	SignNo  string // set by SignIn
	LastMsg string // msgid of the last message sent
}

// Response is the answer envelope; Output is left raw for the caller.
type Response struct {
	Infcode     json.Number     `json:"infcode"`
	InfRefmsgid string          `json:"inf_refmsgid"`
	RefmsgTime  string          `json:"refmsg_time"`
	RespondTime string          `json:"respond_time"`
	ErrMsg      string          `json:"err_msg"`
	Output      json.RawMessage `json:"output"`
}

// OK reports infcode 0.
func (r *Response) OK() bool { return r.Infcode.String() == "0" }

// Error is a refused message.
type Error struct {
	Infno, Msgid, ErrMsg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (msgid %s): infcode -1: %s", e.Infno, e.Msgid, e.ErrMsg)
}

var cst = yibao.ChinaTime

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// msgSeq numbers messages across every Client of the process (a HIS may
// run several); it starts at a random point so that two processes of one
// institution rarely meet within a second.
var msgSeq atomic.Uint32

func init() {
	n, _ := rand.Int(rand.Reader, big.NewInt(10000))
	msgSeq.Store(uint32(n.Int64()))
}

// NewMsgid makes a msgid: fixmedins_code + yyyyMMddHHmmss + a sequence,
// 30 characters in all (4 sequence digits for a 12-character code).
func (c *Client) NewMsgid() string {
	base := c.FixmedinsCode + c.now().In(cst).Format("20060102150405")
	seq := fmt.Sprintf("%010d", msgSeq.Add(1))
	if pad := 30 - len(base); pad >= 0 && pad < len(seq) {
		seq = seq[len(seq)-pad:]
	}
	return base + seq
}

// Call sends one message and returns its output; infcode -1 is an *Error.
func (c *Client) Call(ctx context.Context, infno string, input any) (json.RawMessage, error) {
	return c.CallMsgid(ctx, infno, c.NewMsgid(), input)
}

// CallMsgid sends a message with a given msgid (a retry resends the same).
func (c *Client) CallMsgid(ctx context.Context, infno, msgid string, input any) (json.RawMessage, error) {
	resp, err := c.Send(ctx, infno, msgid, input)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, &Error{Infno: infno, Msgid: msgid, ErrMsg: resp.ErrMsg}
	}
	return resp.Output, nil
}

// Send sends a message and returns the whole answer envelope.
func (c *Client) Send(ctx context.Context, infno, msgid string, input any) (*Response, error) {
	b, _, err := c.post(ctx, infno, msgid, input)
	if err != nil {
		return nil, err
	}
	var out Response
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("client: %s answered, not with an envelope: %.200s", infno, b)
	}
	c.LastMsg = msgid
	return &out, nil
}

// SignIn runs 9001 and keeps the sign_no for later messages.
func (c *Client) SignIn(ctx context.Context, ip string) error {
	out, err := c.Call(ctx, "9001", map[string]any{"signIn": map[string]string{"opter_no": c.Opter, "mac": "", "ip": ip}})
	if err != nil {
		return err
	}
	var o struct {
		Signinoutb struct {
			SignNo string `json:"sign_no"`
		} `json:"signinoutb"`
	}
	if err := json.Unmarshal(out, &o); err != nil {
		return err
	}
	c.SignNo = o.Signinoutb.SignNo
	return nil
}

// Download runs 9102 and returns the file's bytes (errors come back as an
// envelope).
func (c *Client) Download(ctx context.Context, fileNo, filename string) ([]byte, error) {
	b, ctype, err := c.post(ctx, "9102", c.NewMsgid(), map[string]any{"fsDownloadIn": map[string]string{"file_qury_no": fileNo,
		"filename": filename, "fixmedins_code": c.FixmedinsCode}})
	if err != nil {
		return nil, err
	}
	if ctype != "application/octet-stream" {
		var out Response
		json.Unmarshal(b, &out)
		return nil, &Error{Infno: "9102", ErrMsg: out.ErrMsg}
	}
	return b, nil
}

// post builds the envelope, signs and sends it, and returns the answer's
// bytes and content type.
func (c *Client) post(ctx context.Context, infno, msgid string, input any) ([]byte, string, error) {
	insuplc := c.InsuplcAdmdvs
	if insuplc == "" {
		insuplc = c.Admvs
	}
	env := map[string]any{
		"infno": infno, "msgid": msgid, "mdtrtarea_admvs": c.Admvs, "insuplc_admdvs": insuplc, "recer_sys_code": "YBXT", "infver": "V1.0",
		"opter_type": "1", "opter": c.Opter, "opter_name": c.OpterName, "inf_time": c.now().In(cst).Format("2006-01-02 15:04:05"),
		"fixmedins_code": c.FixmedinsCode, "fixmedins_name": c.FixmedinsName, "sign_no": c.SignNo, "input": input,
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, "", err
	}
	url := c.BaseURL + "/fsi/api/rsfComIfsService/callService"
	if c.AppendInfno {
		url += "/" + infno
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := c.authorize(req, body); err != nil {
		return nil, "", err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, "", err
	}
	c.LastMsg = msgid
	return b, res.Header.Get("Content-Type"), nil
}

// authorize signs req: the platform's signature, or the TIF headers.
func (c *Client) authorize(req *http.Request, body []byte) error {
	switch {
	case c.Signer != nil:
		return c.Signer.Sign(req, body)
	case c.TIFPaasid != "":
		ts := strconv.FormatInt(c.now().Unix(), 10)
		nb := make([]byte, 16)
		rand.Read(nb)
		nonce := hex.EncodeToString(nb)
		req.Header.Set(auth.HeaderTIFPaasid, c.TIFPaasid)
		req.Header.Set(auth.HeaderTIFTimestamp, ts)
		req.Header.Set(auth.HeaderTIFNonce, nonce)
		req.Header.Set(auth.HeaderTIFSignature, auth.TIFSignature(ts, c.TIFSecretHex, nonce))
		return nil
	}
	return errors.New("client: no credentials (Signer or TIF)")
}
