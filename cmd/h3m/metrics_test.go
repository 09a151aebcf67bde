package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/netns"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one read of a /metrics page.
type scrape struct {
	raw      []byte
	families map[string]*dto.MetricFamily
}

// getIn GETs http://addr+path from inside ns: the socket is made there
// (netns.Do), the request written on it by hand.
func getIn(ns *netns.NS, addr, path string) ([]byte, error) {
	var conn net.Conn
	if err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\nConnection: close\r\n\r\n", path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return body, err
}

// scrapeIn reads http://addr/metrics from inside ns.
func scrapeIn(t *testing.T, ns *netns.NS, addr string) (*scrape, error) {
	t.Helper()
	raw, err := getIn(ns, addr, "/metrics")
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	return &scrape{raw: raw, families: fams}, nil
}

// sum adds the values of name's samples whose labels include match
// (label=value pairs).
func (s *scrape) sum(name string, match ...string) float64 {
	mf := s.families[name]
	if mf == nil {
		return -1
	}
	var total float64
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(match); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == match[i] && lp.GetValue() == match[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// names lists the series names s exports: each family, and a histogram's
// _bucket, _sum and _count.
func (s *scrape) names() map[string]bool {
	out := map[string]bool{}
	for name, mf := range s.families {
		out[name] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY {
			out[name+"_sum"], out[name+"_count"] = true, true
			if mf.GetType() == dto.MetricType_HISTOGRAM {
				out[name+"_bucket"] = true
			}
		}
	}
	return out
}

// lint fails the test on every problem promlint (Prometheus's own naming
// checks) finds in the h3m metrics of s.
func (s *scrape) lint(t *testing.T, who string) {
	t.Helper()
	problems, err := promlint.New(bytes.NewReader(s.raw)).Lint()
	if err != nil {
		t.Fatalf("%s: promlint: %v", who, err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "h3m_") {
			t.Errorf("%s: %s: %s", who, p.Metric, p.Text)
		}
	}
	for name := range s.families {
		if strings.HasPrefix(name, "h3m_") {
			return
		}
	}
	t.Errorf("%s exports no h3m metrics", who)
}

// TestMetricsServeGateway runs serve and gateway in two network
// namespaces joined by a veth pair, with 3% of the multicast packets
// dropped by nftables on the gateway's side when nft is installed, scrapes
// both /metrics pages and checks the figures against what was pushed and
// received: every pushed body byte counted once, every file delivered, the
// repaired bytes covering the lost ones, and the unicast bytes the origin
// served equal to those the receiver took. Then it checks that every metric
// the Grafana dashboard queries is exported.
func TestMetricsServeGateway(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Skipf("network namespaces: %v", err)
	}
	a, b := netns.New(t, "mets"), netns.New(t, "metg")
	ifA, ifB := netns.Veth(t, a, b, netip.MustParsePrefix("10.99.8.1/24"), netip.MustParsePrefix("10.99.8.2/24"))
	loss := false
	if _, err := exec.LookPath("nft"); err == nil {
		// Single datagrams on the link, so that the rule drops whole packets.
		a.MustRun("ip", "link", "set", ifA, "gso_max_segs", "1")
		b.MustRun("nft", "add table inet h3mloss")
		b.MustRun("nft", "add chain inet h3mloss in { type filter hook input priority 0 ; }")
		b.MustRun("nft", "add rule inet h3mloss in ip daddr 232.0.0.0/8 udp dport 5708 numgen random mod 100 < 3 counter drop")
		loss = true
	} else {
		t.Log("nftables (nft) is not installed: no loss, so no repair to check")
	}

	src := makeFolder(t)
	var files int
	var size int64
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			st, _ := d.Info()
			files++
			size += st.Size()
		}
		return err
	})
	listen, originMetrics, gatewayMetrics := "10.99.8.1:4433", "10.99.8.1:9464", "10.99.8.2:9465"
	_, cert := startServer(t, a, "--dir", src, "--wait", "3s",
		"--group", "232.255.7.8", "--port", "5708", "--interface", ifA, "--listen", listen, "--rate", "100000000",
		"--metrics-listen", originMetrics)
	gw := start(t, b, h3mBinary, "gateway", "--url", "https://"+listen+"/", "--ca", cert, "--interface", ifB,
		"--listen", "127.0.0.1:8080", "--metrics-listen", gatewayMetrics)
	waitFor(t, "the gateway", 10*time.Second, func() bool { return strings.Contains(gw.output(), "metrics at http://"+gatewayMetrics) })

	var og, gs *scrape
	var err error
	waitFor(t, "every file at the gateway", 90*time.Second, func() bool {
		if gs, err = scrapeIn(t, a, gatewayMetrics); err != nil {
			return false
		}
		return gs.sum("h3m_receiver_resources_total")+gs.sum("h3m_receiver_resources_failed_total") >= float64(files)
	})
	// A player gets a file from the gateway.
	player, err := getIn(b, "127.0.0.1:8080", "/sub/deeper/f5.bin")
	if err != nil || len(player) != 1_000_000 {
		t.Fatalf("a player's request to the gateway: %d bytes, %v", len(player), err)
	}
	// The gateway counts a response once its handler returns, which may
	// be a moment after the player has read the body.
	waitFor(t, "the player's bytes in the gateway's metrics", 10*time.Second, func() bool {
		gs, err = scrapeIn(t, a, gatewayMetrics)
		return err == nil && gs.sum("h3m_gateway_player_requests_total") > 0
	})
	if og, err = scrapeIn(t, a, originMetrics); err != nil {
		t.Fatal(err)
	}
	t.Logf("origin:\n%s", filterH3M(og.raw))
	t.Logf("gateway:\n%s", filterH3M(gs.raw))

	// The origin: every file pushed once, its body bytes counted once.
	if got := og.sum("h3m_origin_pushes_total"); got != float64(files) {
		t.Errorf("h3m_origin_pushes_total %v, want the %d files", got, files)
	}
	if got := og.sum("h3m_origin_pushed_bytes_total"); got != float64(size) {
		t.Errorf("h3m_origin_pushed_bytes_total %v, want the %d bytes of the files", got, size)
	}
	if got := og.sum("h3m_origin_sessions", "state", "active"); got != 1 {
		t.Errorf("h3m_origin_sessions{state=active} %v, want 1", got)
	}
	if got := og.sum("h3m_origin_descriptions_served_total"); got < 1 {
		t.Errorf("h3m_origin_descriptions_served_total %v: the gateway read the description", got)
	}
	sent, sentBytes := og.sum("h3m_origin_packets_sent_total"), og.sum("h3m_origin_sent_bytes_total")
	if sentBytes < float64(size) {
		t.Errorf("h3m_origin_sent_bytes_total %v < the %d bytes pushed", sentBytes, size)
	}

	// The gateway: every file, none failed, by multicast alone without loss.
	multicast, repair, fallback := gs.sum("h3m_receiver_resources_total", "via", "multicast"),
		gs.sum("h3m_receiver_resources_total", "via", "repair"), gs.sum("h3m_receiver_resources_total", "via", "fallback")
	if multicast+repair+fallback != float64(files) || gs.sum("h3m_receiver_resources_failed_total") != 0 {
		t.Errorf("resources: %v multicast, %v repair, %v fallback, %v failed; want the %d files",
			multicast, repair, fallback, gs.sum("h3m_receiver_resources_failed_total"), files)
	}
	if !loss && multicast != float64(files) {
		t.Errorf("%v resources by multicast without loss, want %d", multicast, files)
	}
	// Every delivery whose promise arrived is in the histogram: all those
	// by multicast, those repaired or fetched unless their promise was lost.
	if got, all := gs.sum("h3m_receiver_promise_to_complete_seconds", "via", "multicast"),
		gs.sum("h3m_receiver_promise_to_complete_seconds"); got != multicast || all > multicast+repair+fallback {
		t.Errorf("the promise-to-complete histogram holds %v deliveries by multicast (want %v), %v in all (at most %v)",
			got, multicast, all, multicast+repair+fallback)
	}
	got, lostPackets := gs.sum("h3m_receiver_packets_total"), gs.sum("h3m_receiver_lost_packets_total")
	if got <= 0 || got+lostPackets > sent {
		t.Errorf("the receiver accepted %v packets and lost %v of the %v sent", got, lostPackets, sent)
	}

	if got := gs.sum("h3m_gateway_player_sent_bytes_total"); got != float64(len(player)) {
		t.Errorf("h3m_gateway_player_sent_bytes_total %v, want the %d bytes the player got", got, len(player))
	}
	if got := gs.sum("h3m_gateway_player_requests_total"); got != 1 {
		t.Errorf("h3m_gateway_player_requests_total %v, want 1", got)
	}

	// Loss: what was lost was repaired, within the merged gaps.
	lost, repaired := gs.sum("h3m_receiver_lost_bytes_total"), gs.sum("h3m_receiver_repaired_bytes_total")
	if loss {
		if lostPackets == 0 || repair == 0 || lost == 0 {
			t.Errorf("3%% of the packets dropped, yet %v packets lost, %v resources repaired, %v bytes lost", lostPackets, repair, lost)
		}
	}
	const mergeGap = 256 // client.DefaultMergeGap: gaps this small between losses are fetched with them
	if repaired < lost || repaired > lost+mergeGap*lostPackets {
		t.Errorf("repaired %v bytes for %v lost (%v packets)", repaired, lost, lostPackets)
	}
	// Unicast: the bytes the origin served are those the receiver took,
	// when no request failed on the way.
	if gs.sum("h3m_receiver_unicast_request_errors_total") == 0 && gs.sum("h3m_receiver_bad_responses_total") == 0 {
		if o, r := og.sum("h3m_origin_repair_served_bytes_total"), gs.sum("h3m_receiver_repair_response_bytes_total"); o != r {
			t.Errorf("the origin served %v bytes of range responses, the receiver took %v", o, r)
		}
		if o, r := og.sum("h3m_origin_fallback_served_bytes_total"), gs.sum("h3m_receiver_fetched_bytes_total"); o != r {
			t.Errorf("the origin served %v bytes of whole resources, the receiver fetched %v", o, r)
		}
	}
	if repair > 0 && og.sum("h3m_origin_repair_requests_total") < 1 {
		t.Errorf("resources repaired, yet the origin answered no range request")
	}

	og.lint(t, "serve")
	gs.lint(t, "gateway")

	// The dashboard queries only metrics that are exported.
	exported := og.names()
	for n := range gs.names() {
		exported[n] = true
	}
	for _, name := range dashboardMetrics(t) {
		if !exported[name] {
			t.Errorf("the dashboard queries %s, which neither serve nor gateway exports", name)
		}
	}
}

// filterH3M keeps the h3m sample lines of a /metrics page.
func filterH3M(raw []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "h3m_") && !strings.Contains(l, "_bucket{") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// dashboardFile is the Grafana dashboard shipped with h3m.
const dashboardFile = "deploy/grafana/h3m.json"

// dashboardMetrics returns the metric names the dashboard's queries use.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	seen := map[string]bool{}
	queries := 0
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			names, err := promqlMetricNames(tg.Expr)
			if err != nil || len(names) == 0 {
				t.Errorf("%s: panel %q: %q: no metric found (%v)", dashboardFile, p.Title, tg.Expr, err)
			}
			for _, n := range names {
				seen[n] = true
			}
		}
	}
	if queries < 20 {
		t.Errorf("%s: only %d queries", dashboardFile, queries)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// promqlKeywords are the words of PromQL that are not metric names when
// they stand alone.
var promqlKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless", "inf", "nan"}

// promqlAggregations are PromQL's aggregation operators.
var promqlAggregations = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// aggregationClause reports whether s starts with "by" or "without" and
// then "(".
func aggregationClause(s string) bool {
	for _, kw := range []string{"by", "without"} {
		if rest, ok := strings.CutPrefix(s, kw); ok && strings.HasPrefix(strings.TrimLeft(rest, " "), "(") {
			return true
		}
	}
	return false
}

// promqlMetricNames returns the metric names a PromQL expression selects.
// It is a small lexer rather than Prometheus's own parser, whose module
// (github.com/prometheus/prometheus) would bring hundreds of packages into
// go.sum for one test: it skips strings, label matchers ({...}), ranges
// ([...]), numbers, keywords, the label lists of by/without/on/ignoring and
// the names of functions and aggregations (an identifier before "(").
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	skipTo := func(i int, close byte) (int, error) {
		for j := i + 1; j < len(expr); j++ {
			switch expr[j] {
			case '"', '\'', '`':
				q := expr[j]
				for j++; j < len(expr) && expr[j] != q; j++ {
					if expr[j] == '\\' {
						j++
					}
				}
			case close:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unclosed %q in %q", expr[i], expr)
	}
	labelList := false // the next (...) lists labels
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{':
			j, err := skipTo(i, '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '(' && labelList:
			j, err := skipTo(i, ')')
			if err != nil {
				return nil, err
			}
			i, labelList = j, false
		case c == '"' || c == '\'' || c == '`':
			j, err := skipTo(i, c)
			if err != nil {
				return nil, err
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++ // numbers, durations (5m), exponents
			}
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			switch {
			case slices.Contains(promqlKeywords, strings.ToLower(word)):
				switch strings.ToLower(word) {
				case "by", "without", "on", "ignoring", "group_left", "group_right":
					labelList = true
				}
			case k < len(expr) && expr[k] == '(':
				// A function or an aggregation.
			case slices.Contains(promqlAggregations, word) && aggregationClause(expr[k:]):
				// An aggregation with its clause first: sum by (x) (...).
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

// TestPromQLMetricNames checks the dashboard's query lexer.
func TestPromQLMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (via) (rate(h3m_a_total{via="x{y}"}[5m]))`:                                       "h3m_a_total",
		`histogram_quantile(0.95, sum by (le, via) (rate(h3m_b_bucket[$__rate_interval])))`:      "h3m_b_bucket",
		`sum(rate(h3m_a_total[5m])) / on (job) group_left (x) sum(h3m_c) * 2 > bool 1e3`:         "h3m_a_total h3m_c",
		`h3m_d offset 5m and ignoring(session) h3m_e unless h3m_f{a=~'by|on'}`:                   "h3m_d h3m_e h3m_f",
		`sum without (instance) (process_resident_memory_bytes) or vector(0)`:                    "process_resident_memory_bytes",
		`(sum(increase(h3m_g[1h])) + sum(h3m_h)) / sum(rate(h3m_i{via!="repair",x="a\"b"}[5m]))`: "h3m_g h3m_h h3m_i",
	} {
		names, err := promqlMetricNames(expr)
		if err != nil || strings.Join(names, " ") != want {
			t.Errorf("%s: got %q (%v), want %q", expr, names, err, want)
		}
	}
	if _, err := promqlMetricNames(`sum(h3m_a{x="1"`); err == nil {
		t.Error("an unclosed matcher was accepted")
	}
}
