// Package e2e holds end-to-end tests: they build knockd and knock, run
// them as a user would, and check what they do. It has no code of its
// own outside tests.
package e2e
