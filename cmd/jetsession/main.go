// Command jetsession is the operator's view of a jetsession deployment: it
// lists tenants and threads, reads, follows and appends events, archives old
// ones, and runs a development server. Run "jetsession help" for the list of
// commands and "jetsession <command> --help" for each one's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sio := stdio{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, terminal: isTerminal(os.Stdin)}
	err := run(ctx, os.Args[1:], sio)
	os.Exit(report(os.Stderr, err))
}

// Exit codes: runtime failures and command-line mistakes differ so that
// scripts can tell "retry later" from "fix the invocation".
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError is a mistake in the command line, found before anything was
// read or changed.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errShown reports an error whose explanation was already written (the
// command list of a bare "jetsession"): only the exit code is left to set.
var errShown = errors.New("usage shown")

// report writes err as the one line an operator reads and returns the
// process's exit code.
func report(stderr io.Writer, err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errShown):
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "jetsession:", oneLine(err.Error()))
		return exitUsage
	default:
		fmt.Fprintln(stderr, "jetsession:", oneLine(err.Error()))
		return exitRuntime
	}
}

// oneLine keeps joined or server-provided errors on a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// stdio bundles what a command reads and writes, so that tests drive run with
// buffers.
type stdio struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// terminal is true when stdin is a terminal: only then may a command
	// ask a question and read the answer.
	terminal bool
}

// command is one subcommand.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	run     func(ctx context.Context, sio stdio, args []string) error
}

func commands() []command {
	return []command{
		{"tenants", "", "list tenant streams: events, threads, last ordinal, bytes", runTenants},
		{"threads", "TENANT", "list a tenant's threads: events, last ordinal, last event time and type", runThreads},
		{"load", "TENANT THREAD", "print a thread's events after --since, at most --limit, or the --last N", runLoad},
		{"head", "TENANT THREAD", "print a thread's first and last live ordinals and its event count", runHead},
		{"tail", "TENANT [THREAD]", "follow a thread, or a whole tenant, live until Ctrl-C", runTail},
		{"append", "TENANT THREAD", "append one event (--type, --data JSON or --binary) and print its ordinal", runAppend},
		{"archive", "TENANT THREAD", "remove a thread's events up to --before from the hot log", runArchive},
		{"delete-thread", "TENANT THREAD", "delete a thread: its events, here and in the analytics copies", runDeleteThread},
		{"delete-tenant", "TENANT", "delete a tenant: its stream and every event, here and in the analytics copies", runDeleteTenant},
		{"tenant", "VERB [TENANT]", "provision tenants with an account each: init, create, limit, suspend, delete, creds (see 'tenant help')", runTenant},
		{"serve", "", "run a development NATS server with JetStream until Ctrl-C", runServe},
	}
}

// run is the whole command line: it dispatches to a subcommand.
func run(ctx context.Context, args []string, sio stdio) error {
	if len(args) == 0 {
		printCommands(sio.stderr)
		return errShown
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "" {
			// "jetsession help load" is "jetsession load --help".
			if c, ok := lookup(rest[0]); ok {
				return c.run(ctx, sio, []string{"--help"})
			}
			return usagef("unknown command %q (see 'jetsession help')", rest[0])
		}
		printCommands(sio.stdout)
		return nil
	}
	c, ok := lookup(name)
	if !ok {
		return usagef("unknown command %q (see 'jetsession help')", name)
	}
	return c.run(ctx, sio, rest)
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printCommands(w io.Writer) {
	fmt.Fprint(w, "jetsession: the operator's view of a jetsession session log on NATS JetStream.\n\n"+
		"Usage: jetsession <command> [arguments] [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %-16s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprint(w, "\nConnection flags (every command but serve): --nats URL, --creds FILE, --user, --password,\n"+
		"--nkey FILE, --inbox-prefix, --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --js-api-prefix,\n"+
		"--subject-prefix, --stream-prefix, --timeout, --json.\n"+
		"Environment: NATS_URL, NATS_CREDS, NATS_USER, NATS_PASSWORD, NATS_NKEY, NATS_INBOX_PREFIX,\n"+
		"NATS_CA, NATS_CERT, NATS_KEY.\n\n"+
		"Run 'jetsession <command> --help' for a command's flags.\n")
}
