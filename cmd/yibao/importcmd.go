package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"yibao"
	"yibao/app"
	"yibao/registry"
)

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := loadConfig("import", args, stderr, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 2 || (fs.Arg(0) != "catalog" && fs.Arg(0) != "persons") {
		return errors.New("usage: yibao import [flags] catalog|persons FILE.csv")
	}
	f, err := os.Open(fs.Arg(1))
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := app.OpenStore(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	bar := newProgressBar(stderr, "import "+fs.Arg(0))
	ctx = yibao.WithPrincipal(ctx, yibao.System("cli-import"))
	n, err := a.Registry.Import(ctx, registry.ImportKind(fs.Arg(0)), f, bar.update)
	bar.finish()
	if err != nil {
		var ye *yibao.Error
		if errors.As(err, &ye) && len(ye.Issues) > 0 {
			fmt.Fprintf(stderr, "nothing imported; %d bad line(s):\n", len(ye.Issues))
			for _, is := range ye.Issues {
				field := ""
				if is.Field != "" {
					field = " [" + is.Field + "]"
				}
				fmt.Fprintf(stderr, "  line %d%s: %s\n", is.Line, field, is.Message)
			}
			return errors.New("import failed")
		}
		return err
	}
	fmt.Fprintf(stdout, "imported %d rows from %s\n", n, fs.Arg(1))
	return nil
}

// progressBar draws "label [#####-----]  45%  4500/10000 writing" on a
// terminal, redrawing in place; elsewhere it prints a line per 10%.
type progressBar struct {
	w        io.Writer
	label    string
	tty      bool
	lastPct  int
	lastDraw time.Time
}

func newProgressBar(w io.Writer, label string) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, label: label, tty: tty, lastPct: -1}
}

func (b *progressBar) update(phase string, done, total int) {
	pct := 0
	if total > 0 {
		pct = done * 100 / total
	}
	if b.tty {
		if time.Since(b.lastDraw) < 50*time.Millisecond && pct != 100 {
			return
		}
		b.lastDraw = time.Now()
		const width = 30
		fill := pct * width / 100
		fmt.Fprintf(b.w, "\r%s [%s%s] %3d%%  %d/%d %-10s", b.label, strings.Repeat("#", fill), strings.Repeat("-", width-fill), pct, done, total, phase)
		return
	}
	if pct/10 != b.lastPct/10 {
		b.lastPct = pct
		fmt.Fprintf(b.w, "%s: %3d%% (%d/%d) %s\n", b.label, pct, done, total, phase)
	}
}

func (b *progressBar) finish() {
	if b.tty {
		fmt.Fprintln(b.w)
	}
}
