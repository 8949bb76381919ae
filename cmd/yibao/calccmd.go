package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"yibao/ecert/code"
	"yibao/policy"
)

// runCalc settles one request with the pure calculator: policy, person,
// visit, accumulators and lines in; setlinfo, setldetail, lines,
// accumulators and (with --explain) the steps out. Nothing is stored.
func runCalc(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao calc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reqFile := fs.String("request", "-", "the request JSON file (- = standard input); schema in docs/policy.md")
	explain := fs.Bool("explain", false, "add the step-by-step explanation (Chinese and English)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("yibao calc takes no arguments (got %q); use --request FILE or standard input", fs.Arg(0))
	}
	var in io.Reader = os.Stdin
	if *reqFile != "-" {
		f, err := os.Open(*reqFile)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	return policy.RunCalc(in, stdout, *explain)
}

func benchCalc(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench calc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("bills", 1_000_000, "bills to settle per run")
	runs := fs.Int("runs", 3, "runs (the best is reported)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "calculator benchmark — %s\n", machine())
	fmt.Fprintf(stdout, "one goroutine (one core), the demo policy, a 20-line inpatient bill, no explanation\n")
	best := 0.0
	for i := range *runs {
		ps, err := policy.BenchCalc(*n, time.Now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  run %d: %d bills, %.0f bills/s\n", i+1, *n, ps)
		best = max(best, ps)
	}
	fmt.Fprintf(stdout, "best: %.0f twenty-line bills/s per core (target ≥ 100,000); GOMAXPROCS=%d\n", best, runtime.GOMAXPROCS(0))
	return nil
}

// benchQR measures what a resolution costs before the database: parse,
// window, cached credential, one SM2 verify — and prints the raw SM2
// verify rate next to it.
func benchQR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench qr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("codes", 20_000, "verifications per measurement")
	devices := fs.Int("devices", 1000, "distinct devices (their credentials are verified once, then cached)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "e-certificate code benchmark — %s\n", machine())
	r, err := code.Bench(*n, *devices, time.Now, runtime.GOMAXPROCS(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  raw SM2 verify (one core):                 %8.0f /s\n", r.RawVerify)
	fmt.Fprintf(stdout, "  code verification, one core:               %8.0f /s  (parse + window + cached credential + 1 SM2 verify; target ≥ 15,000)\n", r.PerCore)
	fmt.Fprintf(stdout, "  code verification, %d goroutines:           %8.0f /s\n", runtime.GOMAXPROCS(0), r.AllCores)
	fmt.Fprintf(stdout, "  first sight of a device (credential + code): %8.0f /s\n", r.ColdPerCore)
	fmt.Fprintf(stdout, "  code generation (device side), one core:   %8.0f /s\n", r.Generate)
	fmt.Fprintf(stdout, "  code size: %d bytes, %d characters, QR version %d\n", r.Bytes, r.Chars, r.QRVersion)
	return nil
}
