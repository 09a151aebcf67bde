package interop

import (
	"fmt"
	"math/rand/v2"
	"path"
	"time"
)

// TestCase is one test of the matrix (or one measurement), in the QUIC
// interop runner's style: a name given to the endpoints as TESTCASE, the
// letters shown in the matrix, a topology, a timeout, the files to send
// and a check.
type TestCase struct {
	// Name is the TESTCASE value and the log folder name.
	Name string
	// Abbr is the abbreviation shown in the matrix.
	Abbr string
	// Desc is a one-sentence description.
	Desc string
	// EndpointName, when set, is given to the endpoints as TESTCASE instead
	// of Name (measurements reuse the endpoint behaviour of "push").
	EndpointName string
	// Topology is the network the case runs on.
	Topology Topology
	// NeedsNetns marks cases that loopback mode cannot run (loss, several
	// hosts, IPv6); they are reported unsupported there.
	NeedsNetns bool
	// Timeout bounds the whole case after the endpoints started.
	Timeout time.Duration
	// Rate is the sender's peak flow rate in bit/s (RATE).
	Rate uint64
	// Measurement marks goodput and CPU measurements (reported under
	// "measurements" rather than "results").
	Measurement bool
	// Later is how many of the last receivers the runner does not start
	// before the case's drive function (which starts them, or leaves a
	// host idle).
	Later int

	files func(rng *rand.Rand, mb int) []genFile
	drive func(c *caseRun) error
	check func(c *caseRun) error
}

// endpointName is the TESTCASE value for the endpoints.
func (tc *TestCase) endpointName() string {
	if tc.EndpointName != "" {
		return tc.EndpointName
	}
	return tc.Name
}

// genFile is a file the runner generates for a case. Batch orders releases
// (see the case's drive function).
type genFile struct {
	Path  string // relative, slash-separated
	Size  int
	Batch int
}

// Rates used by the cases: modest, so that 2 shared cores keep up.
const (
	defaultRate = 100_000_000
	measureRate = 200_000_000
)

// TestCases returns the test cases in matrix order.
func TestCases() []*TestCase {
	return []*TestCase{
		{
			Name: "announce", Abbr: "A",
			Desc:     "The receiver learns the session from the unicast advertisement, joins the group and receives a file.",
			Topology: Topology{Receivers: 1}, Timeout: 20 * time.Second, Rate: defaultRate,
			files: fixed(genFile{"index.html", 2000, 0}),
			drive: driveSimple,
			check: checkAnnounce,
		},
		{
			Name: "push", Abbr: "P",
			Desc:     "Several files of different sizes are pushed; every receiver gets them byte-exact over multicast.",
			Topology: Topology{Receivers: 2}, Timeout: 30 * time.Second, Rate: defaultRate,
			files: fixed(genFile{"a.txt", 1, 0}, genFile{"b.bin", 1200, 0}, genFile{"c/d.bin", 64 << 10, 0},
				genFile{"c/e.bin", 300 << 10, 0}, genFile{"f.bin", 1 << 20, 0}, genFile{"g.bin", 2<<20 + 17, 0}),
			drive: driveSimple,
			check: checkMulticast(0.2),
		},
		{
			Name: "push-many", Abbr: "M",
			Desc:     "Thousands of small resources in nested folders arrive byte-exact.",
			Topology: Topology{Receivers: 1}, Timeout: 60 * time.Second, Rate: defaultRate,
			files: manySmall(2000),
			drive: driveSimple,
			check: checkMulticast(0.3),
		},
		{
			Name: "integrity", Abbr: "I",
			Desc: "An attacker on the link re-sends every packet with one bit flipped while 15 % of the genuine packets are lost: " +
				"tampered packets must be dropped and the gaps repaired.",
			Topology:   Topology{Receivers: 1, Loss: []int{15}, Attacker: true},
			NeedsNetns: true, Timeout: 30 * time.Second, Rate: defaultRate,
			files: repeat(12, 96<<10),
			drive: driveIntegrity,
			check: checkIntegrity,
		},
		{
			Name: "signature", Abbr: "S",
			Desc:     "The sender signs every resource (key in CERTS/sign.key); receivers verify the signatures.",
			Topology: Topology{Receivers: 1}, Timeout: 30 * time.Second, Rate: defaultRate,
			files: sizes(1000, 100<<10, 500<<10),
			drive: driveSimple,
			check: checkSignature,
		},
		{
			Name: "loss", Abbr: "L",
			Desc:     "10 % and 25 % of the multicast packets are lost at two receivers; they repair over unicast.",
			Topology: Topology{Receivers: 2, Loss: []int{10, 25}}, NeedsNetns: true,
			Timeout: 30 * time.Second, Rate: defaultRate,
			files: repeat(12, 128<<10),
			drive: driveSimple,
			check: checkLoss,
		},
		{
			Name: "blackhole", Abbr: "B",
			Desc: "Multicast stops arriving for a few seconds: the receiver falls back to unicast and returns to multicast " +
				"when it is back.",
			Topology: Topology{Receivers: 1}, NeedsNetns: true, Timeout: 45 * time.Second, Rate: defaultRate,
			files: batches(3, 3, 256<<10),
			drive: driveBlackhole,
			check: checkBlackhole,
		},
		{
			Name: "late-join", Abbr: "J",
			Desc: "A second receiver starts after the first files were pushed: it gets those over unicast and the " +
				"later ones over multicast.",
			Topology: Topology{Receivers: 2}, NeedsNetns: true, Timeout: 40 * time.Second, Rate: defaultRate,
			Later: 1,
			files: batches(2, 3, 200<<10),
			drive: driveLateJoin,
			check: checkLateJoin,
		},
		{
			Name: "close", Abbr: "C",
			Desc:     "The sender ends the session (on SIGTERM); receivers recognise the end and exit 0 within 5 s.",
			Topology: Topology{Receivers: 2}, Timeout: 20 * time.Second, Rate: defaultRate,
			files: fixed(genFile{"last.txt", 3000, 0}),
			drive: driveSimple,
			check: checkClose,
		},
		{
			Name: "rollover", Abbr: "R",
			Desc: "The sender rolls the session over (ROLLOVER, e.g. every 2 s: new session ID and key) while files keep " +
				"coming; receivers follow without unicast fallback.",
			Topology: Topology{Receivers: 1}, Timeout: 40 * time.Second, Rate: defaultRate,
			files: batches(4, 2, 128<<10),
			drive: driveRollover,
			check: checkRollover,
		},
		{
			Name: "ipv6", Abbr: "6",
			Desc:     "The push test over IPv6 (source fd77::1, group ff3e::77:1).",
			Topology: Topology{Receivers: 2, IPv6: true}, NeedsNetns: true, Timeout: 30 * time.Second, Rate: defaultRate,
			files: sizes(1000, 200<<10, 1<<20),
			drive: driveSimple,
			check: checkMulticast(0.2),
		},
		{
			Name: "multi-receiver", Abbr: "N",
			Desc:     "Three receivers with 0 %, 5 % and 15 % multicast loss all get every file byte-exact.",
			Topology: Topology{Receivers: 3, Loss: []int{0, 5, 15}}, NeedsNetns: true,
			Timeout: 30 * time.Second, Rate: defaultRate,
			files: repeat(12, 128<<10),
			drive: driveSimple,
			check: checkMultiReceiver,
		},
		{
			Name: "dash", Abbr: "D",
			Desc: "ffmpeg writes a live DASH stream into WWW; a receiver's gateway (GATEWAY) serves the MPD and segments " +
				"to an HTTP client and to ffmpeg as a player.",
			Topology: Topology{Receivers: 1}, Timeout: 45 * time.Second, Rate: defaultRate,
			drive: driveDASH,
			check: checkDASH,
		},
	}
}

