// Package compose checks docker-compose.yml, which no development machine can
// run (they have no Docker engine), against the Compose specification and
// against the local stack it mirrors (scripts/stack.sh). The file is
// loaded with compose-go, the loader Docker Compose v2 itself uses, with schema
// validation, interpolation and the consistency checks on.
//
// The topology has two dev chains: stack.sh's nodes geth (ETH) and geth-bsc
// (BSC), compose's services of the same names, each with its own chain id
// (deploy/geth/dev-genesis.sh makes both genesis blocks). A third chain adds
// a row to composeFor and to publishedPorts and a service to wantServices.
package compose

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/sirupsen/logrus"
)

const (
	root        = "../.."
	composeFile = "docker-compose.yml"
	stackScript = "scripts/stack.sh"
	searchAttrs = "deploy/search-attributes.txt"
)

// composeEnv is the whole environment the file is interpolated with: the
// tests do not read the caller's, so a ${VAR} the file needs must be given a
// value here (today it needs none). A variable missing from it makes the
// loader warn, which fails the test.
var composeEnv = map[string]string{}

// wantServices is every service docker-compose.yml must define, and no other.
var wantServices = []string{
	"mysql", "rabbitmq", "temporal", "temporal-admin-tools", "temporal-ui",
	"geth", "geth-bsc", "kms", "signer", "devstack", "worker", "starter", "prometheus", "grafana",
	"btcd", "btcd-miner",
}

// composeFor maps each component scripts/stack.sh starts (the names its
// status() reports) to the compose services that play its part. The Temporal
// dev server serves the Web UI and registers the search attributes itself;
// compose needs a UI container and a one-shot registration job for that.
var composeFor = map[string][]string{
	"mariadb":    {"mysql"},
	"rabbitmq":   {"rabbitmq"},
	"temporal":   {"temporal", "temporal-ui", "temporal-admin-tools"},
	"geth":       {"geth"},
	"geth-bsc":   {"geth-bsc"},
	"kms":        {"kms"},
	"btcd":       {"btcd"},
	"btcd-miner": {"btcd-miner"},
	"prometheus": {"prometheus"},
	"signer":     {"signer"},
	"worker":     {"worker"},
	"starter":    {"starter"},
}

// composeOnly are the services with no process of their own in stack.sh:
// `payflowctl devstack` is a step of `stack.sh up` there, and Grafana is not
// part of the local stack.
var composeOnly = []string{"devstack", "grafana"}

// publishedPort is a port the local stack listens on (stack.sh's variable and
// its default) and where compose publishes it: the service and the port inside
// its container. listens names where the container is told to listen on, or
// scraped at, target: each is a service whose command, entrypoint or
// environment must contain the text.
type publishedPort struct {
	stackVar string
	service  string
	target   uint32
	listens  map[string]string
}

var publishedPorts = []publishedPort{
	{stackVar: "MYSQL_PORT", service: "mysql", target: 3306},
	{stackVar: "AMQP_PORT", service: "rabbitmq", target: 5672},
	{stackVar: "TEMPORAL_PORT", service: "temporal", target: 7233},
	{stackVar: "TEMPORAL_METRICS_PORT", service: "temporal", target: 8000, listens: map[string]string{
		"temporal": "0.0.0.0:8000", "prometheus": "temporal:8000"}},
	{stackVar: "TEMPORAL_UI_PORT", service: "temporal-ui", target: 8080},
	{stackVar: "ETH_HTTP_PORT", service: "geth", target: 8545, listens: map[string]string{
		"geth": "--http.port 8545", "devstack": "http://geth:8545"}},
	{stackVar: "ETH_WS_PORT", service: "geth", target: 8546, listens: map[string]string{
		"geth": "--ws.port 8546", "devstack": "ws://geth:8546"}},
	{stackVar: "BSC_HTTP_PORT", service: "geth-bsc", target: 8545, listens: map[string]string{
		"geth-bsc": "--http.port 8545", "devstack": "http://geth-bsc:8545"}},
	{stackVar: "BSC_WS_PORT", service: "geth-bsc", target: 8546, listens: map[string]string{
		"geth-bsc": "--ws.port 8546", "devstack": "ws://geth-bsc:8546"}},
	{stackVar: "HTTP_PORT", service: "worker", target: 8380, listens: map[string]string{
		"devstack": "-http-addr 0.0.0.0:8380", "prometheus": "worker:8380"}},
	{stackVar: "STARTER_METRICS_PORT", service: "starter", target: 8381, listens: map[string]string{
		"devstack": "-metrics-addr 0.0.0.0:8381", "prometheus": "starter:8381"}},
	{stackVar: "PROMETHEUS_PORT", service: "prometheus", target: 9090, listens: map[string]string{
		"prometheus": "--web.listen-address=0.0.0.0:9090"}},
	{stackVar: "KMS_PORT", service: "kms", target: 8390, listens: map[string]string{
		"kms": "PORT=8390", "devstack": "-kms-endpoint http://kms:8390", "signer": "PAYFLOW_KMS_ENDPOINT=http://kms:8390"}},
	{stackVar: "SIGNER_METRICS_PORT", service: "signer", target: 8384, listens: map[string]string{
		"signer": "PAYFLOW_SIGNER_METRICS_ADDR=0.0.0.0:8384", "prometheus": "signer:8384"}},
	{stackVar: "BTC_RPC_PORT", service: "btcd", target: 18334, listens: map[string]string{
		"btcd": "--rpclisten=0.0.0.0:18334", "devstack": "-btc-rpc-url http://btcd:18334", "btcd-miner": "-s btcd:18334"}},
}

