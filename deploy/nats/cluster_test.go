package nats_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetsession/jetsession/internal/testserver"
	"github.com/jetsession/jetsession/jetstream"
	"github.com/jetsession/jetsession/sessionlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

var nodeConfigs = []string{"cluster/n1.conf", "cluster/n2.conf", "cluster/n3.conf"}

// TestClusterConfigsFormACluster boots n1.conf, n2.conf and n3.conf with
// their routes moved to free loopback ports (each route keeps pointing at
// the node whose cluster port it named) and runs an R3 tenant on them.
func TestClusterConfigsFormACluster(t *testing.T) {
	opts := make([]*server.Options, len(nodeConfigs))
	ports := freePorts(t, len(nodeConfigs))
	moved := map[int]int{} // configured cluster port -> free port
	for i, path := range nodeConfigs {
		opts[i] = loadConfig(t, path)
		require.Equal(t, "jetsession", opts[i].Cluster.Name, path)
		require.NotZero(t, opts[i].Cluster.Port, path)
		moved[opts[i].Cluster.Port] = ports[i]
	}
	require.Len(t, moved, len(nodeConfigs), "cluster ports must differ")
	clientPorts, monitorPorts := map[int]bool{}, map[int]bool{}
	for i, path := range nodeConfigs {
		o, _ := server.ProcessConfigFile(path)
		clientPorts[o.Port], monitorPorts[o.HTTPPort] = true, true
		opts[i].Cluster.Host = "127.0.0.1"
		opts[i].Cluster.Port = moved[opts[i].Cluster.Port]
		routed := map[int]bool{}
		for _, r := range opts[i].Routes {
			require.Equal(t, "127.0.0.1", r.Hostname(), "%s: route %s", path, r)
			p, err := strconv.Atoi(r.Port())
			require.NoError(t, err)
			to, ok := moved[p]
			require.True(t, ok, "%s: route %s names no node's cluster port", path, r)
			routed[to] = true
			r.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(to))
		}
		for _, p := range ports {
			if p != opts[i].Cluster.Port {
				require.True(t, routed[p], "%s does not route to every other node", path)
			}
		}
	}
	require.Len(t, clientPorts, 3, "client ports must differ")
	require.Len(t, monitorPorts, 3, "monitoring ports must differ")

	// All nodes start at once: the JetStream meta group needs a quorum.
	srvs := startServers(t, opts...)
	testserver.Eventually(t, 30*time.Second, func() error {
		leaders := 0
		for _, s := range srvs {
			if s.NumRoutes() < 2 {
				return fmt.Errorf("%s has %d routes", s.Name(), s.NumRoutes())
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
			if !s.JetStreamIsCurrent() {
				return fmt.Errorf("%s is not current with the meta leader", s.Name())
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d meta leaders", leaders)
		}
		return nil
	})

	// The provisioner creates an R3 tenant through one node, the agent
	// writes through another and reads through the third.
	ctx := ctxFor(t, time.Minute)
	prov := connect(t, opts[0], srvs[0].ClientURL(), "provisioner", provisionerInbox)
	require.NoError(t, prov.log(t, jetstream.WithReplicas(3)).EnsureTenant(ctx, "acme"))
	writer := connect(t, opts[1], srvs[1].ClientURL(), "agent-acme", tenantInbox("acme"))
	reader := connect(t, opts[2], srvs[2].ClientURL(), "agent-acme", tenantInbox("acme"))
	key := sessionlog.ThreadKey{Tenant: "acme", Thread: "r3"}
	wl := writer.log(t, jetstream.WithStreamCreation(false))
	_, err := wl.Append(ctx, key, events("one"))
	require.NoError(t, err)
	last, err := wl.Append(ctx, key, events("two", "three"))
	require.NoError(t, err)
	recs, err := reader.log(t, jetstream.WithStreamCreation(false)).LoadSince(ctx, key, 0)
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, last, recs[2].Ordinal)
	tenants, err := connect(t, opts[0], srvs[0].ClientURL(), "bridge", bridgeInbox).log(t).Tenants(ctx)
	require.NoError(t, err)
	require.Len(t, tenants, 1)
	require.Equal(t, 3, tenants[0].Replicas)
	for _, c := range []*client{prov, writer, reader} {
		c.noViolations(t)
	}
}

