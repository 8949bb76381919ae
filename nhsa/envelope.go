// Package nhsa speaks the NHSA 医疗保障信息平台 定点医药机构接口 — the infno
// messages every hospital HIS already sends — on top of the same services
// as the REST API: one envelope in, one envelope out, idempotent by msgid.
// docs/nhsa-interface.md lists what is supported, field by field.
package nhsa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"yibao"
	"yibao/money"
)

// Request is the 公共输入 envelope.
type Request struct {
	Infno          string          `json:"infno"`
	Msgid          string          `json:"msgid"`
	MdtrtareaAdmvs string          `json:"mdtrtarea_admvs"`
	InsuplcAdmdvs  string          `json:"insuplc_admdvs"`
	RecerSysCode   string          `json:"recer_sys_code"`
	DevNo          string          `json:"dev_no"`
	DevSafeInfo    string          `json:"dev_safe_info"`
	Cainfo         string          `json:"cainfo"`
	Signtype       string          `json:"signtype"`
	Infver         string          `json:"infver"`
	OpterType      string          `json:"opter_type"`
	Opter          string          `json:"opter"`
	OpterName      string          `json:"opter_name"`
	InfTime        string          `json:"inf_time"`
	FixmedinsCode  string          `json:"fixmedins_code"`
	FixmedinsName  string          `json:"fixmedins_name"`
	SignNo         string          `json:"sign_no"`
	Input          json.RawMessage `json:"input"`
}

// Response is the 公共输出 envelope. Infcode is 0 on success, -1 on failure.
type Response struct {
	Infcode     int    `json:"infcode"`
	InfRefmsgid string `json:"inf_refmsgid"`
	RefmsgTime  string `json:"refmsg_time"`
	RespondTime string `json:"respond_time"`
	ErrMsg      string `json:"err_msg"`
	WarnMsg     string `json:"warn_msg,omitempty"`
	Output      any    `json:"output"`
}

var (
	infnoRe  = regexp.MustCompile(`^[0-9]{4}[A-Z]?$`)
	admvsRe  = regexp.MustCompile(`^[0-9]{6}$`)
	msgTime  = "20060102150405"
	infTime  = "2006-01-02 15:04:05"
	maxInput = 40000
)

// parseEnvelope decodes a message body into its envelope: one JSON object
// and nothing after it, UTF-8, no key twice (nor in another letter case),
// no NUL or unpaired surrogate in any string, input included — what
// encoding/json would otherwise pass on silently or store. Numbers are
// kept as written (json.Number).
func parseEnvelope(body []byte) (*Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, failf("报文不是合法的JSON (%v)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, failf("报文不是合法的JSON (one JSON object, with nothing after it)")
	}
	if err := yibao.CheckJSON(body); err != nil {
		return nil, failf("报文不是合法的JSON (%s)", yibao.ErrorMessage(err))
	}
	return &r, nil
}

// fail is a refused message: infcode -1 with a precise err_msg.
type fail struct{ msg string }

func (f *fail) Error() string { return f.msg }

func failf(format string, args ...any) error { return &fail{fmt.Sprintf(format, args...)} }

// validate checks the envelope (§2 of the reference): every required field,
// its format and length, and that infno in the body agrees with the path.
func (r *Request) validate(pathInfno string, now time.Time) error {
	req := func(name, v string, max int) error {
		if v == "" {
			return failf("公共输入 %s 不能为空 (envelope field %s is required)", name, name)
		}
		if len([]rune(v)) > max {
			return failf("公共输入 %s 超长 (at most %d characters)", name, max)
		}
		return nil
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"infno", r.Infno, 6}, {"msgid", r.Msgid, 30}, {"mdtrtarea_admvs", r.MdtrtareaAdmvs, 6}, {"recer_sys_code", r.RecerSysCode, 10},
		{"infver", r.Infver, 6}, {"opter_type", r.OpterType, 3}, {"opter", r.Opter, 30}, {"opter_name", r.OpterName, 50},
		{"inf_time", r.InfTime, 19}, {"fixmedins_code", r.FixmedinsCode, 30}, {"fixmedins_name", r.FixmedinsName, 200},
	} {
		if err := req(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	if !infnoRe.MatchString(r.Infno) {
		return failf("infno %q 格式错误 (four digits, optionally a letter: 2203A)", r.Infno)
	}
	if pathInfno != "" && pathInfno != r.Infno {
		return failf("路径中的交易编号 %s 与报文 infno %s 不一致", pathInfno, r.Infno)
	}
	if len(r.Msgid) != 30 || !strings.HasPrefix(r.Msgid, r.FixmedinsCode) || len(r.FixmedinsCode)+14 > len(r.Msgid) {
		return failf("msgid %q 格式错误: 30 characters, the fixmedins_code then yyyyMMddHHmmss then a sequence", r.Msgid)
	}
	if _, err := time.Parse(msgTime, r.Msgid[len(r.FixmedinsCode):len(r.FixmedinsCode)+14]); err != nil {
		return failf("msgid %q 格式错误: no yyyyMMddHHmmss after the fixmedins_code", r.Msgid)
	}
	if !admvsRe.MatchString(r.MdtrtareaAdmvs) {
		return failf("mdtrtarea_admvs %q 须为6位行政区划代码", r.MdtrtareaAdmvs)
	}
	if r.InsuplcAdmdvs != "" && !admvsRe.MatchString(r.InsuplcAdmdvs) {
		return failf("insuplc_admdvs %q 须为6位行政区划代码", r.InsuplcAdmdvs)
	}
	switch r.OpterType {
	case "1", "2", "3":
	default:
		return failf("opter_type %q 不在字典中 (1 经办人, 2 自助终端, 3 移动终端)", r.OpterType)
	}
	t, err := time.ParseInLocation(infTime, r.InfTime, cst)
	if err != nil {
		return failf("inf_time %q 格式错误 (yyyy-MM-dd HH:mm:ss)", r.InfTime)
	}
	if d := now.Sub(t); d > 24*time.Hour || d < -10*time.Minute {
		return failf("inf_time %s 与平台时间相差过大", r.InfTime)
	}
	if len(r.Input) == 0 || bytes.Equal(bytes.TrimSpace(r.Input), []byte("null")) {
		return failf("公共输入 input 不能为空")
	}
	if len(r.Input) > maxInput {
		return failf("input 超长 (at most %d bytes)", maxInput)
	}
	return nil
}

var cst = yibao.ChinaTime

// amount is an NHSA money value: a JSON number (or a numeric string) with
// at most two decimals. It marshals as a JSON number.
type amount money.Fen

func (a *amount) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*a = 0
		return nil
	}
	f, err := money.ParseYuan(s)
	if err != nil {
		return fmt.Errorf("金额 %s 须为至多两位小数的数 (an amount with at most two decimals)", s)
	}
	*a = amount(f)
	return nil
}

func (a amount) MarshalJSON() ([]byte, error) { return []byte(money.Fen(a).String()), nil }

// num renders a fen amount as a JSON number.
func num(f money.Fen) json.Number { return json.Number(f.String()) }

// decimal is a quantity or ratio as sent: a number or a numeric string.
type decimal string

func (d *decimal) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if _, err := strconv.ParseFloat(s, 64); err != nil && s != "" {
		return fmt.Errorf("%s 不是数", s)
	}
	*d = decimal(s)
	return nil
}
