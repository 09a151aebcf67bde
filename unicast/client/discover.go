package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ErrNoAdvertisement is returned by Discover when the server neither serves
// a well-known description nor sends an h3m Alt-Svc field.
var ErrNoAdvertisement = errors.New("client: the server advertises no h3m session")

// Discover learns the multicast sessions of the origin of rawURL (an https
// URL) with hc: from the well-known description if the server serves one,
// otherwise from the Alt-Svc field of its responses (then every session is
// taken as active and there is no catalogue; wellknown.Description.FromAltSvc is set).
// A malformed description or Alt-Svc field is an error: nothing is taken
// from a document that does not parse.
func Discover(ctx context.Context, hc *http.Client, rawURL string) (*wellknown.Description, error) {
	return discover(ctx, hc, rawURL, time.Time{})
}

// discover is Discover; with a non-zero after it asks only for the
// catalogue entries pushed since.
func discover(ctx context.Context, hc *http.Client, rawURL string, after time.Time) (*wellknown.Description, error) {
	q := url.Values{}
	if !after.IsZero() {
		q.Set(wellknown.ResourcesAfterParam, after.UTC().Format(time.RFC3339Nano))
	}
	d, _, err := discoverIf(ctx, hc, rawURL, q, "")
	return d, err
}

// errNotModified is returned by discoverIf when the description is still
// the one of the entity tag given.
var errNotModified = errors.New("client: description not modified")

// discoverIf reads the description with query q (the catalogue entries a
// read asks for: Description.ResourcesAfter, ResourcesFrom; none: all),
// conditional on etag (the entity tag of the description last read for
// the same query; "" for none): it returns errNotModified when the origin
// answers 304. The entity tag of what it read is returned with it.
func discoverIf(ctx context.Context, hc *http.Client, rawURL string, q url.Values, etag string) (*wellknown.Description, string, error) {
	u, err := originURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	wk := u.JoinPath(wellknown.Path)
	wk.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wk.String(), nil)
	if err != nil {
		return nil, "", err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("client: discover: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		b, err := io.ReadAll(io.LimitReader(resp.Body, wellknown.MaxSize+1))
		if err != nil {
			return nil, "", fmt.Errorf("client: discover: reading %s: %w", wk, err)
		}
		d, err := wellknown.Parse(b)
		if err != nil {
			return nil, "", fmt.Errorf("client: discover: %s: %w", wk, err)
		}
		return d, resp.Header.Get("Etag"), nil
	case http.StatusNotModified:
		if etag == "" {
			return nil, "", fmt.Errorf("client: discover: %s: 304 to an unconditional request", wk)
		}
		return nil, etag, errNotModified
	case http.StatusNotFound, http.StatusGone, http.StatusMethodNotAllowed, http.StatusNotImplemented:
	default:
		return nil, "", fmt.Errorf("client: discover: %s: %w", wk, &StatusError{Path: wellknown.Path, Code: resp.StatusCode, Status: resp.Status})
	}
	alt := resp.Header.Values("Alt-Svc")
	if len(alt) == 0 {
		// The server may only advertise on its content: ask for the URL given.
		r2, err := get(ctx, hc, http.MethodHead, rawURL)
		if err != nil {
			return nil, "", fmt.Errorf("client: discover: %w", err)
		}
		r2.Body.Close()
		alt = r2.Header.Values("Alt-Svc")
	}
	d, err := describeAltSvc(alt)
	return d, "", err
}

// DescribeAltSvc builds a description (every session active, no
// catalogue) from the lines of an Alt-Svc field: an advertisement given to
// the user, for Config.Sessions.
func DescribeAltSvc(lines ...string) (*wellknown.Description, error) {
	return describeAltSvc(lines)
}

// describeAltSvc builds a description from Alt-Svc field lines.
func describeAltSvc(lines []string) (*wellknown.Description, error) {
	if len(lines) == 0 {
		return nil, ErrNoAdvertisement
	}
	v := strings.Join(lines, ", ")
	ads, clear, err := altsvc.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("client: discover: malformed Alt-Svc field: %w", err)
	}
	d := &wellknown.Description{Version: wellknown.Version, FromAltSvc: true}
	if clear {
		return d, nil
	}
	if len(ads) == 0 {
		return nil, ErrNoAdvertisement
	}
	seen := map[string]bool{}
	for i := range ads {
		if err := ads[i].Validate(); err != nil {
			return nil, fmt.Errorf("client: discover: invalid Alt-Svc advertisement (alternative %d): %w", i, err)
		}
		id := wellknown.SessionID(&ads[i])
		if seen[id] {
			continue
		}
		seen[id] = true
		d.Sessions = append(d.Sessions, wellknown.SessionInfo{ID: id, State: wellknown.StateActive, AltSvc: ads[i].String(), Advertisement: ads[i]})
	}
	return d, nil
}

// originURL checks that rawURL is an https URL and returns its origin.
func originURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("client: URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: URL %q: want https://host[:port]/... (session keys only travel over TLS)", rawURL)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func get(ctx context.Context, hc *http.Client, method, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	return hc.Do(req)
}

// StatusError reports an HTTP status the client cannot use.
type StatusError struct {
	Path   string
	Code   int
	Status string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("client: %s: unexpected status %s", e.Path, e.Status)
}
