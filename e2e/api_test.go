//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The operator's API token, made as docs/deploy.md shows: a random secret
// in a file of its own, and its SHA-256 in the tokens file every server
// reads (api.tokens_file).
var suiteTokens struct {
	once              sync.Once
	secret, tokensYML string
	err               error
}

// Shell commands of the guide that make a token: the secret, and the
// hash that goes into the tokens file.
const (
	tokenSecretCmd = `openssl rand -hex 32 | tr -d '\n' > `
	tokenHashCmd   = `sha256sum `
)

// apiTokens returns the token file meridian ctl reads and the tokens
// file the servers read, making them on first use.
func apiTokens(t testing.TB) (secretFile, tokensFile string) {
	t.Helper()
	suiteTokens.once.Do(func() {
		dir := filepath.Join(runDir, "operator")
		if suiteTokens.err = os.MkdirAll(dir, 0o700); suiteTokens.err != nil {
			return
		}
		secret := filepath.Join(dir, "token")
		if out, err := exec.Command("sh", "-c", tokenSecretCmd+secret).CombinedOutput(); err != nil {
			suiteTokens.err = fmt.Errorf("%s%s: %v\n%s", tokenSecretCmd, secret, err, out)
			return
		}
		out, err := exec.Command("sh", "-c", tokenHashCmd+secret).Output()
		if err != nil {
			suiteTokens.err = fmt.Errorf("%s%s: %v", tokenHashCmd, secret, err)
			return
		}
		sum, _, _ := strings.Cut(string(out), " ")
		tokens := filepath.Join(runDir, "tokens.yaml")
		body := "tokens:\n  - name: e2e-operator\n    role: admin\n    sha256: " + sum + "\n"
		if suiteTokens.err = os.WriteFile(tokens, []byte(body), 0o600); suiteTokens.err != nil {
			return
		}
		suiteTokens.secret, suiteTokens.tokensYML = secret, tokens
	})
	if suiteTokens.err != nil {
		t.Fatal(suiteTokens.err)
	}
	return suiteTokens.secret, suiteTokens.tokensYML
}

// ctlCommands are the meridian ctl commands the suite runs, and
// ctlFlags the flags it gives them: docs/deploy.md shows these and no
// others (TestDeployGuide).
var (
	ctlCommands = []string{"weights set"}
	ctlFlags    = []string{"--server", "--cacert", "--token-file"}
)

