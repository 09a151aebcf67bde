package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

// applyConfig sets the flags named in a JSON config file that were not given
// on the command line.
func applyConfig(fs *flag.FlagSet, file string) error {
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return usagef("--config: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return usagef("--config %s: %v", file, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for k, v := range m {
		if fs.Lookup(k) == nil || k == "config" {
			return usagef("--config %s: unknown setting %q", file, k)
		}
		if given[k] {
			continue
		}
		s := fmt.Sprint(v)
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			s = fmt.Sprint(int64(f))
		}
		if err := fs.Set(k, s); err != nil {
			return usagef("--config %s: %s: %v", file, k, err)
		}
	}
	return nil
}
