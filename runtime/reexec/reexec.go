// Package reexec runs the runtime's re-executions of the binary (container
// init, pod pause) from its init(), as early as Go's package initialisation
// allows: right after the runtime package, before the Kubernetes, gRPC and
// networking packages the rest of podrun imports, whose initialisation
// would otherwise be paid again by every container start and every exec.
// package main imports it blank.
package reexec

import "github.com/podrun/podrun/runtime"

func init() { runtime.MaybeReexec() }
