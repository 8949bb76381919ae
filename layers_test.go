package yibao_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layer orders the packages of the module: a package may import only
// packages of a lower layer. Packages not listed inherit their parent
// folder's layer (e.g. ledger/engine is a service-layer package only if
// listed so).
var layer = map[string]int{
	"money":              0,
	"":                   10, // the root domain package yibao
	"policy":             20,
	"ledger":             20,
	"review/rules":       20,
	"gmcrypto":           30,
	"sqlstore":           30,
	"demo":               35, // demo data; derives its demo keys with gmcrypto
	"web":                30,
	"sqlstore/sqltest":   40,
	"ledger/engine":      40,
	"ecert/code":         40,
	"audit/tlog":         40, // the transparency log (tessera), signers, proofs
	"audit":              45, // entries written in the services' transactions; the sequencer
	"audit/witness":      45,
	"ecert":              60,
	"nhsa":               65,
	"delivery":           60,
	"nhsa/client":        55,
	"registry":           50,
	"auth":               50,
	"settlement":         60,
	"pay/channel":        30, // the wallet contract: types only
	"sim":                30,
	"pay/channel/wechat": 40, // adapters on the providers' SDKs
	"pay/channel/alipay": 40,
	"sim/wechatsim":      40, // the providers' servers, simulated
	"sim/alipaysim":      40,
	"sim/walletsim":      45,
	"sim/faultfront":     30, // a front that loses chosen answers (fault tests)
	"pay":                62,
	"credit":             61, // credit payment: agreements, holds, statements, repayments, bank files
	"funds":              61, // fund operations: contributions, crediting, payouts, corrections, dual control
	"faceid":             61, // face payment: consent, sealed templates, terminals, 1:1 and 1:N verification
	"face":               30, // the face contract: Embedder, quality errors, decoding, model files
	"face/internal/imgx": 25, // pixel work for the face pipeline
	"face/gallery":       20, // 1:N search, in memory
	"face/onnx":          35, // the bundled embedder (ONNX Runtime via cgo)
	"face/eval":          40, // calibration and fake-camera files
	"credit/bankapi":     35, // the signed bank protocol: messages, signatures, client
	"sim/banksim":        40, // the bank, simulated
	"review":             55, // smart review: the rule libraries as a service, the review queue
	"xregion/wire":       35, // the signed HTTP between region nodes and the hub
	"xregion":            63, // a node's side of cross-region care: questions, two-phase commit, recovery
	"hub":                63, // the national hub: routing, the commit log, deliveries, monthly clearing
	"httpapi":            70,
	"app":                80,
	"app/apptest":        85, // a seeded platform for end-to-end tests
	"loadgen":            86, // a load-generating HIS client: talks to the platform over HTTP only
	"chaos":              87, // crash tests: runs the platform as a child process and checks its store afterwards
	"cmd/yibao":          90,
}

// pure packages do calculation only: no database, network, files, clock
// or randomness.
var pure = []string{"money", "policy", "ledger", "review/rules", "face/gallery", "face/internal/imgx"}

var impure = []string{"database/sql", "net", "net/http", "os", "os/exec", "io/fs", "io/ioutil", "syscall",
	"crypto/rand", "math/rand", "math/rand/v2", "yibao/sqlstore", "log", "log/slog"}

type pkgInfo struct {
	imports map[string]bool
	calls   map[string]bool // time.Now and friends
}

func readPackages(t *testing.T) map[string]*pkgInfo {
	t.Helper()
	pkgs := map[string]*pkgInfo{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if dir == "." {
			dir = ""
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		full, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		p := pkgs[dir]
		if p == nil {
			p = &pkgInfo{imports: map[string]bool{}, calls: map[string]bool{}}
			pkgs[dir] = p
		}
		for _, im := range f.Imports {
			s, _ := strconv.Unquote(im.Path.Value)
			p.imports[s] = true
		}
		ast.Inspect(full, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" && (sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Sleep" || sel.Sel.Name == "After" || sel.Sel.Name == "NewTimer" || sel.Sel.Name == "NewTicker") {
					p.calls["time."+sel.Sel.Name] = true
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func layerOf(dir string) (int, bool) {
	for d := dir; ; {
		if l, ok := layer[d]; ok {
			return l, true
		}
		if d == "" {
			return 0, false
		}
		i := strings.LastIndex(d, "/")
		if i < 0 {
			d = ""
		} else {
			d = d[:i]
		}
	}
}

func TestImportsPointDown(t *testing.T) {
	if _, err := os.Stat("go.mod"); err != nil {
		t.Skip("run from the module root")
	}
	for dir, p := range readPackages(t) {
		own, ok := layerOf(dir)
		if !ok {
			t.Errorf("package %q has no layer; add it to layers_test.go", dir)
			continue
		}
		for im := range p.imports {
			if im != "yibao" && !strings.HasPrefix(im, "yibao/") {
				continue
			}
			target := strings.TrimPrefix(strings.TrimPrefix(im, "yibao"), "/")
			tl, ok := layerOf(target)
			if !ok {
				t.Errorf("%s imports %s, which has no layer", dir, im)
				continue
			}
			if tl >= own && !strings.HasPrefix(dir, target+"/") {
				t.Errorf("package %q (layer %d) imports %s (layer %d): imports must point down", dir, own, im, tl)
			}
		}
	}
}

func TestPurePackagesDoNoIO(t *testing.T) {
	pkgs := readPackages(t)
	for dir, p := range pkgs {
		isPure := false
		for _, pp := range pure {
			if dir == pp {
				isPure = true
			}
		}
		if !isPure {
			continue
		}
		for im := range p.imports {
			for _, bad := range impure {
				if im == bad {
					t.Errorf("pure package %s imports %s", dir, im)
				}
			}
		}
		for c := range p.calls {
			t.Errorf("pure package %s calls %s; pass time in", dir, c)
		}
	}
}