// unpublishedPorts are stack.sh ports compose deliberately does not publish.
var unpublishedPorts = map[string]string{
	"AMQP_DIST_PORT": "Erlang distribution, used only inside the RabbitMQ container",
	"POSTGRES_PORT":  "TEMPORAL=cluster's PostgreSQL; compose's Temporal keeps its database to itself",
}

// composeOnlyPorts are ports compose publishes with no counterpart in stack.sh.
var composeOnlyPorts = map[string][]uint32{
	"rabbitmq": {15672}, // the management UI (stack.sh enables no plugins)
	"grafana":  {3000},
}

// gethLocalOnly are stack.sh's geth flags compose need not pass: fixed ports
// of 0 keep a shared host's p2p and engine ports free, which a container's
// own network does anyway, and verbosity is only log volume.
var gethLocalOnly = []string{"--port", "--authrpc.port", "--verbosity"}

// gethDiffering are geth flags both pass with values that differ on purpose:
// the data directory, loopback versus the compose network, and the ports
// (stack.sh's differ per node; publishedPorts checks where each listens).
var gethDiffering = []string{"--datadir", "--http.addr", "--ws.addr", "--http.port", "--ws.port"}

// devGenesis is the script both make each dev chain's genesis with.
const devGenesis = "deploy/geth/dev-genesis.sh"

// TestComposeFile loads docker-compose.yml with validation on and checks it
// against the local stack.
func TestComposeFile(t *testing.T) {
	st := readStack(t)
	p, warnings, err := load(t, nil)
	if err != nil {
		t.Fatalf("compose-go rejects %s: %v", composeFile, err)
	}
	for _, w := range warnings {
		t.Errorf("compose-go warns about %s: %s", composeFile, w)
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, msg := range c.fn(t, st, p) {
				t.Error(msg)
			}
		})
	}
}

