// Package pgtest runs throwaway PostgreSQL clusters for tests: initdb into a
// temporary folder, pg_ctl start on 127.0.0.1 and a free port, and
// pg_ctl stop plus removal of the folder at the end. Durability is switched
// off (fsync, synchronous_commit, full_page_writes) because the data never
// outlives the test.
//
// When PostgreSQL is not installed, tests that need it are skipped, except
// when the CI environment variable is set, where they fail.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// osUser is the account PostgreSQL runs as when the tests run as root,
// since the server refuses to start as root.
const osUser = "postgres"

// readyTimeout bounds the wait for a started server to accept connections.
const readyTimeout = 30 * time.Second

// errMissing marks an installation problem, which skips the test outside CI.
var errMissing = errors.New("pgtest: PostgreSQL not found")

// Start runs a fresh PostgreSQL cluster for the test, stops it and removes
// its files when the test ends, and returns a DSN for the superuser
// "postgres" (no password) on its "postgres" database.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(c.stop)
	return c.dsn("postgres")
}

var shared struct {
	once sync.Once
	mu   sync.Mutex
	c    *cluster
	err  error
	n    atomic.Int64
}

// StartShared returns a DSN for a new, empty database on a cluster shared
// by the whole test binary, which is much faster than a cluster per test.
// The cluster starts on the first call and runs until StopShared; a package
// using it should stop it from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pgtest.StopShared()
//		os.Exit(code)
//	}
//
// Without StopShared the server outlives the test binary.
func StartShared(t testing.TB) (dsn string) {
	t.Helper()
	shared.once.Do(func() {
		c, err := startCluster()
		shared.mu.Lock()
		shared.c, shared.err = c, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	c, err := shared.c, shared.err
	shared.mu.Unlock()
	if err != nil {
		fail(t, err)
	}
	if c == nil {
		t.Fatal("pgtest: the shared cluster was stopped")
	}
	name := fmt.Sprintf("test_%d", shared.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dsn("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connecting to the shared cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	return c.dsn(name)
}

// StopShared stops the cluster of StartShared, if it was started, and
// removes its files. Later calls of StartShared fail the test.
func StopShared() {
	shared.once.Do(func() {}) // a StartShared after this must not start one
	shared.mu.Lock()
	c := shared.c
	shared.c = nil
	shared.mu.Unlock()
	if c != nil {
		c.stop()
	}
}

// Server is a throwaway cluster run by a program that is not a test (a
// benchmark command), which handles a missing installation itself.
type Server struct{ c *cluster }

// Run starts a fresh cluster like Start, outside a test. An error for which
// Missing reports true means PostgreSQL is not installed here. The caller
// must call Stop, which removes the cluster's files.
func Run() (*Server, error) {
	c, err := startCluster()
	if err != nil {
		return nil, err
	}
	return &Server{c: c}, nil
}

// DSN is the superuser's DSN on the "postgres" database, as Start returns.
func (s *Server) DSN() string { return s.c.dsn("postgres") }

// Stop stops the server and removes its files.
func (s *Server) Stop() { s.c.stop() }

// Missing reports whether err (from Run) means that PostgreSQL is not
// installed: initdb and pg_ctl were not found, or running as root there is
// no OS user to run them as.
func Missing(err error) bool { return errors.Is(err, errMissing) }

func fail(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, errMissing) {
		t.Fatal(err)
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("PostgreSQL is required in CI: install the Debian postgresql package (%v)", err)
	}
	t.Skipf("%v; install it to run this test (apt-get install postgresql)", err)
}

type cluster struct {
	bin  string     // folder of initdb and pg_ctl
	as   *user.User // nil when not running as root
	dir  string     // temporary folder: data, socket and log
	port int
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }
func (c *cluster) log() string  { return filepath.Join(c.dir, "postgres.log") }

func (c *cluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func startCluster() (*cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin}
	if os.Geteuid() == 0 {
		if c.as, err = user.Lookup(osUser); err != nil {
			return nil, fmt.Errorf("%w: running as root needs the OS user %q to run the server: %v", errMissing, osUser, err)
		}
	}
	// Not t.TempDir: the folder must belong to the server's OS user, and
	// the shared cluster outlives any one test.
	if c.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := c.chown(c.dir); err != nil {
		c.remove()
		return nil, err
	}
	if out, err := c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		c.remove()
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	// A port picked by listening can be taken again before the server
	// binds it, so try a few.
	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			c.remove()
			return nil, fmt.Errorf("pgtest: finding a free port: %w", err)
		}
		err = c.start()
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		c.remove()
		return nil, err
	}
	if err := c.waitReady(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) start() error {
	opts := strings.Join([]string{
		"-c listen_addresses=127.0.0.1",
		"-p " + strconv.Itoa(c.port),
		"-k " + c.dir,
		"-c fsync=off",
		"-c synchronous_commit=off",
		"-c full_page_writes=off",
	}, " ")
	// The log file keeps the server from holding our output pipe open.
	out, err := c.run("pg_ctl", "start", "-w", "-t", "60", "-D", c.data(), "-l", c.log(), "-o", opts)
	if err != nil {
		logText, _ := os.ReadFile(c.log())
		return fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, logText)
	}
	return nil
}

func (c *cluster) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.dsn("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			logText, _ := os.ReadFile(c.log())
			return fmt.Errorf("pgtest: server not accepting connections after %v: %v\n%s", readyTimeout, err, logText)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) stop() {
	// Immediate: the data is thrown away, so skip the shutdown checkpoint.
	c.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", c.data())
	c.remove()
}

func (c *cluster) remove() { os.RemoveAll(c.dir) }

// run runs one of the server programs, as the server's OS user when we
// are root.
func (c *cluster) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.as == nil {
		cmd = exec.Command(path, args...)
	} else if runuser, err := exec.LookPath("runuser"); err == nil {
		cmd = exec.Command(runuser, append([]string{"-u", c.as.Username, "--", path}, args...)...)
	} else {
		quoted := make([]string, 0, len(args)+1)
		for _, a := range append([]string{path}, args...) {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		cmd = exec.Command("su", c.as.Username, "-s", "/bin/sh", "-c", strings.Join(quoted, " "))
	}
	// The server's user may not be allowed into the caller's working
	// folder, which initdb and pg_ctl fail or warn on.
	cmd.Dir = c.dir
	cmd.WaitDelay = 10 * time.Second
	return cmd.CombinedOutput()
}

func (c *cluster) chown(path string) error {
	if c.as == nil {
		return nil
	}
	uid, err1 := strconv.Atoi(c.as.Uid)
	gid, err2 := strconv.Atoi(c.as.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("pgtest: user %s: %w", c.as.Username, err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// findBin returns the folder holding initdb and pg_ctl: from PATH, else the
// newest Debian-style installation, whose programs are not on PATH.
func findBin() (string, error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			// Symbolic links resolve to the versioned folder, keeping
			// initdb and pg_ctl of one version together.
			if real, err := filepath.EvalSymlinks(initdb); err == nil {
				initdb = real
			}
			dir := filepath.Dir(initdb)
			if isExec(filepath.Join(dir, "pg_ctl")) {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: initdb and pg_ctl are neither on PATH nor in /usr/lib/postgresql/*/bin", errMissing)
}

// version reads the major version from /usr/lib/postgresql/<v>/bin, so
// that 10 sorts after 9.
func version(bin string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(bin)), 64)
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
