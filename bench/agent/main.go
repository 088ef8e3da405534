// Command agent is the workload of the benchmark pods. It is built static
// and bind-mounted into busybox containers (a hostPath volume), so podrun
// and podman run the very same process. It appends "<boottime> <name>
// <what>" lines to a log file, with CLOCK_BOOTTIME in nanoseconds (the
// clock of /proc/uptime, shared by the host and every container), where
// busybox only offers /proc/uptime's 10 ms.
//
//	agent LOG NAME             log Started, run until SIGTERM, log Exiting, exit 0
//	agent -exit LOG NAME       log Started and exit 0 (an init container)
//	agent -http :8080 LOG NAME also serve 200 OK over HTTP (for HTTP probes)
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	exit := flag.Bool("exit", false, "exit 0 right after logging Started")
	httpAddr := flag.String("http", "", "serve 200 OK on this address")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: agent [-exit] [-http ADDR] LOG NAME")
		os.Exit(2)
	}
	file, name := flag.Arg(0), flag.Arg(1)
	// Ask for SIGTERM before announcing Started: a stop may follow at once.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if *httpAddr != "" {
		go func() {
			err := http.ListenAndServe(*httpAddr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte("ok\n"))
			}))
			fmt.Fprintln(os.Stderr, "agent:", err)
			os.Exit(1)
		}()
	}
	logEvent(file, name, "Started")
	if *exit {
		return
	}
	<-term
	logEvent(file, name, "Exiting")
}

func logEvent(file, name, what string) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		fmt.Fprintln(os.Stderr, "agent: clock:", err)
		os.Exit(1)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
	// One write per line: O_APPEND keeps concurrent writers' lines whole.
	_, err = fmt.Fprintf(f, "%d.%09d %s %s\n", ts.Sec, ts.Nsec, name, what)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}