// TestChecksCatchBrokenFiles: each check fails on a copy of docker-compose.yml
// broken the way it guards against, or on a copy of scripts/stack.sh that
// grows what compose lacks, so none of them passes vacuously.
func TestChecksCatchBrokenFiles(t *testing.T) {
	origCompose, origStack := readFile(t, composeFile), readFile(t, stackScript)
	type breakage struct{ name, old, new, want string }
	composeBreakages := []breakage{
		{"unknown key", "    restart: \"no\"\n", "    restart: \"no\"\n    restrat: always\n", "services.temporal-admin-tools.restrat"},
		{"unset variable", "name: payflow\n", "name: payflow${PAYFLOW_SUFFIX}\n", `"PAYFLOW_SUFFIX" variable is not set`},
		{"unpinned image", "image: mysql:8.0\n", "image: mysql\n", "mysql: image \"mysql\" is not pinned"},
		{"latest image", "image: grafana/grafana:11.3.1\n", "image: grafana/grafana:latest\n", "grafana: image \"grafana/grafana:latest\" is not pinned"},
		{"removed service", "  grafana:\n", "  x-grafana:\n", "services: compose lacks grafana"},
		{"moved port", `"127.0.0.1:3316:3306"`, `"127.0.0.1:3306:3306"`, "MYSQL_PORT=3316"},
		{"worker listens elsewhere", "-http-addr 0.0.0.0:8380", "-http-addr 0.0.0.0:8080", "-http-addr 0.0.0.0:8380"},
		{"search attributes from elsewhere", "./deploy/search-attributes.txt:", "./deploy/prometheus/alerts.yml:", "no service mounts"},
		{"search attribute types dropped", `--type "$$type"`, `--type Text`, "registers PayflowAddress Text"},
		{"devstack flag dropped", "-confirmations 3", "", "devstack: lacks stack.sh's devstack flag -confirmations"},
		{"geth flag dropped", "--txpool.accountqueue 20000\n    ports: [\"127.0.0.1:8545:8545\"", "\n    ports: [\"127.0.0.1:8545:8545\"",
			"geth: lacks stack.sh's geth flag --txpool.accountqueue"},
		{"BSC geth flag dropped", "--txpool.accountqueue 20000\n    ports: [\"127.0.0.1:8547:8545\"", "\n    ports: [\"127.0.0.1:8547:8545\"",
			"geth-bsc: lacks stack.sh's geth flag --txpool.accountqueue"},
		{"BSC command broken", "|| { /etc/payflow/dev-genesis.sh geth 1397 ", "|| /etc/payflow/dev-genesis.sh geth 1397 ",
			"geth-bsc: its /bin/sh command does not parse"},
		{"BSC chain id", "dev-genesis.sh geth 1397 ", "dev-genesis.sh geth 1337 ", "geth-bsc: makes its genesis with chain id 1337; stack.sh's BSC_CHAIN_ID is 1397"},
		{"BSC genesis script not mounted", "[geth-bsc:/data, \"./deploy/geth/dev-genesis.sh:/etc/payflow/dev-genesis.sh:ro\"]", "[geth-bsc:/data]",
			"geth-bsc: does not mount deploy/geth/dev-genesis.sh"},
		{"devstack lacks a chain", " -chain BSC,BNB,http://geth-bsc:8545,ws://geth-bsc:8546", "", "devstack: lacks stack.sh's chain BSC"},
		{"devstack's chain on the wrong node", "-chain BSC,BNB,http://geth-bsc:8545", "-chain BSC,BNB,http://geth:8545",
			"devstack: -chain BSC,BNB,http://geth:8545,ws://geth-bsc:8546; want BSC,BNB,http://geth-bsc:8545,ws://geth-bsc:8546"},
	}
	stackBreakages := []breakage{
		{"stack.sh runs a second chain", "for n in mariadb rabbitmq temporal geth ", "for n in mariadb rabbitmq temporal geth geth2 ",
			"stack.sh starts geth2 and composeFor names no compose service"},
		{"stack.sh listens on a new port", "\nBLOCK_PERIOD=", "\nETH2_HTTP_PORT=${PAYFLOW_ETH2_HTTP_PORT:-8645}\nBLOCK_PERIOD=",
			"stack.sh's ETH2_HTTP_PORT is neither"},
		{"stack.sh moves a port", "MYSQL_PORT=${PAYFLOW_MYSQL_PORT:-3316}", "MYSQL_PORT=${PAYFLOW_MYSQL_PORT:-3317}", "MYSQL_PORT=3317"},
		{"stack.sh passes devstack a new flag", `-dir "$DEV" \`, `-dir "$DEV" -chains 2 \`, "devstack: lacks stack.sh's devstack flag -chains"},
		{"stack.sh changes a geth value", `--maxpeers 0 --port 0`, `--maxpeers 1 --port 0`, `geth: --maxpeers "0", stack.sh "1"`},
		{"stack.sh adds a crash-safety flag", `--gcmode archive)`, `--gcmode archive --cache.noprefetch)`,
			"geth-bsc: lacks stack.sh's geth flag --cache.noprefetch"},
		{"stack.sh moves a chain id", "BSC_CHAIN_ID=${PAYFLOW_BSC_CHAIN_ID:-1397}", "BSC_CHAIN_ID=${PAYFLOW_BSC_CHAIN_ID:-1398}",
			"geth-bsc: makes its genesis with chain id 1397; stack.sh's BSC_CHAIN_ID is 1398"},
		{"stack.sh runs a third chain", "\n    -confirmations ", "\n    -chain \"TRON,TRX,http://127.0.0.1:8549,ws://127.0.0.1:8550\" -confirmations ",
			"devstack: lacks stack.sh's chain TRON"},
	}
	for _, tc := range slices.Concat(composeBreakages, stackBreakages) {
		inStack := slices.Contains(stackBreakages, tc)
		t.Run(tc.name, func(t *testing.T) {
			orig, file := origCompose, composeFile
			if inStack {
				orig, file = origStack, stackScript
			}
			if strings.Count(orig, tc.old) != 1 {
				t.Fatalf("%q occurs %d times in %s; update this case", tc.old, strings.Count(orig, tc.old), file)
			}
			broken := strings.Replace(orig, tc.old, tc.new, 1)
			compose, stackSrc := []byte(broken), origStack
			if inStack {
				compose, stackSrc = nil, broken
			}
			st := parseStack(t, stackSrc)
			var found []string
			p, warnings, err := load(t, compose)
			if err != nil {
				found = append(found, err.Error())
			} else {
				found = append(found, warnings...)
				for _, c := range checks {
					found = append(found, c.fn(t, st, p)...)
				}
			}
			for _, f := range found {
				if strings.Contains(f, tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; found %q", tc.want, found)
		})
	}
}

var checks = []struct {
	name string
	fn   func(*testing.T, *stack, *types.Project) []string
}{
	{"services", checkServices},
	{"ports", checkPorts},
	{"search attributes", checkSearchAttributes},
	{"images pinned", checkPinned},
	{"temporal on SQL", checkTemporal},
	{"devstack flags", checkDevstack},
	{"geth flags", checkGeth},
	{"files exist", checkFiles},
}

// checkServices: compose defines exactly wantServices, composeFor covers
// every component stack.sh's status() reports, and wantServices is what
// composeFor and composeOnly name.
func checkServices(_ *testing.T, st *stack, p *types.Project) []string {
	var problems []string
	have := p.ServiceNames()
	for _, s := range wantServices {
		if !slices.Contains(have, s) {
			problems = append(problems, "services: compose lacks "+s)
		}
	}
	for _, s := range have {
		if !slices.Contains(wantServices, s) {
			problems = append(problems, "services: compose has "+s+", which the test does not know; add it to wantServices and say what it mirrors")
		}
	}
	for _, c := range st.components {
		if _, ok := composeFor[c]; !ok {
			problems = append(problems, "services: stack.sh starts "+c+" and composeFor names no compose service for it")
		}
	}
	mapped := slices.Clone(composeOnly)
	for c, ss := range composeFor {
		if !slices.Contains(st.components, c) {
			problems = append(problems, "services: composeFor names "+c+", which stack.sh's status() does not report")
		}
		mapped = append(mapped, ss...)
	}
	slices.Sort(mapped)
	want := slices.Sorted(slices.Values(wantServices))
	if !slices.Equal(mapped, want) {
		problems = append(problems, "services: composeFor and composeOnly name "+strings.Join(mapped, ",")+", wantServices "+strings.Join(want, ","))
	}
	return problems
}

// checkPorts: every port of stack.sh is published on loopback at its default
// by the corresponding service, or is deliberately not published; every
// published port is accounted for; and the services listen where published.
func checkPorts(_ *testing.T, st *stack, p *types.Project) []string {
	var problems []string
	accounted := map[string]bool{}
	for svc, ports := range composeOnlyPorts {
		for _, port := range ports {
			accounted[svc+"/"+strconv.Itoa(int(port))] = true
		}
	}
	for _, pp := range publishedPorts {
		def, ok := st.defaults[pp.stackVar]
		if !ok {
			problems = append(problems, "ports: stack.sh has no default for "+pp.stackVar)
			continue
		}
		accounted[pp.service+"/"+strconv.Itoa(int(pp.target))] = true
		want := "127.0.0.1:" + def + ":" + strconv.Itoa(int(pp.target))
		if !slices.Contains(publishedBy(p, pp.service), want) {
			problems = append(problems, "ports: "+pp.service+" must publish "+want+" (stack.sh "+pp.stackVar+"="+def+"); it publishes "+strings.Join(publishedBy(p, pp.service), ", "))
		}
		for svc, text := range pp.listens {
			if !strings.Contains(serviceText(p, svc), text) {
				problems = append(problems, "ports: "+svc+" must say "+strconv.Quote(text)+" for "+pp.service+"'s published port "+strconv.Itoa(int(pp.target)))
			}
		}
	}
	for v := range st.defaults {
		if !strings.HasSuffix(v, "_PORT") {
			continue
		}
		if _, ok := unpublishedPorts[v]; ok {
			continue
		}
		if !slices.ContainsFunc(publishedPorts, func(pp publishedPort) bool { return pp.stackVar == v }) {
			problems = append(problems, "ports: stack.sh's "+v+" is neither in publishedPorts nor in unpublishedPorts")
		}
	}
	for _, name := range p.ServiceNames() {
		for _, port := range p.Services[name].Ports {
			if !accounted[name+"/"+strconv.Itoa(int(port.Target))] {
				problems = append(problems, "ports: "+name+" publishes "+strconv.Itoa(int(port.Target))+", which corresponds to nothing in stack.sh and is not in composeOnlyPorts")
			}
			if port.HostIP != "127.0.0.1" {
				problems = append(problems, "ports: "+name+" publishes "+strconv.Itoa(int(port.Target))+" on "+strconv.Quote(port.HostIP)+"; the stack listens on loopback only")
			}
		}
	}
	return problems
}

func publishedBy(p *types.Project, service string) []string {
	var out []string
	for _, port := range p.Services[service].Ports {
		out = append(out, port.HostIP+":"+port.Published+":"+strconv.Itoa(int(port.Target)))
	}
	return out
}

// checkSearchAttributes: exactly one service mounts deploy/search-attributes.txt,
// and its command, run by /bin/sh with a stand-in `temporal` that records its
// arguments, registers exactly the attributes of the file with their types.
// The worker and the starter wait for it: a workflow started or upserting an
// unregistered attribute fails.
func checkSearchAttributes(t *testing.T, _ *stack, p *types.Project) []string {
	host, err := filepath.Abs(filepath.Join(root, searchAttrs))
	if err != nil {
		t.Fatal(err)
	}
	var job, target string
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type == types.VolumeTypeBind && v.Source == host {
				if job != "" {
					return []string{"search attributes: both " + job + " and " + name + " mount " + searchAttrs + "; one registers them"}
				}
				job, target = name, v.Target
			}
		}
	}
	if job == "" {
		return []string{"search attributes: no service mounts " + searchAttrs}
	}
	s := p.Services[job]
	argv := slices.Concat([]string(s.Entrypoint), []string(s.Command))
	if !slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, target) }) {
		return []string{"search attributes: " + job + " mounts " + searchAttrs + " at " + target + " but its command does not read it"}
	}
	if len(argv) == 0 || !strings.HasPrefix(argv[0], "/bin/sh") {
		return []string{"search attributes: " + job + "'s command is not a /bin/sh script; this test runs it to see what it registers"}
	}
	var problems []string
	want := readSearchAttributes(t)
	if got := registeredBy(t, argv, target, host); !slices.Equal(got, want) {
		problems = append(problems, "search attributes: "+job+" registers "+strings.Join(got, ", ")+"; "+searchAttrs+" lists "+strings.Join(want, ", "))
	}
	for _, dependent := range []string{"worker", "starter"} {
		if d, ok := p.Services[dependent].DependsOn[job]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			problems = append(problems, "search attributes: "+dependent+" must depend on "+job+" with condition "+types.ServiceConditionCompletedSuccessfully)
		}
	}
	return problems
}

// registeredBy runs argv (the registration job's command) on this machine with
// the mount target replaced by the file itself and a stand-in `temporal`
// first on PATH, and returns the "Name Type" pairs it was asked to create.
func registeredBy(t *testing.T, argv []string, target, host string) []string {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	stub := "#!/bin/sh\nprintf '%s\\n' \"$*\" >>" + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "temporal"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.ReplaceAll(a, target, host)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("running the registration command: %v\n%s", err, out)
	}
	calls, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(calls)), "\n") {
		if !strings.HasPrefix(line, "operator search-attribute create ") {
			continue
		}
		f := flags(strings.Fields(line), "--")
		got = append(got, f["--name"]+" "+f["--type"])
	}
	slices.Sort(got)
	return got
}

// checkPinned: every image names a tag other than latest, or a digest;
// services built from the repo are checked through their Dockerfile's FROM.
func checkPinned(t *testing.T, _ *stack, p *types.Project) []string {
	var problems []string
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		var images []string
		if s.Image != "" || s.Build == nil {
			images = append(images, s.Image)
		}
		if s.Build != nil {
			images = append(images, dockerfileBases(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))...)
		}
		for _, img := range images {
			if !pinned(img) {
				problems = append(problems, name+": image "+strconv.Quote(img)+" is not pinned (a tag other than latest, or a digest)")
			}
		}
	}
	return problems
}

func pinned(image string) bool {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false
	}
	if _, ok := ref.(reference.Digested); ok {
		return true
	}
	tagged, ok := ref.(reference.Tagged)
	return ok && tagged.Tag() != "" && tagged.Tag() != "latest"
}

// dockerfileBases returns the images a Dockerfile's FROM lines name, leaving
// out earlier stages.
func dockerfileBases(t *testing.T, path string) []string {
	var bases, stages []string
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		img := f[1]
		if strings.HasPrefix(img, "--platform") && len(f) > 2 {
			img = f[2]
		}
		if !slices.Contains(stages, img) {
			bases = append(bases, img)
		}
		if len(f) >= 4 && strings.EqualFold(f[len(f)-2], "AS") {
			stages = append(stages, f[len(f)-1])
		}
	}
	if len(bases) == 0 {
		t.Fatalf("%s names no base image", path)
	}
	return bases
}

// checkTemporal: Temporal persists to the compose MySQL (SQL
// persistence), and the UI talks to it.
func checkTemporal(_ *testing.T, _ *stack, p *types.Project) []string {
	var problems []string
	env := func(svc, key string) string {
		if v := p.Services[svc].Environment[key]; v != nil {
			return *v
		}
		return ""
	}
	if db := env("temporal", "DB"); db != "mysql8" {
		problems = append(problems, "temporal: DB is "+strconv.Quote(db)+", not mysql8")
	}
	if seeds := env("temporal", "MYSQL_SEEDS"); seeds != "mysql" {
		problems = append(problems, "temporal: MYSQL_SEEDS is "+strconv.Quote(seeds)+", not the mysql service")
	}
	if d, ok := p.Services["temporal"].DependsOn["mysql"]; !ok || d.Condition != types.ServiceConditionHealthy {
		problems = append(problems, "temporal: must wait for mysql to be healthy")
	}
	if a := env("temporal-ui", "TEMPORAL_ADDRESS"); a != "temporal:7233" {
		problems = append(problems, "temporal-ui: TEMPORAL_ADDRESS is "+strconv.Quote(a)+", not temporal:7233")
	}
	return problems
}

// checkDevstack: compose's devstack job is given every flag stack.sh gives
// `payflowctl devstack`, so both write the same config and stack.json fields;
// the confirmations and the MySQL DSN's parameters are the same.
func checkDevstack(_ *testing.T, st *stack, p *types.Project) []string {
	var problems []string
	got := flags(p.Services["devstack"].Command, "-")
	for _, f := range slices.Sorted(maps.Keys(st.devstack)) {
		if _, ok := got[f]; !ok {
			problems = append(problems, "devstack: lacks stack.sh's devstack flag "+f)
		}
	}
	if got["-confirmations"] != st.devstack["-confirmations"] {
		problems = append(problems, "devstack: -confirmations "+got["-confirmations"]+", stack.sh "+st.devstack["-confirmations"])
	}
	if a, b := dsnParams(got["-mysql-dsn"]), dsnParams(st.devstack["-mysql-dsn"]); a != b {
		problems = append(problems, "devstack: -mysql-dsn parameters "+a+", stack.sh "+b)
	}
	return append(problems, checkDevstackChains(st, p)...)
}

// checkDevstackChains: compose's devstack is given the chains stack.sh gives
// it (-chain NAME,NATIVE,RPC_URL,WS_URL), in the same order (the first is
// the stack's first chain), each on the compose service of the node that
// runs that chain in stack.sh, at the ports the service listens on.
func checkDevstackChains(st *stack, p *types.Project) []string {
	var problems []string
	got := map[string]string{}
	var gotOrder []string
	for _, v := range flagValues(p.Services["devstack"].Command, "-chain") {
		name, _, _ := strings.Cut(v, ",")
		got[name] = v
		gotOrder = append(gotOrder, name)
	}
	var wantOrder []string
	for _, v := range st.chains {
		f := strings.Split(v, ",")
		wantOrder = append(wantOrder, f[0])
		have, ok := got[f[0]]
		if !ok {
			problems = append(problems, "devstack: lacks stack.sh's chain "+f[0]+" (-chain "+v+")")
			continue
		}
		var node *gethNode
		for i := range st.nodes {
			if st.nodes[i].chain == f[0] {
				node = &st.nodes[i]
			}
		}
		if node == nil || len(f) != 4 {
			problems = append(problems, "devstack: stack.sh's -chain "+v+" names no node stack.sh starts (start_geth)")
			continue
		}
		svc := composeFor[node.name]
		if len(svc) != 1 {
			problems = append(problems, "devstack: composeFor must name one service for "+node.name)
			continue
		}
		gf := flags(p.Services[svc[0]].Command, "--")
		want := strings.Join([]string{f[0], f[1], "http://" + svc[0] + ":" + gf["--http.port"], "ws://" + svc[0] + ":" + gf["--ws.port"]}, ",")
		if have != want {
			problems = append(problems, "devstack: -chain "+have+"; want "+want)
		}
	}
	if !slices.Equal(gotOrder, wantOrder) {
		problems = append(problems, "devstack: chains "+strings.Join(gotOrder, ",")+" in this order; stack.sh "+strings.Join(wantOrder, ","))
	}
	return problems
}

// flagValues returns every value of a repeatable flag in command-line words.
func flagValues(words []string, flag string) []string {
	var toks, out []string
	for _, w := range words {
		toks = append(toks, strings.Fields(w)...)
	}
	for i, tok := range toks {
		if tok == flag && i+1 < len(toks) {
			out = append(out, toks[i+1])
		} else if v, ok := strings.CutPrefix(tok, flag+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func dsnParams(dsn string) string {
	_, q, _ := strings.Cut(dsn, "?")
	v, err := url.ParseQuery(q)
	if err != nil {
		return "invalid: " + q
	}
	return v.Encode() // sorted by key
}

// checkGeth: every dev chain stack.sh starts (start_geth) runs in its
// compose service with stack.sh's geth flags and values, except gethLocalOnly
// and gethDiffering; makes its genesis with deploy/geth/dev-genesis.sh (which
// it mounts) for stack.sh's chain id of that chain; and publishes its ports
// where stack.sh's node listens.
func checkGeth(t *testing.T, st *stack, p *types.Project) []string {
	var problems []string
	script, err := filepath.Abs(filepath.Join(root, devGenesis))
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range st.nodes {
		svcs := composeFor[node.name]
		if len(svcs) != 1 {
			problems = append(problems, "geth: composeFor must name one service for stack.sh's node "+node.name)
			continue
		}
		svc := svcs[0]
		s, ok := p.Services[svc]
		if !ok {
			continue // checkServices reports it
		}
		got := flags(s.Command, "--")
		for _, f := range slices.Sorted(maps.Keys(st.geth)) {
			if slices.Contains(gethLocalOnly, f) {
				continue
			}
			v, ok := got[f]
			switch {
			case !ok:
				problems = append(problems, svc+": lacks stack.sh's geth flag "+f)
			case v != st.geth[f] && !slices.Contains(gethDiffering, f):
				problems = append(problems, svc+": "+f+" "+strconv.Quote(v)+", stack.sh "+strconv.Quote(st.geth[f]))
			}
		}
		if argv := slices.Concat([]string(s.Entrypoint), []string(s.Command)); len(argv) == 3 && argv[0] == "/bin/sh" && argv[1] == "-c" {
			if out, err := exec.Command("/bin/sh", "-n", "-c", argv[2]).CombinedOutput(); err != nil {
				problems = append(problems, svc+": its /bin/sh command does not parse: "+strings.TrimSpace(string(out)))
			}
		}
		mount := ""
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && v.Source == script {
				mount = v.Target
			}
		}
		text := serviceText(p, svc)
		wantID := st.defaults[node.chainIDVar]
		switch m := regexp.MustCompile(`(\S*dev-genesis\.sh) geth (\S+)`).FindStringSubmatch(text); {
		case mount == "":
			problems = append(problems, svc+": does not mount "+devGenesis)
		case m == nil || m[1] != mount:
			problems = append(problems, svc+": does not make its genesis with "+devGenesis+" (mounted at "+mount+")")
		case m[2] != wantID:
			problems = append(problems, svc+": makes its genesis with chain id "+m[2]+"; stack.sh's "+node.chainIDVar+" is "+wantID)
		}
		for _, port := range []struct{ stackVar, flag string }{{node.httpVar, "--http.port"}, {node.wsVar, "--ws.port"}} {
			i := slices.IndexFunc(publishedPorts, func(pp publishedPort) bool { return pp.stackVar == port.stackVar })
			if i < 0 {
				continue // checkPorts reports it
			}
			if pp := publishedPorts[i]; pp.service != svc || strconv.Itoa(int(pp.target)) != got[port.flag] {
				problems = append(problems, svc+": "+port.flag+" "+got[port.flag]+" is not where publishedPorts publishes stack.sh's "+port.stackVar)
			}
		}
	}
	return problems
}

// checkFiles: what compose bind-mounts or builds from is in the repository.
func checkFiles(_ *testing.T, _ *stack, p *types.Project) []string {
	var problems []string
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				problems = append(problems, name+": mounts "+v.Source+": "+err.Error())
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				problems = append(problems, name+": builds from "+err.Error())
			}
		}
	}
	return problems
}

// serviceText is a service's entrypoint, command and environment values,
// space-separated, for the checks that look for a listen address.
func serviceText(p *types.Project, name string) string {
	s := p.Services[name]
	parts := slices.Concat([]string(s.Entrypoint), []string(s.Command))
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		if v := s.Environment[k]; v != nil {
			parts = append(parts, k+"="+*v)
		}
	}
	return strings.Join(parts, " ")
}

// flags turns command-line words into flag -> value for flags starting with
// prefix ("-" or "--"); a flag followed by another flag, or last, has value "".
// "--a=b" is flag "--a" with value "b". Words inside a single shell string are
// split on blanks first.
func flags(words []string, prefix string) map[string]string {
	var toks []string
	for _, w := range words {
		toks = append(toks, strings.Fields(w)...)
	}
	isFlag := func(s string) bool {
		return strings.HasPrefix(s, prefix) && len(s) > len(prefix) && s[len(prefix)] != '-'
	}
	out := map[string]string{}
	for i, tok := range toks {
		if !isFlag(tok) {
			continue
		}
		if k, v, ok := strings.Cut(tok, "="); ok {
			out[k] = v
			continue
		}
		out[tok] = ""
		if i+1 < len(toks) && !isFlag(toks[i+1]) && !strings.HasPrefix(toks[i+1], "-") {
			out[tok] = toks[i+1]
		}
	}
	return out
}

// stack is what the tests read from scripts/stack.sh.
type stack struct {
	defaults   map[string]string // MYSQL_PORT=${PAYFLOW_MYSQL_PORT:-3316} -> MYSQL_PORT: 3316
	components []string          // what status() reports
	devstack   map[string]string // `payflowctl devstack` flags, variables expanded
	chains     []string          // its -chain values, in order, variables expanded
	geth       map[string]string // geth flags (one command for every node), variables expanded
	nodes      []gethNode        // the dev chains' nodes: start_geth calls
}

// gethNode is one `start_geth NAME CHAIN DATADIR "$X_CHAIN_ID" "$X_HTTP_PORT"
// "$X_WS_PORT"` of stack.sh: the node's pid name (what status() reports), its
// chain and the variables of its chain id and ports.
type gethNode struct {
	name, chain                string
	chainIDVar, httpVar, wsVar string
}

var (
	defaultRe = regexp.MustCompile(`(?m)^([A-Z][A-Z0-9_]*)=\$\{PAYFLOW_[A-Z0-9_]+:-([^}]*)\}$`)
	statusRe  = regexp.MustCompile(`(?s)\nstatus\(\) \{.*?\n  for n in ([a-z0-9_ -]+); do`)
	varRe     = regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)\}?`)
	nodeRe    = regexp.MustCompile(`start_geth ([a-z0-9-]+) ([A-Z0-9_]+) "[^"]*" "\$([A-Z0-9_]+)" "\$([A-Z0-9_]+)" "\$([A-Z0-9_]+)"`)
	persistRe = regexp.MustCompile(`\n\s*local persist=\(([^)]*)\)`)
)

