// Package interop is an interop runner for HTTP over multicast QUIC, built
// on the conventions of the QUIC interop runner (quic-interop-runner):
// implementations described in a JSON registry, endpoints driven by
// environment variables with exit code 127 for "test case not supported",
// test cases with a name, matrix letters, a topology, a timeout and a
// check, and results as a matrix (text, Markdown) and as JSON in the QUIC
// runner's layout, with per-pair log folders.
//
// What differs is the network: every test case builds its own multi-host
// network from Linux network namespaces — a sender host, several receiver
// hosts and (for the integrity case) an attacker on one bridge — flooding,
// or a switch that snoops IGMPv3/MLDv2 (switch.go) — optionally a
// key holder that forges pushes (Runner.Forger) — with
// per-receiver random loss of multicast packets (nftables) and blackhole
// windows, and removes it afterwards whatever happened. Where namespaces
// cannot be made (not root), a loopback mode runs the cases that need only
// one host.
//
// # Endpoint contract
//
// The runner starts each side with the registry's command template and
// these variables (in the environment, and as {NAME} in the template):
//
//	ROLE           sender or receiver
//	TESTCASE       the test case name; exit 127 when not supported (the
//	               network cases snooping and bottleneck pass "push")
//	WWW            sender: folder to serve and push; files appear in it
//	               (by rename) while the sender runs
//	DOWNLOADS      receiver: folder to write each resource to, by URL path
//	CERTS          cert.pem/priv.key for the unicast server, ca.pem to trust,
//	               and for the signature case sign.key/sign.pub (Ed25519)
//	               and sign-rsa.key/sign-rsa.pub (RSA 2048)
//	GROUP, PORT    the multicast group (232.77.0.1 or ff3e::77:1) and UDP port
//	SOURCE         the sender's address (the SSM source)
//	IFACE          the host's interface for multicast (never another)
//	SERVER, URL    the unicast server's HOST:PORT and https URL
//	RATE           the sender's peak flow rate in bit/s
//	ROLLOVER       rollover case: the session rollover interval (e.g. 2s)
//	GATEWAY        dash case: HOST:PORT where the receiver serves players
//	RECEIVER       receiver number (1, 2, …)
//	LOGDIR         the endpoint's log folder (also its working directory)
//	QLOGDIR        where to write qlog files
//	SSLKEYLOGFILE  where to write TLS and multicast session keys
//
// Sequence: the runner starts the sender and waits until it listens on
// SERVER's port; it starts the receivers and waits until each host is a
// member of GROUP (from `ip maddr`); then it moves the case's files into
// WWW. When every receiver holds every file byte-exact (or at the
// timeout) it sends SIGTERM to the sender, which must end the session and
// exit 0; receivers must then exit by themselves, 0 when everything
// announced arrived intact. Checks use the downloads, exit codes, the
// packet captures (unicast bytes from the server to each receiver) and,
// for signatures, the receiver's per-resource output lines.
package interop
