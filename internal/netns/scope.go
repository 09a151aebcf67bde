//go:build linux

package netns

import (
	"errors"
	"fmt"
)

// Scope lets a program (rather than a test) use this package: it collects
// the clean-ups New and Veth register and runs them on Close, and turns
// their fatal errors into an error returned by Run.
type Scope struct {
	cleanups []func()
	errs     []error
}

// failure is the panic value of Scope.Fatal.
type failure struct{ err error }

// Run calls fn and returns the error of a Fatal call inside it, if any.
func (s *Scope) Run(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = f.err
		}
	}()
	fn()
	return nil
}

// Close runs the clean-ups, last registered first, and returns the errors
// reported meanwhile.
func (s *Scope) Close() error {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
	return errors.Join(s.errs...)
}

// Helper implements TB.
func (s *Scope) Helper() {}

// Cleanup implements TB.
func (s *Scope) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

// Fatal implements TB: it ends the function given to Run.
func (s *Scope) Fatal(args ...any) { panic(failure{errors.New(fmt.Sprint(args...))}) }

// Fatalf implements TB.
func (s *Scope) Fatalf(format string, args ...any) { panic(failure{fmt.Errorf(format, args...)}) }

// Skipf implements TB: for a program, what a test would skip is an error.
func (s *Scope) Skipf(format string, args ...any) { s.Fatalf(format, args...) }

// Errorf implements TB.
func (s *Scope) Errorf(format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf(format, args...))
}