func readStack(t *testing.T) *stack {
	t.Helper()
	return parseStack(t, readFile(t, stackScript))
}

func parseStack(t *testing.T, src string) *stack {
	t.Helper()
	st := &stack{defaults: map[string]string{}}
	for _, m := range defaultRe.FindAllStringSubmatch(src, -1) {
		st.defaults[m[1]] = m[2]
	}
	m := statusRe.FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s: found no `for n in ...` loop in status(); update readStack", stackScript)
	}
	st.components = strings.Fields(m[1])
	expand := func(s string) string {
		s = varRe.ReplaceAllStringFunc(s, func(v string) string {
			if d, ok := st.defaults[varRe.FindStringSubmatch(v)[1]]; ok {
				return d
			}
			return v
		})
		return strings.ReplaceAll(s, `"`, "")
	}
	devstack := strings.Fields(expand(continued(t, src, `payflowctl" devstack`)))
	st.devstack = flags(devstack, "-")
	st.chains = flagValues(devstack, "-chain")
	// The geth command passes the crash-safety flags as "${persist[@]}".
	pm := persistRe.FindStringSubmatch(src)
	if pm == nil {
		t.Fatalf("%s: no `local persist=(...)` of geth flags; update readStack", stackScript)
	}
	gethCmd := strings.ReplaceAll(continued(t, src, `"$BIN/geth" --dev`), `"${persist[@]}"`, pm[1])
	st.geth = flags(strings.Fields(expand(gethCmd)), "--")
	for _, m := range nodeRe.FindAllStringSubmatch(src, -1) {
		st.nodes = append(st.nodes, gethNode{name: m[1], chain: m[2], chainIDVar: m[3], httpVar: m[4], wsVar: m[5]})
	}
	for _, want := range []string{"-mysql-dsn", "-confirmations", "-http-addr"} {
		if _, ok := st.devstack[want]; !ok {
			t.Fatalf("%s: read no %s from the devstack call; update readStack", stackScript, want)
		}
	}
	if st.geth["--http.port"] == "" || st.geth["--db.engine"] == "" || len(st.defaults) < 10 || len(st.nodes) < 2 || len(st.chains) < 2 {
		t.Fatalf("%s: read geth flags %v, defaults %v, nodes %v and devstack chains %v; update readStack",
			stackScript, st.geth, st.defaults, st.nodes, st.chains)
	}
	return st
}

