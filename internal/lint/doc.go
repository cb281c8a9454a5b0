// Package lint holds source checks of the whole module that go vet and
// staticcheck do not make, written as tests so that `go test ./...` (and CI)
// runs them.
//
// TestNoDeferredFuncReadsANamedResult forbids the pattern that made every
// startup error of service.Open a nil-pointer panic:
//
//	func Open(...) (s *Service, err error) {
//		s = &Service{...}
//		defer func() {
//			if err != nil {
//				s.Close() // s is nil here: `return nil, err` set it
//			}
//		}()
//		...
//		return nil, err
//	}
//
// A function with named results, a deferred function literal that reads a
// named result (other than a final error result), and a return statement
// with explicit values is reported at file:line: the deferred call sees the
// values the return statement assigned, not those the body built. Keep the
// value in a local variable, or return the named results bare.
//
// TestProductionFunctions_fitInEightyLines keeps every production function
// within 80 lines, from its func keyword to its closing brace, but those
// listed in funclen_test.go's longFuncs, each with the reason it reads best
// whole (a codec's one switch over the wire fields, say). An entry that no
// longer applies fails the test too.
package lint
