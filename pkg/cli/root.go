// Package cli defines lora's commands and maps their errors to exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, documented in docs/cli.md. One place maps errors to them: Main.
const (
	ExitOK        = 0 // success
	ExitFailed    = 1 // a stage (or command) failed
	ExitInvalid   = 2 // invalid recipe or usage
	ExitGate      = 3 // a gate was not met
	ExitChecksum  = 4 // a checksum did not match
	ExitInterrupt = 130
)

// ExitError carries an exit code with an error. Packages below cli return
// their own sentinel errors; commands wrap them with Exit where the code is
// not ExitFailed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err with an exit code. A nil err stays nil.
func Exit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// ErrSilent marks an error whose message was already printed (for example
// lint diagnostics); Main prints nothing more for it.
var ErrSilent = errors.New("already reported")

// exitCoder lets packages outside cli attach an exit code to an error
// without importing cli.
type exitCoder interface{ ExitCode() int }

// registered command constructors; each command file calls register in init.
var registered = map[string]func() *cobra.Command{}

func register(name string, f func() *cobra.Command) {
	if _, dup := registered[name]; dup {
		panic("cli: command registered twice: " + name)
	}
	registered[name] = f
}

// streams are the command's standard streams, reachable from every command.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

type ctxKey struct{}

func ioFrom(cmd *cobra.Command) streams {
	if s, ok := cmd.Context().Value(ctxKey{}).(streams); ok {
		return s
	}
	return streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}
}

// NewRoot builds the root command with every registered subcommand.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "lora",
		Short: "Declarative, reproducible LoRA fine-tuning on any GPU",
		Long: `lora runs LoRA fine-tuning recipes: versioned YAML files whose stages fetch,
format, chunk, train and evaluate. Training runs on any Vulkan GPU (or the CPU).

Exit codes: 0 ok, 1 a stage failed, 2 invalid recipe or usage, 3 a gate was
not met, 4 checksum mismatch.`,
		Example:       "  lora lint recipes/alpaca-chat.yaml\n  lora run recipes/alpaca-chat.yaml",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	names := make([]string, 0, len(registered))
	for n := range registered {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := registered[n]()
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
		root.AddCommand(c)
	}
	return root
}

// Main runs lora with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = context.WithValue(ctx, ctxKey{}, streams{in: stdin, out: stdout, err: stderr})
	root := NewRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := codeOf(err)
	if !errors.Is(err, ErrSilent) {
		fmt.Fprintf(stderr, "lora: %v\n", err)
	}
	if code == ExitFailed && ctx.Err() != nil {
		return ExitInterrupt
	}
	return code
}

func codeOf(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if isUsageError(err) {
		return ExitInvalid
	}
	return ExitFailed
}

// isUsageError recognises cobra's flag and argument errors.
func isUsageError(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}

type usageError struct{ err error }

func (u *usageError) Error() string { return u.err.Error() + " (see --help)" }
func (u *usageError) Unwrap() error { return u.err }

func init() {
	cobra.EnableCommandSorting = true
}

// usageArgs wraps a cobra argument validator so that its errors exit 2.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// Usagef returns a usage error (exit 2).
func Usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }
