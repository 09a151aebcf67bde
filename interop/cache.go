package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A cache tier for the namespace topology: an HTTP cache host on the
// bridge, between the receivers and the origin, running Debian's nginx as a
// CDN edge would (proxy_cache with the slice module over TLS). Receivers
// repair and fall back through it (h3m receive --repair-url); it fetches
// from the origin's TCP listener (h3m serve --tcp-listen) on a miss, one
// aligned slice at a time, and logs each request and slice fetch.

// CachePort is the port the cache listens on (TLS, HTTP/2 and HTTP/1.1).
const CachePort = 8443

// CacheSlice is the slice size of the cache: what it fetches from the
// origin per miss, and the block size receivers align repairs to (the
// client's DefaultRepairBlock).
const CacheSlice = 64 << 10

// NginxAvailable reports why the nginx cache cannot run here, or nil: the
// nginx binary with the slice and SSL modules.
func NginxAvailable() error {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return fmt.Errorf("nginx is not installed (Debian package nginx-light or nginx): %w", err)
	}
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -V: %v: %s", err, bytes.TrimSpace(out))
	}
	for _, m := range []string{"--with-http_slice_module", "--with-http_ssl_module", "--with-http_v2_module"} {
		if !bytes.Contains(out, []byte(m)) {
			return fmt.Errorf("nginx is built without %s", strings.TrimPrefix(m, "--with-"))
		}
	}
	return nil
}

// AddCache adds a cache host to a namespace network: "cache" at 10.77.0.2
// (fd77::2) on the bridge, its eth0 up. It does not start a cache.
func (n *Network) AddCache(ctx context.Context) (Host, error) {
	if n.Mode != ModeNetns || n.switchNS == "" {
		return Host{}, errors.New("interop: a cache host needs a namespace network")
	}
	id := strings.TrimSuffix(n.switchNS, "-sw")
	a := netip.AddrFrom4([4]byte{10, 77, 0, 2})
	v6 := n.Sender.Addr.Is6()
	if v6 {
		a = netip.AddrFrom16([16]byte{0xfd, 0x77, 15: 2})
	}
	h, err := n.addHost(ctx, id, "cache", a, "", v6)
	if err != nil {
		return h, err
	}
	return h, waitLinkUp(ctx, h)
}

// NginxCache is a running nginx cache.
type NginxCache struct {
	Host Host
	// URL is the base URL receivers repair through.
	URL string
	// Dir holds its configuration, cache, logs and temporary files.
	Dir string
	cmd *exec.Cmd
	// done is closed when nginx exited.
	done chan struct{}
	err  error
}

// NginxOptions configure StartNginxCache.
type NginxOptions struct {
	// Upstream is the origin's https base URL ("https://10.77.0.1:4434").
	Upstream string
	// Cert and Key are the cache's certificate and key (PEM).
	Cert, Key string
	// Dir is where nginx's files go (created).
	Dir string
	// ExactRanges keys the cache on the exact range asked, passed on to
	// the origin, instead of slicing: receivers that lost the same bytes
	// (loss upstream of them all) ask the same ranges, which are fetched
	// once, and nothing more than asked is fetched. With slices (the
	// default) a range costs whole CacheSlice slices, shared by every
	// receiver whatever they lost within them.
	ExactRanges bool
}