// ctl runs `meridian ctl` against s's API with the operator's token, as
// docs/deploy.md shows, and returns its output. A command the guide does
// not show fails the test.
func ctl(t testing.TB, s *nameServer, args ...string) (string, error) {
	t.Helper()
	if len(args) < 2 || !slices.Contains(ctlCommands, args[0]+" "+args[1]) {
		t.Fatalf("meridian ctl %v: not among the commands the guide shows (ctlCommands)", args)
	}
	secret, _ := apiTokens(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	full := append([]string{"ctl", "--server", s.httpBase(), "--cacert", apiPKI.ca, "--token-file", secret}, args...)
	out, err := exec.CommandContext(ctx, binary, full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("meridian %s: %w: %s", strings.Join(full, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// weightsOnly is `weights set` sending all of service's traffic to region.
func weightsOnly(service, region string) []string {
	args := []string{"weights", "set", service}
	for _, r := range []string{"eu-west", "us-east", "ap-northeast"} {
		w := 0
		if r == region {
			w = 100
		}
		args = append(args, fmt.Sprintf("%s=%d", r, w))
	}
	return args
}

// ctlWeights moves service to region with meridian ctl through s,
// failing the test if the write is refused.
func ctlWeights(t testing.TB, s *nameServer, service, region string) {
	t.Helper()
	if _, err := ctl(t, s, weightsOnly(service, region)...); err != nil {
		t.Fatal(err)
	}
}

// problemDoc is the part of an RFC 9457 problem document the suite reads.
type problemDoc struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	RetryAfter int    `json:"retry_after"`
}

// apiResult is the answer to one API request, and how long it took.
type apiResult struct {
	code        int
	contentType string
	retryAfter  string
	body        []byte
	took        time.Duration
	err         error
}

// patchWeights asks s's API to send all of service's traffic to region
// (the request meridian ctl weights set makes), waiting at most limit.
// It may run outside the test's goroutine: every failure is in the result.
func patchWeights(t testing.TB, s *nameServer, service, region string, limit time.Duration) apiResult {
	secret, _ := apiTokens(t)
	tok, err := os.ReadFile(secret)
	if err != nil {
		return apiResult{err: err}
	}
	w := map[string]uint32{"eu-west": 0, "us-east": 0, "ap-northeast": 0}
	w[region] = 100
	body, _ := json.Marshal(map[string]any{"weights": w})
	req, err := http.NewRequest(http.MethodPatch, s.httpBase()+"/v1/services/"+service+"/weights", bytes.NewReader(body))
	if err != nil {
		return apiResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := (&http.Client{Timeout: limit, Transport: httpClient.Transport}).Do(req)
	r := apiResult{took: time.Since(start), err: err}
	if err != nil {
		return r
	}
	defer resp.Body.Close()
	r.code, r.contentType, r.retryAfter = resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After")
	r.body, r.err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r.took = time.Since(start)
	return r
}

// checkUnavailable checks that r is the API's answer when etcd cannot
// take a write: 503, a problem document, and Retry-After (also in the
// document).
func checkUnavailable(r apiResult) error {
	switch {
	case r.err != nil:
		return fmt.Errorf("no answer: %v", r.err)
	case r.code != http.StatusServiceUnavailable:
		return fmt.Errorf("status %d, want 503: %s", r.code, r.body)
	case r.contentType != "application/problem+json":
		return fmt.Errorf("Content-Type %q, want application/problem+json", r.contentType)
	}
	secs, err := strconv.Atoi(r.retryAfter)
	if err != nil || secs <= 0 {
		return fmt.Errorf("Retry-After %q, want a number of seconds", r.retryAfter)
	}
	var p problemDoc
	if err := json.Unmarshal(r.body, &p); err != nil {
		return fmt.Errorf("problem document: %v: %s", err, r.body)
	}
	if p.Status != http.StatusServiceUnavailable || p.Title == "" || p.Detail == "" || p.RetryAfter != secs {
		return fmt.Errorf("problem document %+v, want status 503, a title, a detail and retry_after %d", p, secs)
	}
	return nil
}

// writeTimeout is api.write_timeout of the guide's configuration, which
// the servers run.
func writeTimeout(t testing.TB) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "meridian.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		API struct {
			WriteTimeout string `yaml:"write_timeout"`
		} `yaml:"api"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	s := cfg.API.WriteTimeout
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("deploy/meridian.yaml api.write_timeout %q: %v", s, err)
	}
	return d
}

// percentile is the nearest-rank percentile p (0–1) of sorted ds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// latencies formats p50, p99 and the largest of ds.
func latencies(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", ms(percentile(s, 0.5)), ms(percentile(s, 0.99)), ms(s[len(s)-1]), len(s))
}

// propagationGoal is the goal for a weights change to reach every server.
const propagationGoal = 100 * time.Millisecond

// scenarioWeights: `meridian ctl weights set` through ns1's API moves
// api's traffic, and both servers answer with the new region soon after:
// over a series of changes, the time from ctl returning to each server
// answering (polled every millisecond), against the propagation goal.
func scenarioWeights(t *testing.T, d *deployment) {
	const sc = "2 weights with meridian ctl"
	const api = "api.gslb.example"
	const changes = 30
	ns1 := d.ns[0]
	order := []string{"eu-west", "us-east", "ap-northeast"}
	// A first change settles api on the last region of the order: the
	// timed ones start with the first, so each moves it to another region.
	settle := order[len(order)-1]
	ctlWeights(t, ns1, api, settle)
	waitAnswer(t, d.ns, api, regionV4[settle], time.Now())

	perServer := make([][]time.Duration, len(d.ns))
	var pooled, fromStart, ctlTook []time.Duration
	for i := range changes {
		region := order[i%len(order)]
		start := time.Now()
		ctlWeights(t, ns1, api, region)
		returned := time.Now()
		took := waitAnswer(t, d.ns, api, regionV4[region], returned)
		for j, tk := range took {
			perServer[j] = append(perServer[j], tk)
		}
		pooled = append(pooled, took...)
		fromStart = append(fromStart, max(took[0], took[1])+returned.Sub(start))
		ctlTook = append(ctlTook, returned.Sub(start))
	}
	for j, s := range d.ns {
		report(t, sc, s.name+": ctl returned → new region answered", "%s", latencies(perServer[j]))
	}
	report(t, sc, "both servers: ctl returned → new region answered", "%s", latencies(pooled))
	slices.Sort(pooled)
	p99 := percentile(pooled, 0.99)
	report(t, sc, "goal: p99 < 100 ms from ctl returning", "%s (p99 %s)", bounded(t, "propagation p99", propagationGoal, p99), ms(p99))
	report(t, sc, "meridian ctl weights set itself (process, API, etcd commit)", "%s", latencies(ctlTook))
	report(t, sc, "ctl started → both servers answer", "%s", latencies(fromStart))
}
