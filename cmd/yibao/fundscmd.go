package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"yibao"
	"yibao/demo"
	"yibao/funds"
)

// runFunds: yibao funds month runs a month of fund operations against a
// running platform, each run prepared by one administrator and approved
// by another: the demo's contribution file in, personal accounts
// credited, the institutions paid out, and the bank's confirmation (here
// simulated: every payment made) cleared.
func runFunds(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "month" {
		return errors.New("usage: yibao funds month [--period YYYY-MM] [--admdvs 370100] [--url URL] [--maker admin:admin123] [--checker auditor:auditor123]")
	}
	fs := flag.NewFlagSet("yibao funds month", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "the platform's base URL")
	period := fs.String("period", time.Now().In(yibao.ChinaTime).Format("2006-01"), "the month, YYYY-MM (China time)")
	admdvs := fs.String("admdvs", "370100", "the region whose accounts are credited and institutions paid")
	maker := fs.String("maker", "admin:admin123", "the administrator who prepares (user:password)")
	checker := fs.String("checker", "auditor:auditor123", "another administrator, who approves (user:password)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	login := func(up string) (string, error) {
		u, p, _ := strings.Cut(up, ":")
		s, err := callJSON(ctx, nil, "", "POST", *url+"/api/v1/auth/login", map[string]string{"username": u, "password": p})
		if err != nil {
			return "", err
		}
		return s["token"].(string), nil
	}
	mk, err := login(*maker)
	if err != nil {
		return fmt.Errorf("maker: %w", err)
	}
	ck, err := login(*checker)
	if err != nil {
		return fmt.Errorf("checker: %w", err)
	}
	approve := func(what string, run map[string]any) (map[string]any, error) {
		id := run["run_id"].(string)
		fmt.Fprintf(stdout, "  %-14s run %s prepared by %s: %v lines, %s yuan; approving as %s…\n", what, id, run["prepared_by"], run["lines"], run["total"], strings.Split(*checker, ":")[0])
		out, err := callJSON(ctx, nil, ck, "POST", *url+"/api/v1/fund-runs/"+id+"/approve", nil)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "  %-14s %s, %v of %v lines executed\n", "", out["status"], out["posted"], out["lines"])
		return out, nil
	}

	fmt.Fprintf(stdout, "1. contributions of %s\n", *period)
	file := demo.ContributionsCSV(demo.Build(), *period)
	job, err := postCSV(ctx, mk, *url+"/api/v1/fund-runs/contributions", file)
	if err != nil {
		return err
	}
	for job["status"] == "running" {
		fmt.Fprintf(stderr, "\r  checking the file: %s %v/%v", job["phase"], job["done"], job["total"])
		time.Sleep(200 * time.Millisecond)
		if job, err = callJSON(ctx, nil, mk, "GET", *url+"/api/v1/fund-jobs/"+job["id"].(string), nil); err != nil {
			return err
		}
	}
	fmt.Fprintln(stderr)
	if job["status"] != "succeeded" {
		b, _ := json.Marshal(job["errors"])
		return fmt.Errorf("the contribution file was refused: %v %s", job["error"], b)
	}
	if _, err := approve("contributions", job["run"].(map[string]any)); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "2. personal accounts credited (划入) in %s\n", *admdvs)
	run, err := callJSON(ctx, nil, mk, "POST", *url+"/api/v1/fund-runs/crediting", map[string]string{"admdvs": *admdvs, "period": *period})
	if err != nil {
		return err
	}
	if run["status"] == funds.StatusPrepared {
		if _, err := approve("crediting", run); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "  crediting      run %s is %s already\n", run["run_id"], run["status"])
	}

	fmt.Fprintf(stdout, "3. payout (拨付) to the institutions of %s\n", *admdvs)
	run, err = callJSON(ctx, nil, mk, "POST", *url+"/api/v1/fund-runs/payout", map[string]string{"admdvs": *admdvs, "period": *period})
	if err != nil {
		return err
	}
	if run["status"] == funds.StatusPrepared {
		if run, err = approve("payout", run); err != nil {
			return err
		}
	}
	id := run["run_id"].(string)
	bankFile, err := getRaw(ctx, ck, *url+"/api/v1/fund-runs/"+id+"/bank-file")
	if err != nil {
		return err
	}
	rows, err := csv.NewReader(bytes.NewReader(bankFile)).ReadAll()
	if err != nil {
		return err
	}
	var conf bytes.Buffer
	w := csv.NewWriter(&conf)
	w.Write(funds.ConfirmationFileHeader)
	for _, r := range rows[1:] {
		fmt.Fprintf(stdout, "  instruction    %s  %-14s %-24s %12s yuan\n", r[0], r[1], r[2], r[3])
		w.Write([]string{r[0], r[3], "paid", "SIMBANK-" + r[0]})
	}
	w.Flush()

	fmt.Fprintln(stdout, "4. the bank's confirmation (simulated: every payment made)")
	res, err := postCSV(ctx, ck, *url+"/api/v1/fund-payouts/confirmations", conf.Bytes())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  confirmed %v, failed %v, confirmed before %v; receivables cleared by %s yuan\n", res["confirmed"], res["failed"], res["already"], res["cleared"])
	fmt.Fprintln(stdout, "\ncheck the ledger with: yibao ledger check --data-dir <the platform's data dir>")
	return nil
}

func postCSV(ctx context.Context, token, url string, body []byte) (map[string]any, error) {
	out, err := send(ctx, "POST", token, url, "text/csv", body)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(out, &m)
}

func getRaw(ctx context.Context, token, url string) ([]byte, error) {
	return send(ctx, "GET", token, url, "", nil)
}

// send makes one authenticated call and returns the body of a 2xx answer.
func send(ctx context.Context, method, token, url, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method != "GET" {
		req.Header.Set("Idempotency-Key", fmt.Sprintf("cli-%d", time.Now().UnixNano()))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(out)))
	}
	return out, nil
}
