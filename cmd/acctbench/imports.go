package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jetsession/jetsession/internal/acctest"
	"github.com/jetsession/jetsession/provision"
	"github.com/jetsession/jetsession/subjects"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// runImports measures the alternative to a connection per tenant: every
// tenant account exports the read side of its JetStream API, its tails'
// delivery subjects and flow control, and one bridge account imports them
// under a per-tenant prefix (jetstream.WithAPIPrefix). Each import lives in
// the bridge account's JWT, which grows with every tenant and is pushed
// whole each time one is added.
func runImports(ctx context.Context, c config, w io.Writer) error {
	fmt.Fprintln(w, "# imports: one bridge account importing each tenant's read API (7 imports a tenant)")
	fmt.Fprintln(w, "| tenants | bridge account JWT | per tenant | push of the JWT (p50 of the last 10 pushes) | server heap per tenant | a STREAM.INFO through the import |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	for _, n := range c.Tenants {
		if err := importsRun(ctx, n, w); err != nil {
			return fmt.Errorf("%d tenants: %w", n, err)
		}
	}
	return nil
}

// readExports are what a tenant account would export to the bridge.
func readExports(s subjects.Scheme, tenant string) []*jwt.Export {
	stream := s.Stream(tenant)
	svc := func(subject string, rt jwt.ResponseType) *jwt.Export {
		return &jwt.Export{Subject: jwt.Subject(subject), Type: jwt.Service, ResponseType: rt}
	}
	return []*jwt.Export{
		svc("$JS.API.STREAM.INFO."+stream, jwt.ResponseTypeSingleton),
		svc("$JS.API.DIRECT.GET."+stream, jwt.ResponseTypeStream),
		svc("$JS.API.STREAM.MSG.GET."+stream, jwt.ResponseTypeSingleton),
		svc("$JS.API.CONSUMER.CREATE."+stream+".*."+s.TenantFilter(tenant), jwt.ResponseTypeSingleton),
		svc("$JS.API.CONSUMER.DELETE."+stream+".*", jwt.ResponseTypeSingleton),
		svc("$JS.FC."+stream+".>", jwt.ResponseTypeSingleton),
		{Subject: jwt.Subject("deliver." + subjects.EncodeTenant(tenant) + ".>"), Type: jwt.Stream},
	}
}

func importsRun(ctx context.Context, n int, w io.Writer) error {
	env, p, stop, err := accountServer(n, scaleStorage)
	if err != nil {
		return err
	}
	defer stop()
	keys, err := provision.LoadKeys(env.Dir)
	if err != nil {
		return err
	}
	sys, err := nats.Connect(env.URL, nats.UserCredentials(filepath.Join(env.Dir, provision.CredsDir, provision.ProvisionerSystemCreds)),
		nats.CustomInboxPrefix(provision.ProvisionerInbox))
	if err != nil {
		return err
	}
	defer sys.Close()
	push := func(ac *jwt.AccountClaims) (time.Duration, int, error) {
		token, err := ac.Encode(keys.OperatorSigning)
		if err != nil {
			return 0, 0, err
		}
		start := time.Now()
		msg, err := sys.Request("$SYS.REQ.CLAIMS.UPDATE", []byte(token), 30*time.Second)
		if err != nil {
			return 0, len(token), err
		}
		var resp struct {
			Error *struct{ Description string } `json:"error"`
		}
		if json.Unmarshal(msg.Data, &resp) == nil && resp.Error != nil {
			return 0, len(token), fmt.Errorf("push refused: %s", resp.Error.Description)
		}
		return time.Since(start), len(token), nil
	}
	scheme := subjects.Default()
	var accounts []string
	for i := range n {
		tenant := fmt.Sprintf("tenant-%05d", i)
		rec, err := p.Create(ctx, tenant, benchLimits(scaleStorage))
		if err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(env.JWTDir, rec.Account+".jwt"))
		if err != nil {
			return err
		}
		ac, err := jwt.DecodeAccountClaims(string(data))
		if err != nil {
			return err
		}
		ac.Limits.Exports, ac.Limits.WildcardExports = jwt.NoLimit, true
		ac.Exports = append(ac.Exports, readExports(scheme, tenant)...)
		if _, _, err := push(ac); err != nil {
			return err
		}
		accounts = append(accounts, rec.Account)
	}
	// The bridge account, and a user of it.
	bkp, _ := nkeys.CreateAccount()
	bpub, _ := bkp.PublicKey()
	signer, _ := nkeys.CreateAccount()
	spub, _ := signer.PublicKey()
	bridgeClaims := jwt.NewAccountClaims(bpub)
	bridgeClaims.Name = "BRIDGE"
	bridgeClaims.SigningKeys.Add(spub)
	if _, _, err := push(bridgeClaims); err != nil {
		return err
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.IssuerAccount = bpub
	ujwt, _ := uc.Encode(signer)
	useed, _ := ukp.Seed()
	bnc, err := nats.Connect(env.URL, nats.UserJWTAndSeed(ujwt, string(useed)))
	if err != nil {
		return err
	}
	defer bnc.Close()
	before := measure()
	var pushes []time.Duration
	size := 0
	for i, acc := range accounts {
		tenant := fmt.Sprintf("tenant-%05d", i)
		prefix := "JS." + subjects.EncodeTenant(tenant) + ".API"
		for _, e := range readExports(scheme, tenant) {
			local := string(e.Subject)
			if e.Type == jwt.Service && len(local) > len("$JS.API") && local[:len("$JS.API")] == "$JS.API" {
				local = prefix + local[len("$JS.API"):]
			}
			bridgeClaims.Imports.Add(&jwt.Import{Subject: e.Subject, Account: acc, LocalSubject: jwt.RenamingSubject(local), Type: e.Type})
		}
		d, sz, err := push(bridgeClaims)
		if err != nil {
			fmt.Fprintf(w, "| %d | %.1f KiB | %.0f B | refused at tenant %d: %v | | |\n", n, float64(sz)/1024, float64(sz)/float64(i+1), i+1, err)
			return nil
		}
		pushes = append(pushes, d)
		size = sz
	}
	after := measure()
	last := pushes[max(0, len(pushes)-10):]
	p50, _ := quantiles(last)
	heap, _, _ := perTenant(before, after, n)
	// One request through the last tenant's import.
	tenant := fmt.Sprintf("tenant-%05d", n-1)
	start := time.Now()
	msg, err := bnc.Request("JS."+subjects.EncodeTenant(tenant)+".API.STREAM.INFO."+scheme.Stream(tenant), nil, 10*time.Second)
	through := time.Since(start)
	result := fmt.Sprintf("%s answered", us(through))
	if err != nil {
		result = "failed: " + err.Error()
	} else if len(msg.Data) == 0 || msg.Data[0] != '{' {
		result = fmt.Sprintf("unexpected answer %q", msg.Data)
	}
	fmt.Fprintf(w, "| %d | %.1f KiB | %.0f B | %s | %.1f KiB | %s |\n", n, float64(size)/1024, float64(size)/float64(n), ms(p50), heap, result)
	_ = acctest.ConfigPath
	return nil
}