// Measurements returns the measurements: goodput (per receiver) and
// sender CPU per GB, both of one large push to two receivers.
func Measurements() []*TestCase {
	return []*TestCase{
		{
			Name: "goodput", Abbr: "G", EndpointName: "push", Measurement: true,
			Desc:     "Goodput of one large file at each of two receivers (kbit/s, from its first data packet to its last in the receiver's capture).",
			Topology: Topology{Receivers: 2}, Timeout: 60 * time.Second, Rate: measureRate,
			files: measureFile, drive: driveMeasure, check: checkGoodput,
		},
		{
			Name: "cpu", Abbr: "U", EndpointName: "push", Measurement: true,
			Desc:     "Sender CPU seconds per GB pushed (user+system of the sender's processes during the transfer).",
			Topology: Topology{Receivers: 2}, Timeout: 60 * time.Second, Rate: measureRate,
			files: measureFile, drive: driveMeasure, check: checkCPU,
		},
	}
}

func fixed(files ...genFile) func(*rand.Rand, int) []genFile {
	return func(*rand.Rand, int) []genFile { return files }
}

func sizes(ss ...int) func(*rand.Rand, int) []genFile {
	return func(*rand.Rand, int) []genFile {
		var out []genFile
		for i, s := range ss {
			out = append(out, genFile{Path: fmt.Sprintf("file%d.bin", i), Size: s})
		}
		return out
	}
}

// repeat makes n files of about size bytes (each a little different).
// Loss cases use many files: a receiver that loses a resource's promise
// or headers fetches that resource whole, and with many resources that
// share of the content stays close to its expectation.
func repeat(n, size int) func(*rand.Rand, int) []genFile {
	return func(*rand.Rand, int) []genFile {
		out := make([]genFile, n)
		for i := range out {
			out[i] = genFile{Path: fmt.Sprintf("file%02d.bin", i), Size: size + 97*i}
		}
		return out
	}
}

func batches(n, per, size int) func(*rand.Rand, int) []genFile {
	return func(*rand.Rand, int) []genFile {
		var out []genFile
		for b := 0; b < n; b++ {
			for i := 0; i < per; i++ {
				out = append(out, genFile{Path: fmt.Sprintf("batch%d/file%d.bin", b, i), Size: size + i, Batch: b})
			}
		}
		return out
	}
}

func manySmall(n int) func(*rand.Rand, int) []genFile {
	return func(rng *rand.Rand, _ int) []genFile {
		out := make([]genFile, n)
		for i := range out {
			out[i] = genFile{Path: path.Join(fmt.Sprintf("d%02d", i%20), fmt.Sprintf("r%04d.json", i)), Size: 100 + rng.IntN(1900)}
		}
		return out
	}
}

func measureFile(_ *rand.Rand, mb int) []genFile {
	return []genFile{{Path: "large.bin", Size: mb << 20}}
}
