// Command wa-worker runs one organization's WhatsApp session as a
// go-plugin server (package worker/server). Only wa-supervisor starts it.
// `make build` does not build this package: bin/wa-worker is a hard link to
// wa-supervisor, which runs worker/server when started under this name.
// This command is the worker alone, for the tests that build one with
// their own tags and for measuring the two-binary layout.
package main

import "github.com/wa-sidecar/wa-sidecar/worker/server"

func main() { server.Main() }
