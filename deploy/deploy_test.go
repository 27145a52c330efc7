// Package deploy holds deployment files (systemd unit, Prometheus alert
// rules, Grafana dashboard); its test checks that they name real metrics.
package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// exported lists the metric names nestbot registers, read from the string
// literals of its sources ("nestbot_..." passed as Name to prometheus).
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	lit := regexp.MustCompile(`"(nestbot_[a-z_]+)"`)
	for _, dir := range []string{"../bot", "../rooms", "../cmd/nestbot", "../internal/ops", "../internal/heal"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in the sources: %v", len(names), names)
	}
	return names
}

// checkExpr fails when expr names a nestbot_ series nestbot does not
// export (a histogram's _bucket, _sum and _count count as its name).
func checkExpr(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	found := false
	for _, m := range regexp.MustCompile(`nestbot_[a-z_]+`).FindAllString(expr, -1) {
		found = true
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(m, suf) && names[strings.TrimSuffix(m, suf)] {
				base = strings.TrimSuffix(m, suf)
			}
		}
		if !names[base] {
			t.Errorf("%s: %s is not a metric nestbot exports", where, m)
		}
	}
	if !found && !strings.Contains(expr, "up{") {
		t.Errorf("%s: names no nestbot series: %s", where, expr)
	}
	if strings.Count(expr, "(") != strings.Count(expr, ")") || strings.Count(expr, "{") != strings.Count(expr, "}") {
		t.Errorf("%s: unbalanced brackets: %s", where, expr)
	}
}

// TestAlertRules: the rules file is Prometheus's rule format (groups of
// rules, each an alert with an expression, a severity and a summary), and
// every expression names only exported series. (promtool check rules does
// more; it does not install from the Go module proxy, see docs/deploy.md.)
func TestAlertRules(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile("prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("prometheus-rules.yaml: %v", err)
	}
	seen := map[string]bool{}
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("rule %d of %s: missing or repeated alert name %q", n, g.Name, r.Alert)
			}
			seen[r.Alert] = true
			checkExpr(t, r.Alert, r.Expr, names)
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			if r.For != "" && !regexp.MustCompile(`^[0-9]+[smh]$`).MatchString(r.For) {
				t.Errorf("%s: for %q", r.Alert, r.For)
			}
		}
	}
	for _, want := range []string{"NestbotRelaysAllDisconnected", "NestbotClaimsRetried", "NestbotRequestsDropped",
		"NestbotUnavailableAnswers", "NestbotQueueBacklog", "NestbotLifecycleFailures"} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
	// An operator reads the list of alerts in docs/deploy.md ("Monitoring"):
	// each one is named there, so that the list cannot fall behind the file.
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for a := range seen {
		if !strings.Contains(string(doc), "`"+a+"`") {
			t.Errorf("docs/deploy.md does not name the alert %s", a)
		}
	}
}

// TestDashboard: the Grafana dashboard is JSON with panels whose queries
// name only exported series, and every exported series is on it.
func TestDashboard(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard %q (%s) with %d panels", d.Title, d.UID, len(d.Panels))
	}
	shown := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkExpr(t, p.Title, q.Expr, names)
			for _, m := range regexp.MustCompile(`nestbot_[a-z_]+`).FindAllString(q.Expr, -1) {
				shown[strings.TrimSuffix(m, "_bucket")] = true
			}
		}
	}
	for n := range names {
		if !shown[n] {
			t.Errorf("%s is on no panel", n)
		}
	}
}
