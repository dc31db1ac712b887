//go:build !race

package main

// raceBuild says the tests run with the race detector, so the binary they
// build for child processes is built with it too.
const raceBuild = false
