package main

import (
	"strings"

	"github.com/h3m-project/h3m/unicast/wellknown"
)

// repairURLs is a repeatable --repair-url flag: the https base URLs of the
// HTTP caches receivers repair and fall back through, nearest first
// (spec/unicast.md, "Repair through caches").
type repairURLs []string

func (r *repairURLs) String() string { return strings.Join(*r, " ") }

func (r *repairURLs) Set(v string) error {
	u, err := wellknown.ParseRepairURL(v)
	if err != nil {
		return err
	}
	if len(*r) >= wellknown.MaxRepairURLs {
		return usagef("at most %d repair URLs", wellknown.MaxRepairURLs)
	}
	*r = append(*r, u.String())
	return nil
}
