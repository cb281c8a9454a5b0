// Package deferred holds cases for the lint check of deferred function
// literals that read named results. `// want NAME` marks a line the check
// must report for the named result NAME; every other line must stay quiet.
package deferred

import "errors"

type Service struct{ store *Store }

type Store struct{}

func (s *Service) Close() error { return nil }
func (s *Store) Close() error   { return nil }

func openStore() (*Store, error) { return nil, errors.New("no store") }

// Open is service.Open before the fix: every error path panicked.
func Open() (s *Service, err error) {
	s = &Service{}
	defer func() {
		if err != nil {
			s.Close() // want s
		}
	}()
	if s.store, err = openStore(); err != nil {
		return nil, err
	}
	return s, nil
}

// Method receivers, several results, a return nested in a block.
func (s *Service) reopen() (st *Store, n int, err error) {
	defer func() {
		if err != nil && st != nil { // want st
			st.Close()
		}
		_ = n // want n
	}()
	for i := 0; i < 3; i++ {
		if i == 2 {
			return nil, 0, errors.New("no")
		}
	}
	return
}

// A deferred literal inside a function literal is checked too.
var _ = func() (s *Store, err error) {
	defer func() { _ = s.Close() }() // want s
	return nil, errors.New("x")
}

// Quiet: the deferred literal reads only the final error result.
func onlyErr() (s *Store, err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, errors.New("cleanup"))
		}
	}()
	return nil, errors.New("x")
}

// Quiet: bare returns only, so the named results are what the body built.
func bare() (s *Store, err error) {
	s = &Store{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s, err = openStore()
	return
}

// Quiet: the fixed form, a local variable and unnamed results.
func fixed() (*Service, error) {
	s := &Service{}
	opened := false
	defer func() {
		if !opened {
			s.Close()
		}
	}()
	var err error
	if s.store, err = openStore(); err != nil {
		return nil, err
	}
	opened = true
	return s, nil
}

// Quiet: the literal declares its own s; a deferred call that is not a
// literal; an explicit return inside a nested literal only.
func shadowed() (s *Store, err error) {
	defer func() {
		s := &Store{}
		s.Close()
	}()
	defer s.Close()
	f := func() (*Store, error) { return nil, nil }
	s, err = f()
	return
}
