package cli

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"lora": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// sharedData returns the absolute path of ../shared/data next to the
// repository root, or "" when it is absent.
func sharedData() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared", "data")
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// TestScripts runs the CLI scripts in testdata/script. Extra commands:
//
//	serve DIR          serve DIR over HTTP on 127.0.0.1; sets $SERVER
//	exitcode N PROG... run PROG and fail unless it exits with status N
//	lastrun VAR NAME   set $VAR to the newest run directory of recipe NAME under runs/
//
// $SHARED is ../shared/data (scripts that need it skip without it); $REPO
// is the repository root.
func TestScripts(t *testing.T) {
	shared := sharedData()
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("LORA_CACHE", filepath.Join(env.WorkDir, ".cache", "lora"))
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("LORA_OFFLINE", "")
			env.Setenv("SHARED", shared)
			if wd, err := os.Getwd(); err == nil {
				env.Setenv("REPO", filepath.Join(wd, "..", ".."))
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "shared":
				return shared != "", nil
			case "git":
				_, err := exec.LookPath("git")
				return err == nil, nil
			}
			return false, errors.New("unknown condition " + cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"serve": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: serve DIR")
				}
				srv := httptest.NewServer(http.FileServer(http.Dir(ts.MkAbs(args[0]))))
				ts.Defer(srv.Close)
				ts.Setenv("SERVER", srv.URL)
			},
			"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exitcode N PROG [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("%v", err)
				}
				if got != want {
					ts.Fatalf("exit status %d, want %d", got, want)
				}
			},
			"lastrun": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: lastrun VAR NAME")
				}
				dirs, _ := filepath.Glob(ts.MkAbs(filepath.Join("runs", args[1], "*")))
				if len(dirs) == 0 {
					ts.Fatalf("no runs of %s", args[1])
				}
				sort.Strings(dirs)
				ts.Setenv(args[0], dirs[len(dirs)-1])
			},
		},
	})
}