// TestComposeCommandLines runs each docker-compose.yml service's command
// line through nats-server's own flag parsing, with /etc/nats mapped onto
// this folder: the container listens beyond loopback and routes to the
// other services by name, at the cluster port each of them listens on.
func TestComposeCommandLines(t *testing.T) {
	here, err := filepath.Abs(".")
	require.NoError(t, err)
	services := composeServices(t, "docker-compose.yml")
	require.Len(t, services, 3)
	// ConfigureOptions keeps the flags in a global that config reloads
	// merge in: restore it for the other tests.
	saved := server.FlagSnapshot
	t.Cleanup(func() { server.FlagSnapshot = saved })

	clusterPort := map[string]int{} // service -> cluster port it listens on
	routes := map[string][]*url.URL{}
	for name, svc := range services {
		require.Equal(t, "nats:2.15.2", svc.image, name)
		args := make([]string, len(svc.command))
		for i, a := range svc.command {
			args[i] = strings.Replace(a, "/etc/nats/", here+"/", 1)
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		o, err := server.ConfigureOptions(fs, args, func() {}, func() {}, func() {})
		require.NoError(t, err, name)
		require.Equal(t, name, o.ServerName, "service %s runs the config of its own name", name)
		require.Equal(t, "0.0.0.0", o.Host, name)
		require.Empty(t, o.HTTPHost, "%s: monitoring listens where clients do", name)
		require.Equal(t, "0.0.0.0", o.Cluster.Host, name)
		require.True(t, o.Cluster.NoAdvertise, name)
		// The relative store_dir lands on the service's data volume.
		require.Equal(t, "data/"+name, o.StoreDir, name)
		require.Equal(t, "/srv", svc.workingDir, name)
		require.Contains(t, svc.volumes, "./:/etc/nats:ro", name)
		require.Contains(t, svc.volumes, name+"-data:/srv/data", name)
		// Published ports are the ones the config listens on.
		require.Contains(t, svc.ports, fmt.Sprintf("%d:%d", o.Port, o.Port), name)
		require.Contains(t, svc.ports, fmt.Sprintf("%d:%d", o.HTTPPort, o.HTTPPort), name)
		clusterPort[name] = o.Cluster.Port
		routes[name] = o.Routes
	}
	for name, rs := range routes {
		seen := map[string]bool{}
		for _, r := range rs {
			port, ok := clusterPort[r.Hostname()]
			require.True(t, ok, "%s routes to %s, which is no service", name, r)
			require.Equal(t, strconv.Itoa(port), r.Port(), "%s routes to %s at the wrong port", name, r.Hostname())
			seen[r.Hostname()] = true
		}
		require.Len(t, seen, 3, "%s routes to every node", name)
	}
}

type composeService struct {
	image      string
	workingDir string
	command    []string
	volumes    []string
	ports      []string
}

// composeServices reads the small, regular subset of YAML the compose file
// uses: services two spaces in, keys four, list items six, and the command
// as a one-line JSON array.
func composeServices(t *testing.T, path string) map[string]*composeService {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		services = map[string]*composeService{}
		cur      *composeService
		list     *[]string
		inSvcs   bool
		service  = regexp.MustCompile(`^  ([a-z0-9]+):\s*$`)
		key      = regexp.MustCompile(`^    ([a-z_]+):\s*(.*)$`)
		item     = regexp.MustCompile(`^      - "?([^"]*)"?\s*$`)
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			inSvcs, cur, list = line == "services:", nil, nil
			continue
		}
		if !inSvcs {
			continue
		}
		if m := service.FindStringSubmatch(line); m != nil {
			cur = &composeService{}
			services[m[1]] = cur
			continue
		}
		if cur == nil {
			continue
		}
		if m := key.FindStringSubmatch(line); m != nil {
			list = nil
			switch m[1] {
			case "image":
				cur.image = m[2]
			case "working_dir":
				cur.workingDir = m[2]
			case "command":
				require.NoError(t, json.Unmarshal([]byte(m[2]), &cur.command), "command must be a one-line JSON array: %s", line)
			case "volumes":
				list = &cur.volumes
			case "ports":
				list = &cur.ports
			}
			continue
		}
		if m := item.FindStringSubmatch(line); m != nil && list != nil {
			*list = append(*list, m[1])
		}
	}
	require.NoError(t, sc.Err())
	if len(services) == 0 {
		require.NoError(t, errors.New("no services found"))
	}
	return services
}

// The max_ha_assets line the node configs carry commented out parses once
// uncommented (under jetstream, outside its limits block, it is refused).
func TestClusterConfigsHAAssetsLine(t *testing.T) {
	dir := t.TempDir()
	accounts, err := os.ReadFile("accounts.conf")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "accounts.conf"), accounts, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "cluster"), 0o755))
	for _, path := range nodeConfigs {
		conf, err := os.ReadFile(path)
		require.NoError(t, err)
		const line = "  # limits { max_ha_assets: 2000 }\n"
		require.Contains(t, string(conf), line, path)
		on := strings.Replace(string(conf), line, strings.Replace(line, "# ", "", 1), 1)
		tmp := filepath.Join(dir, path)
		require.NoError(t, os.WriteFile(tmp, []byte(on), 0o600))
		o, err := server.ProcessConfigFile(tmp)
		require.NoError(t, err, path)
		require.Equal(t, 2000, o.JetStreamLimits.MaxHAAssets, path)
	}
}