// StartNginxCache starts nginx on host as a caching reverse proxy of
// o.Upstream over TLS: proxy_cache keyed by the URI and the slice, slices
// of CacheSlice fetched from the origin with a Range request each, one
// upstream fetch per slice however many receivers ask at once
// (proxy_cache_lock), every request and slice fetch logged (CacheLog).
// It returns once nginx listens; Stop ends it.
func StartNginxCache(ctx context.Context, host Host, o NginxOptions) (*NginxCache, error) {
	if err := NginxAvailable(); err != nil {
		return nil, err
	}
	for _, d := range []string{"cache", "tmp"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	listen := netipJoin(host.Addr, CachePort)
	keying := fmt.Sprintf(`			slice %d;
			proxy_cache_key $uri$is_args$args$slice_range;
			proxy_set_header Range $slice_range;`, CacheSlice)
	if o.ExactRanges {
		keying = `			proxy_cache_key $uri$is_args$args|$http_range;
			proxy_set_header Range $http_range;`
	}
	conf := fmt.Sprintf(`# h3m interop: a CDN cache between receivers and origin.
daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 1024; }
http {
	log_format h3m '$request_uri|$http_range|$status|$body_bytes_sent|$upstream_cache_status|$slice_range|$upstream_status|$upstream_bytes_received';
	access_log %[1]s/access.log h3m;
	log_subrequest on;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	proxy_cache_path %[1]s/cache levels=1:2 keys_zone=h3m:10m max_size=1g inactive=10m use_temp_path=off;
	# Connections to the origin are kept and reused: a TLS handshake per
	# fetch would cost the origin more than a small repair does.
	upstream h3m_origin {
		server %[6]s;
		keepalive 16;
	}
	server {
		listen %[2]s ssl http2;
		ssl_certificate %[3]s;
		ssl_certificate_key %[4]s;
		ssl_protocols TLSv1.3;
		location / {
%[5]s
			proxy_cache h3m;
			proxy_cache_valid 200 206 10m;
			proxy_cache_lock on;
			proxy_cache_lock_age 30s;
			proxy_cache_lock_timeout 30s;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_ssl_protocols TLSv1.3;
			proxy_ssl_session_reuse on;
			proxy_pass https://h3m_origin;
		}
	}
}
`, o.Dir, listen, o.Cert, o.Key, keying, strings.TrimPrefix(strings.TrimSuffix(o.Upstream, "/"), "https://"))
	confPath := filepath.Join(o.Dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(o.Dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	// Not bound to ctx: Stop ends it (a context kill would leave the
	// namespace's listener to the next run).
	cmd := host.Command(context.WithoutCancel(ctx), "nginx", "-p", o.Dir, "-c", confPath, "-e", filepath.Join(o.Dir, "error.log"))
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("interop: starting nginx: %w", err)
	}
	c := &NginxCache{Host: host, URL: "https://" + listen, Dir: o.Dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	for {
		ok, err := host.Listening(ctx, CachePort)
		if ok {
			return c, nil
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(filepath.Join(o.Dir, "error.log"))
			return nil, fmt.Errorf("interop: nginx exited (%v): %s", c.err, lastLines(b, 5))
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("interop: nginx not listening: %w (%v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func netipJoin(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}

// Stop ends nginx (its process group) and waits for it.
func (c *NginxCache) Stop() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
	return nil
}

// CacheLogEntry is one line of the cache's access log: a request of a
// receiver, or (Subrequest) the slice fetch it made.
type CacheLogEntry struct {
	URI, Range string
	Status     int
	BodyBytes  int64
	// CacheStatus is nginx's $upstream_cache_status: MISS when the slice
	// was fetched from the origin, HIT when served from the cache, "" for a
	// request that did not consult the cache by itself.
	CacheStatus string
	Slice       string // $slice_range: "bytes=65536-131071"
	// UpstreamBytes is what came from the origin for it.
	UpstreamBytes int64
}

// Fetched reports whether the entry is a fetch from the origin.
func (e CacheLogEntry) Fetched() bool {
	switch e.CacheStatus {
	case "MISS", "EXPIRED", "BYPASS", "UPDATING", "STALE":
		return e.UpstreamBytes > 0 || e.CacheStatus == "MISS"
	}
	return false
}

// CacheLog reads the access log.
func (c *NginxCache) CacheLog() ([]CacheLogEntry, error) {
	f, err := os.Open(filepath.Join(c.Dir, "access.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []CacheLogEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), "|")
		if len(p) != 8 {
			continue
		}
		e := CacheLogEntry{URI: p[0], Range: dash(p[1]), CacheStatus: dash(p[4]), Slice: dash(p[5])}
		e.Status, _ = strconv.Atoi(p[2])
		e.BodyBytes, _ = strconv.ParseInt(p[3], 10, 64)
		// Several upstreams are listed "a, b" or "a : b"; the sum is what
		// came from the origin.
		for f := range strings.FieldsFuncSeq(p[7], func(r rune) bool { return r == ',' || r == ':' || r == ' ' }) {
			n, _ := strconv.ParseInt(f, 10, 64)
			e.UpstreamBytes += n
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// SliceFetches counts the origin fetches in a cache log by resource and
// slice (or, for a cache keyed on exact ranges, range).
func SliceFetches(log []CacheLogEntry) map[string]int {
	m := map[string]int{}
	for _, e := range log {
		if e.Fetched() {
			key := e.Slice
			if key == "" {
				key = e.Range
			}
			m[e.URI+" "+key]++
		}
	}
	return m
}
