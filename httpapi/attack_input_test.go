package httpapi_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/httpapi"
	"yibao/sqlstore"
)

// attackFile is testdata/attack_inputs.json; its _doc explains the format.
type attackFile struct {
	Doc         []string        `json:"_doc"`
	Bookkeeping []string        `json:"bookkeeping_tables"`
	Payloads    []attackPayload `json:"payloads"`
	Targets     []attackTarget  `json:"targets"`
	Cases       []attackCase    `json:"cases"`
}

type attackPayload struct {
	Text *string `json:"text"`
	Hex  string  `json:"hex"`
	Code string  `json:"code"`
	Note string  `json:"note"`
}

type attackTarget struct {
	Name     string          `json:"name"`
	As       string          `json:"as"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Idem     bool            `json:"idem"`
	Body     json.RawMessage `json:"body"`
	Status   int             `json:"status"`
	Readback string          `json:"readback"`
	Writes   []string        `json:"writes"`
	Fields   []struct {
		Path     string `json:"path"`
		Stores   bool   `json:"stores"`
		MaxBytes int    `json:"max_bytes"`
	} `json:"fields"`
}

type attackRepeat struct {
	Prefix string `json:"prefix"`
	Unit   string `json:"unit"`
	Inner  string `json:"inner"`
	Close  string `json:"close"`
	Suffix string `json:"suffix"`
	Count  int    `json:"count"`
	Raw    bool   `json:"raw"`
}

func (r *attackRepeat) build() string {
	return r.Prefix + strings.Repeat(r.Unit, r.Count) + r.Inner + strings.Repeat(r.Close, r.Count) + r.Suffix
}

type attackCase struct {
	Name         string            `json:"name"`
	As           string            `json:"as"`
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	Idem         bool              `json:"idem"`
	Body         json.RawMessage   `json:"body"`
	Raw          *string           `json:"raw"`
	Append       string            `json:"append"`
	Repeat       *attackRepeat     `json:"repeat"`
	Insert       *string           `json:"insert"`
	InsertHex    string            `json:"insert_hex"`
	InsertRepeat *attackRepeat     `json:"insert_repeat"`
	Headers      map[string]string `json:"headers"`
	HeaderHex    map[string]string `json:"header_hex"`
	Status       int               `json:"status"`
	Code         string            `json:"code"`
	Field        string            `json:"field"`
	Contains     string            `json:"contains"`
	Writes       []string          `json:"writes"`
	Infcode      *int              `json:"infcode"`
	ErrMsg       string            `json:"err_msg"`
}

// stableRefusals are the codes a refused attack may carry: the request's
// fault, never the server's.
var stableRefusals = map[yibao.Code]bool{
	yibao.CodeInvalid: true, yibao.CodeMalformed: true, yibao.CodeNotFound: true, yibao.CodeForbidden: true,
	yibao.CodeConflict: true, yibao.CodePrecondition: true, yibao.CodeUnauthenticated: true,
}

// attackEnv adds to env what the attacks need: fresh unique values,
// visits to aim at, and the database's tables.
type attackEnv struct {
	*env
	seq    int
	drug   string
	psnID  string
	visit  string
	tables []string
}

// TestInputAttacks runs testdata/attack_inputs.json over HTTP: SQL
// injection in every string field of the main writes (X4), oversized and
// malformed JSON (X5), bad encodings and odd amounts (X6), and the same on
// the national interface. No answer is a 5xx; refusals have stable codes
// and write nothing; accepted text is stored verbatim; the schema is
// unchanged afterwards.
func TestInputAttacks(t *testing.T) {
	b, err := os.ReadFile("testdata/attack_inputs.json")
	if err != nil {
		t.Fatal(err)
	}
	var file attackFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("attack_inputs.json: %v", err)
	}
	a := newAttackEnv(t)
	schema := a.schema()
	bookkeeping := map[string]bool{}
	for _, tb := range file.Bookkeeping {
		bookkeeping[tb] = true
	}
	counts := map[string]int{}

	for _, tg := range file.Targets {
		for _, f := range tg.Fields {
			for i, p := range file.Payloads {
				name := fmt.Sprintf("X4 %s %s payload %d", tg.Name, f.Path, i)
				t.Run(name, func(t *testing.T) {
					a.t = t
					stores := f.Stores && p.Code == "" && (f.MaxBytes == 0 || len(*p.Text) <= f.MaxBytes)
					counts[fmt.Sprintf("X4 stored=%v", stores)]++
					a.runPayload(tg, f.Path, p, stores, bookkeeping)
				})
			}
		}
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			a.t = t
			counts[strings.Fields(c.Name)[0]]++
			a.runCase(c, bookkeeping)
		})
	}
	a.t = t
	if got := a.schema(); got != schema {
		t.Fatalf("the schema changed:\nbefore: %s\nafter:  %s", schema, got)
	}
	t.Logf("X4: attack cases run %v (X4 injection, X5 malformed JSON, X6 encoding and amounts): 5xx 0, partial writes 0, schema unchanged", counts)
}

func newAttackEnv(t *testing.T) *attackEnv {
	a := &attackEnv{env: newEnv(t)}
	today := time.Now().In(yibao.ChinaTime).Format(time.DateOnly)
	for _, c := range a.data.Coverages {
		if c.Insutype == "310" && c.Admdvs == "370100" && c.EndDate == "" {
			a.vars["{PSN}"] = c.PsnNo
			break
		}
	}
	for _, p := range a.data.Persons {
		if p.PsnNo == a.vars["{PSN}"] {
			a.psnID = p.IDNumber
		}
	}
	for _, it := range a.data.Catalog {
		if it.Kind == "drug" && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			a.drug = it.Code
			break
		}
	}
	if a.psnID == "" || a.drug == "" {
		t.Fatal("demo data lacks an employee or a current class A drug")
	}
	a.visit = a.openVisit(false)
	a.tables = a.tableList()
	return a
}

// openVisit opens a visit of {PSN} at {H1}, with one fee line if asked.
func (a *attackEnv) openVisit(withLine bool) string {
	a.t.Helper()
	body := fmt.Sprintf(`{"psn_no":%q,"fixmedins_code":%q,"visit_type":"general_outpatient","dept_code":"NK","dept_name":"内科"}`, a.vars["{PSN}"], a.vars["{H1}"])
	r, out := a.do("cashier", "POST", "/api/v1/visits", []byte(body), map[string]string{httpapi.HeaderIdempotencyKey: a.idem()})
	if r.StatusCode != 201 {
		a.t.Fatalf("open visit: %d %s", r.StatusCode, out)
	}
	var v struct {
		MdtrtID string `json:"mdtrt_id"`
	}
	json.Unmarshal(out, &v)
	if withLine {
		line := fmt.Sprintf(`{"lines":[{"feedetl_sn":"1","catalog_code":%q,"unit_price":"12.30","quantity":"2"}]}`, a.drug)
		r, out := a.do("cashier", "POST", "/api/v1/visits/"+v.MdtrtID+"/fee-lines", []byte(line), map[string]string{httpapi.HeaderIdempotencyKey: a.idem()})
		if r.StatusCode != 200 {
			a.t.Fatalf("fee line: %d %s", r.StatusCode, out)
		}
	}
	return v.MdtrtID
}

// fill replaces the variables in s, with fresh values for the NEW_ ones.
func (a *attackEnv) fill(s string) string {
	next := func() int { a.seq++; return a.seq }
	now := time.Now().In(yibao.ChinaTime)
	for _, v := range []struct {
		name string
		val  func() string
	}{
		{"{NEW_PSN}", func() string { return fmt.Sprintf("3701009998%010d", next()) }},
		{"{NEW_ID}", func() string {
			first17 := "110101" + time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, next()).Format("20060102") + "123"
			return first17 + string(yibao.IDCheckChar(first17))
		}},
		{"{NEW_H}", func() string { return fmt.Sprintf("H3701%07d", 9000000+next()) }},
		{"{NEW_CODE}", func() string { return fmt.Sprintf("ATK%08d", next()) }},
		{"{SN}", func() string { return fmt.Sprintf("ATK%d", next()) }},
		{"{MSGID}", func() string {
			return a.vars["{H1}"] + now.Format("20060102150405") + fmt.Sprintf("%04d", next()%10000)
		}},
		{"{SETTLE_VISIT}", func() string { return a.openVisit(true) }},
		{"{VISIT}", func() string { return a.visit }},
		{"{PSN_ID}", func() string { return a.psnID }},
		{"{DRUG}", func() string { return a.drug }},
		{"{TODAY}", func() string { return now.Format(time.DateOnly) }},
		{"{NOW}", func() string { return now.Format(time.DateTime) }},
		{"{TS}", func() string { return strconv.FormatInt(now.Unix(), 10) }},
	} {
		for strings.Contains(s, v.name) {
			s = strings.Replace(s, v.name, v.val(), 1)
		}
	}
	return a.expand(s)
}

// runPayload puts one payload into one field of a target's body.
func (a *attackEnv) runPayload(tg attackTarget, path string, p attackPayload, stores bool, bookkeeping map[string]bool) {
	t := a.t
	var body any
	dec := json.NewDecoder(strings.NewReader(a.fill(string(tg.Body))))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	setPath(t, body, path, "@@X@@")
	enc, _ := json.Marshal(body)
	lit := []byte(`"` + string(mustHex(t, p.Hex)) + `"`)
	if p.Text != nil {
		lit, _ = json.Marshal(*p.Text)
	}
	raw := bytes.Replace(enc, []byte(`"@@X@@"`), lit, 1)
	hdr := map[string]string{}
	if tg.Idem {
		hdr[httpapi.HeaderIdempotencyKey] = a.idem()
	}
	reqPath := a.fill(tg.Path)
	before := a.counts()
	resp, out := a.do(tg.As, tg.Method, reqPath, raw, hdr)
	after := a.counts()
	eb := a.checkAnswer(resp, out)

	switch {
	case p.Code != "":
		if resp.StatusCode != 400 || string(eb.Code) != p.Code {
			t.Fatalf("%s: %d %s, want 400 %s", raw, resp.StatusCode, out, p.Code)
		}
	case stores:
		if resp.StatusCode != tg.Status {
			t.Fatalf("free text %q in %s: %d %s, want %d", *p.Text, path, resp.StatusCode, out, tg.Status)
		}
		var created map[string]any
		json.Unmarshal(out, &created)
		rb := tg.Readback
		for k, v := range created {
			if s, ok := v.(string); ok {
				rb = strings.ReplaceAll(rb, "{"+k+"}", s)
			}
		}
		r2, got := a.do(tg.As, "GET", rb, nil, nil)
		var stored map[string]any
		json.Unmarshal(got, &stored)
		key := path[strings.LastIndex(path, ".")+1:]
		if r2.StatusCode != 200 || stored[key] != *p.Text {
			t.Fatalf("stored %s = %q, sent %q (%d %s)", key, stored[key], *p.Text, r2.StatusCode, clip(string(got)))
		}
	default:
		if resp.StatusCode < 400 {
			t.Fatalf("%q in %s was taken: %d %s", payloadText(p), path, resp.StatusCode, clip(string(out)))
		}
	}
	allowed := map[string]bool{}
	if resp.StatusCode < 400 {
		for _, tb := range tg.Writes {
			allowed[tb] = true
		}
	}
	a.checkWrites(before, after, bookkeeping, allowed)
}

// runCase sends one X5/X6/national-interface case.
func (a *attackEnv) runCase(c attackCase, bookkeeping map[string]bool) {
	t := a.t
	var raw []byte
	switch {
	case c.Repeat != nil:
		raw = []byte(a.fill(c.Repeat.build()))
	case c.Raw != nil:
		raw = []byte(a.fill(*c.Raw))
	case c.Body != nil:
		var body any
		dec := json.NewDecoder(strings.NewReader(a.fill(string(c.Body))))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			t.Fatal(err)
		}
		raw, _ = json.Marshal(body)
	}
	switch {
	case c.Insert != nil:
		raw = bytes.Replace(raw, []byte("@@X@@"), []byte(*c.Insert), 1)
	case c.InsertHex != "":
		raw = bytes.Replace(raw, []byte("@@X@@"), mustHex(t, c.InsertHex), 1)
	case c.InsertRepeat != nil && c.InsertRepeat.Raw:
		raw = bytes.Replace(raw, []byte(`"@@X@@"`), []byte(c.InsertRepeat.build()), 1)
	case c.InsertRepeat != nil:
		raw = bytes.Replace(raw, []byte("@@X@@"), []byte(c.InsertRepeat.build()), 1)
	}
	raw = append(raw, c.Append...)
	hdr := map[string]string{}
	if c.Idem {
		hdr[httpapi.HeaderIdempotencyKey] = a.idem()
	}
	for k, v := range c.Headers {
		hdr[k] = a.fill(v)
	}
	for k, v := range c.HeaderHex {
		hdr[k] = string(mustHex(t, v))
	}
	before := a.counts()
	resp, out := a.do(c.As, c.Method, a.fill(c.Path), raw, hdr)
	after := a.counts()
	eb := a.checkAnswer(resp, out)
	if resp.StatusCode != c.Status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.Status, clip(string(out)))
	}
	if c.Code != "" && (string(eb.Code) != c.Code || (c.Field != "" && eb.Field != c.Field)) {
		t.Fatalf("error %s field %q, want %s field %q: %s", eb.Code, eb.Field, c.Code, c.Field, out)
	}
	if c.Contains != "" && !strings.Contains(compactJSON(out), c.Contains) {
		t.Fatalf("answer lacks %s: %s", c.Contains, clip(compactJSON(out)))
	}
	allowed := map[string]bool{}
	if c.Infcode != nil {
		var ans struct {
			Infcode int    `json:"infcode"`
			ErrMsg  string `json:"err_msg"`
		}
		if err := json.Unmarshal(out, &ans); err != nil {
			t.Fatalf("not an NHSA answer: %s", clip(string(out)))
		}
		if ans.Infcode != *c.Infcode || !strings.Contains(ans.ErrMsg, c.ErrMsg) {
			t.Fatalf("infcode %d err_msg %q, want %d mentioning %q", ans.Infcode, ans.ErrMsg, *c.Infcode, c.ErrMsg)
		}
		allowed["nhsa_messages"] = ans.Infcode == 0 // a message answered is remembered by its msgid
	}
	if resp.StatusCode < 400 {
		for _, tb := range c.Writes {
			allowed[tb] = true
		}
	}
	a.checkWrites(before, after, bookkeeping, allowed)
}

// checkAnswer fails on a 5xx and on a refusal without a stable code, and
// returns the error body.
func (a *attackEnv) checkAnswer(resp *http.Response, out []byte) httpapi.ErrorBody {
	var eb httpapi.ErrorBody
	if resp.StatusCode >= 500 {
		a.t.Fatalf("server error %d: %s", resp.StatusCode, clip(string(out)))
	}
	if resp.StatusCode >= 400 {
		json.Unmarshal(out, &eb)
		if !stableRefusals[eb.Code] && eb.Code != yibao.CodeTooLarge {
			a.t.Fatalf("refused with code %q: %s", eb.Code, clip(string(out)))
		}
	}
	return eb
}

// checkWrites fails when a table other than bookkeeping and allowed ones
// changed its row count.
func (a *attackEnv) checkWrites(before, after map[string]int, bookkeeping, allowed map[string]bool) {
	for _, tb := range a.tables {
		if before[tb] != after[tb] && !bookkeeping[tb] && !allowed[tb] {
			a.t.Errorf("table %s went from %d to %d rows", tb, before[tb], after[tb])
		}
	}
}

func (a *attackEnv) tableList() []string {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if a.app.DB.Dialect == sqlstore.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	return a.column(q)
}

// schema lists every table's columns with their types, and the indexes.
func (a *attackEnv) schema() string {
	q := `SELECT m.name || '.' || p.name || ' ' || p.type FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'
		UNION ALL SELECT 'index ' || name FROM sqlite_master WHERE type = 'index'`
	if a.app.DB.Dialect == sqlstore.Postgres {
		q = `SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns WHERE table_schema = current_schema()
			UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = current_schema()`
	}
	return strings.Join(a.column(q), "\n")
}

func (a *attackEnv) column(q string) []string {
	rows, err := a.app.DB.Read().QueryContext(context.Background(), q)
	if err != nil {
		a.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			a.t.Fatal(err)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// counts returns every table's row count, in one query.
func (a *attackEnv) counts() map[string]int {
	parts := make([]string, len(a.tables))
	for i, tb := range a.tables {
		parts[i] = fmt.Sprintf(`SELECT '%s', COUNT(*) FROM %s`, tb, tb)
	}
	rows, err := a.app.DB.Read().QueryContext(context.Background(), strings.Join(parts, " UNION ALL "))
	if err != nil {
		a.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var tb string
		var n int
		if err := rows.Scan(&tb, &n); err != nil {
			a.t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}

// setPath sets a dotted path ("lines.0.feedetl_sn") in decoded JSON.
func setPath(t *testing.T, v any, path, val string) {
	parts := strings.Split(path, ".")
	for i, p := range parts {
		last := i == len(parts)-1
		switch x := v.(type) {
		case map[string]any:
			if last {
				x[p] = val
				return
			}
			v = x[p]
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n >= len(x) {
				t.Fatalf("bad path %s", path)
			}
			if last {
				x[n] = val
				return
			}
			v = x[n]
		default:
			t.Fatalf("bad path %s", path)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payloadText(p attackPayload) string {
	if p.Text != nil {
		return *p.Text
	}
	return "0x" + p.Hex
}
