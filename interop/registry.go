package interop

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Role says which side of a test an implementation can play.
type Role string

// Roles. RoleBoth implementations appear as senders and as receivers.
const (
	RoleSender   Role = "sender"
	RoleReceiver Role = "receiver"
	RoleBoth     Role = "both"
)

// Implementation is one entry of the registry: how to run a sender and/or
// a receiver of HTTP over multicast QUIC.
type Implementation struct {
	// Name is the registry key; it names the log folders and matrix rows.
	Name string `json:"-"`
	// Role is sender, receiver or both.
	Role Role `json:"role"`
	// URL points at the implementation's home (shown in the JSON results).
	URL string `json:"url,omitempty"`
	// Desc is a one-line description.
	Desc string `json:"desc,omitempty"`
	// Optional entries run only when named explicitly (e.g. the broken
	// entry that proves the checks can fail).
	Optional bool `json:"optional,omitempty"`
	// Sender and Receiver say how to start each side. The one the role
	// needs must be present.
	Sender   *Endpoint `json:"sender,omitempty"`
	Receiver *Endpoint `json:"receiver,omitempty"`
}

// Endpoint is a command template. Every "{NAME}" in Cmd and in Env values
// is replaced by the runner's variable NAME (see the package
// documentation for the list) or by "{h3m}", the path of the h3m binary
// that runs the runner; an unknown name is an error. The process gets the
// runner's variables as its environment, plus Env.
type Endpoint struct {
	Cmd []string          `json:"cmd"`
	Env map[string]string `json:"env,omitempty"`
}

// Registry is the set of known implementations by name.
type Registry map[string]*Implementation

//go:embed registry.json
var defaultRegistry []byte

// DefaultRegistry returns the registry built into h3m (interop/registry.json).
func DefaultRegistry() Registry {
	r, err := ParseRegistry(bytes.NewReader(defaultRegistry))
	if err != nil {
		// The embedded file is checked by the tests; reaching this is a
		// build defect, not a run-time condition.
		panic("interop: embedded registry.json: " + err.Error())
	}
	return r
}

// LoadRegistry reads a registry file.
func LoadRegistry(path string) (Registry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("interop: registry: %w", err)
	}
	defer f.Close()
	r, err := ParseRegistry(f)
	if err != nil {
		return nil, fmt.Errorf("interop: registry %s: %w", path, err)
	}
	return r, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$`)

// ParseRegistry reads a registry: a JSON object mapping each name to an
// Implementation, like the QUIC interop runner's implementations_quic.json.
func ParseRegistry(r io.Reader) (Registry, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var raw map[string]*Implementation
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if len(raw) == 0 {
		return nil, errors.New("no implementations")
	}
	reg := Registry{}
	for name, impl := range raw {
		if impl == nil {
			return nil, fmt.Errorf("%q: null entry", name)
		}
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("%q: name must be 1-40 letters, digits, '.', '_' or '-'", name)
		}
		impl.Name = name
		if err := impl.validate(); err != nil {
			return nil, fmt.Errorf("%q: %w", name, err)
		}
		reg[name] = impl
	}
	return reg, nil
}

func (impl *Implementation) validate() error {
	switch impl.Role {
	case RoleSender, RoleReceiver, RoleBoth:
	default:
		return fmt.Errorf("role %q: want sender, receiver or both", impl.Role)
	}
	if impl.CanSend() {
		if err := impl.Sender.validate(); err != nil {
			return fmt.Errorf("sender: %w", err)
		}
	}
	if impl.CanReceive() {
		if err := impl.Receiver.validate(); err != nil {
			return fmt.Errorf("receiver: %w", err)
		}
	}
	return nil
}

func (e *Endpoint) validate() error {
	if e == nil {
		return errors.New("missing (the role needs it)")
	}
	if len(e.Cmd) == 0 || e.Cmd[0] == "" {
		return errors.New("cmd: empty")
	}
	for _, s := range e.Cmd {
		if err := checkTemplate(s); err != nil {
			return fmt.Errorf("cmd %q: %w", s, err)
		}
	}
	for k, v := range e.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env: bad name %q", k)
		}
		if err := checkTemplate(v); err != nil {
			return fmt.Errorf("env %s: %w", k, err)
		}
	}
	return nil
}

// CanSend reports whether the implementation plays the sender.
func (impl *Implementation) CanSend() bool { return impl.Role == RoleSender || impl.Role == RoleBoth }

// CanReceive reports whether the implementation plays the receiver.
func (impl *Implementation) CanReceive() bool {
	return impl.Role == RoleReceiver || impl.Role == RoleBoth
}

// Endpoint returns the template for a role ("sender" or "receiver").
func (impl *Implementation) Endpoint(role Role) *Endpoint {
	if role == RoleSender {
		return impl.Sender
	}
	return impl.Receiver
}

// Names returns the implementations that can play role, sorted; optional
// entries are left out unless withOptional.
func (r Registry) Names(role Role, withOptional bool) []string {
	var out []string
	for name, impl := range r {
		if impl.Optional && !withOptional {
			continue
		}
		if (role == RoleSender && impl.CanSend()) || (role == RoleReceiver && impl.CanReceive()) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// templateRE matches a placeholder: {NAME}.
var templateRE = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func checkTemplate(s string) error {
	if strings.Count(s, "{") != len(templateRE.FindAllString(s, -1)) {
		return errors.New("unbalanced or malformed {placeholder}")
	}
	return nil
}

// Expand replaces every {NAME} in s by vars[NAME].
func Expand(s string, vars map[string]string) (string, error) {
	var missing []string
	out := templateRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown placeholder {%s} in %q", strings.Join(missing, "}, {"), s)
	}
	return out, nil
}

// Command expands the endpoint for vars: the argument vector and the
// extra environment (NAME=value, sorted).
func (e *Endpoint) Command(vars map[string]string) (argv, env []string, err error) {
	for _, s := range e.Cmd {
		x, err := Expand(s, vars)
		if err != nil {
			return nil, nil, err
		}
		argv = append(argv, x)
	}
	keys := make([]string, 0, len(e.Env))
	for k := range e.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x, err := Expand(e.Env[k], vars)
		if err != nil {
			return nil, nil, err
		}
		env = append(env, k+"="+x)
	}
	return argv, env, nil
}
