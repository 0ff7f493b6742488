// Package repotest holds checks on the repository itself rather than on
// code, such as what git tracks. It has no code of its own; see its tests.
package repotest
