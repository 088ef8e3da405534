package runtime

// The pause process (pause.c) runs from a C constructor, before the Go
// runtime starts; this import makes the package build it.

import "C"