// continued returns the shell command that starts on the line containing
// start and continues over lines ending in a backslash, up to its redirections.
func continued(t *testing.T, src, start string) string {
	i := strings.Index(src, start)
	if i < 0 {
		t.Fatalf("%s: no %q; update readStack", stackScript, start)
	}
	var b strings.Builder
	s := bufio.NewScanner(strings.NewReader(src[i:]))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		more := strings.HasSuffix(line, `\`)
		line, _, _ = strings.Cut(strings.TrimSuffix(line, `\`), ">")
		b.WriteString(line + " ")
		if !more {
			break
		}
	}
	return b.String()
}

func readSearchAttributes(t *testing.T) []string {
	var attrs []string
	for _, line := range strings.Split(readFile(t, searchAttrs), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		attrs = append(attrs, strings.Join(strings.Fields(line), " "))
	}
	if len(attrs) == 0 {
		t.Fatalf("%s lists no search attribute", searchAttrs)
	}
	slices.Sort(attrs)
	return attrs
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// warnings collects what compose-go logs at warning level or above (an unset
// variable, an obsolete attribute); Docker Compose prints these and carries on.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (w *warnings) Fire(e *logrus.Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, e.Message)
	return nil
}

var (
	hookOnce sync.Once
	hook     = &warnings{}
	loadMu   sync.Mutex // the hook is global: one load at a time
)

// load loads docker-compose.yml, or content in its place (same directory, so
// relative paths resolve alike), as `docker compose` does: schema validation,
// interpolation with composeEnv, normalisation, consistency checks.
func load(t *testing.T, content []byte) (*types.Project, []string, error) {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	hookOnce.Do(func() {
		logrus.AddHook(hook)
		logrus.SetOutput(io.Discard) // the tests report them
	})
	hook.mu.Lock()
	hook.msgs = nil
	hook.mu.Unlock()

	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, composeFile), Content: content}},
		Environment: types.Mapping(composeEnv),
	}
	p, err := loader.LoadWithContext(context.Background(), details)

	hook.mu.Lock()
	defer hook.mu.Unlock()
	msgs := slices.Clone(hook.msgs)
	sort.Strings(msgs)
	return p, msgs, err
}

func TestPinned(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("ab", 32)
	for image, want := range map[string]bool{
		"mysql:8.0":             true,
		"golang:1.26-bookworm":  true,
		"mysql" + digest:        true,
		"mysql:latest" + digest: true,
		"mysql":                 false,
		"mysql:latest":          false,
		"":                      false,
	} {
		if got := pinned(image); got != want {
			t.Errorf("pinned(%q) = %v, want %v", image, got, want)
		}
	}
}

// TestLocalKMSVersionIsStackShs: compose's kms service runs the local-kms
// that stack.sh builds (deploy/Dockerfile's local-kms target installs it).
func TestLocalKMSVersionIsStackShs(t *testing.T) {
	want := regexp.MustCompile(`(?m)^LOCAL_KMS_VERSION=(\S+)$`).FindStringSubmatch(readFile(t, stackScript))
	got := regexp.MustCompile(`github\.com/nsmithuk/local-kms@(\S+)`).FindStringSubmatch(readFile(t, "deploy/Dockerfile"))
	if want == nil || got == nil {
		t.Fatalf("no LOCAL_KMS_VERSION in %s (%v) or no local-kms install in deploy/Dockerfile (%v)", stackScript, want, got)
	}
	if got[1] != want[1] {
		t.Errorf("deploy/Dockerfile installs local-kms %s, %s builds %s", got[1], stackScript, want[1])
	}
}
