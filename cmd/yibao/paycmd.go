package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"yibao"
	"yibao/app"
	"yibao/demo"
	"yibao/pay"
	"yibao/sim/walletsim"
)

// runReconcile: yibao reconcile channel --channel wechat --date 2026-11-23
// asks a running platform to download a wallet's bill of a day and match
// it against the orders, and prints the report.
func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "channel" {
		return errors.New("usage: yibao reconcile channel --channel wechat|alipay --date YYYY-MM-DD [--url URL --user admin --password …]")
	}
	fs := flag.NewFlagSet("yibao reconcile channel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "the platform's base URL")
	user := fs.String("user", "admin", "an administrator")
	pw := fs.String("password", "admin123", "the administrator's password (the demo's by default)")
	ch := fs.String("channel", "wechat", "wechat or alipay")
	date := fs.String("date", yibao.DateOf(time.Now()), "the bill's day, YYYY-MM-DD (China time)")
	asJSON := fs.Bool("json", false, "print the whole report as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	sess, err := callJSON(ctx, nil, "", "POST", *url+"/api/v1/auth/login", map[string]string{"username": *user, "password": *pw})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "downloading the %s bill of %s and matching it…\n", *ch, *date)
	out, err := callJSON(ctx, nil, sess["token"].(string), "POST", *url+"/api/v1/reconciliations", map[string]string{"channel": *ch, "date": *date})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	b, _ := json.Marshal(out["report"])
	var rep pay.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	fmt.Fprintln(stdout, out["summary"])
	if len(rep.Differences) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "\ndifference\trow\tout_trade_no\tout_refund_no\tours\ttheirs\tdetail")
	for _, d := range rep.Differences {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Kind, d.Row, d.OutTradeNo, d.OutRefundNo, d.Ours, d.Theirs, d.Detail)
	}
	return tw.Flush()
}

// runSim: yibao sim wallet runs the WeChat Pay and Alipay simulators on
// their own port, with the demo persons' accounts, for a platform started
// with wallets set to this server's URL and the same wallet_keys folder.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "bank" {
		return runSimBank(ctx, args, stdout, stderr)
	}
	if len(args) == 0 || args[0] != "wallet" {
		return errors.New("usage: yibao sim wallet [--addr 127.0.0.1:8090] [--keys DIR] | yibao sim bank [--addr 127.0.0.1:8091] [--keys DIR]")
	}
	fs := flag.NewFlagSet("yibao sim wallet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	dir := fs.String("keys", ".yibao/wallet-keys", "folder of the wallet keys (shared with the platform's wallet_keys)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	keys, err := walletsim.LoadKeys(*dir)
	if err != nil {
		return err
	}
	srv, err := walletsim.Start(keys, *addr, walletsim.Options{Fast: true})
	if err != nil {
		return err
	}
	defer srv.Close()
	d := demo.Build()
	app.AddDemoPayers(srv, d)
	fmt.Fprintf(stdout, "wallet simulators (not WeChat Pay, not Alipay) on %s: WeChat Pay API v3 at /wechat, Alipay gateway at /alipay\n", srv.URL)
	fmt.Fprintf(stdout, "  %d demo payers with %s yuan each; keys in %s\n", 2*len(d.Persons), app.DemoWalletBalance, *dir)
	fmt.Fprintf(stdout, "  run the platform with: YIBAO_WALLETS=%s YIBAO_WALLET_KEYS=%s yibao serve\n", srv.URL, *dir)
	fmt.Fprintf(stdout, "  inject faults: curl -s %s/wechat/sim/faults --json '{\"decline_next\":1,\"decline_code\":\"NOTENOUGH\"}'\n", srv.URL)
	<-ctx.Done()
	return nil
}
