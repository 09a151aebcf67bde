package forger

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// Discover reads the origin's session description at originURL (an https
// URL) with hc, over TLS like any receiver, and returns the advertisements
// of the sessions it lists, keys included.
func Discover(ctx context.Context, hc *http.Client, originURL string) ([]altsvc.Advertisement, error) {
	u, err := url.Parse(originURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("forger: discover: origin URL %q", originURL)
	}
	wk := url.URL{Scheme: u.Scheme, Host: u.Host, Path: wellknown.Path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wk.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("forger: discover: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("forger: discover: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("forger: discover: %s: %s", wk.String(), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, wellknown.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("forger: discover: %w", err)
	}
	d, err := wellknown.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("forger: discover: %w", err)
	}
	ads := make([]altsvc.Advertisement, 0, len(d.Sessions))
	for _, s := range d.Sessions {
		ads = append(ads, s.Advertisement)
	}
	return ads, nil
}
