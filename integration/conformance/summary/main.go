// Command summary reads `go test -json` on its standard input, prints one
// line per conformance scenario (and the output of the failed ones), and
// ends with "N passed, M failed" (", K skipped" when some skipped). It
// exits 1 when a scenario failed or when the test binary itself failed.
//
//	go test -json -run TestConformance ./integration/ | go run ./integration/conformance/summary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// event is the part of test2json's output this needs.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

const parent = "TestConformance"

func main() {
	output := map[string]*strings.Builder{} // test name -> its output
	var passed, failed, skipped int
	var buildFailed bool
	var other strings.Builder // output outside any scenario
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // go build errors arrive as plain text
			continue
		}
		name, isScenario := strings.CutPrefix(e.Test, parent+"/")
		switch e.Action {
		case "output":
			if isScenario {
				if output[name] == nil {
					output[name] = &strings.Builder{}
				}
				output[name].WriteString(e.Output)
			} else {
				other.WriteString(e.Output)
			}
		case "pass", "fail", "skip":
			switch {
			case isScenario:
				fmt.Printf("%-4s %-44s %6.1fs\n", strings.ToUpper(e.Action), name, e.Elapsed)
				switch e.Action {
				case "pass":
					passed++
				case "fail":
					failed++
					fmt.Print(indent(output[name]))
				default:
					skipped++
				}
			case e.Test == "" && e.Action == "fail":
				buildFailed = true
			case e.Test == parent && e.Action == "fail" && passed+failed+skipped == 0:
				buildFailed = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "summary:", err)
		os.Exit(2)
	}
	if buildFailed && passed+failed == 0 {
		fmt.Print(other.String())
	}
	line := fmt.Sprintf("%d passed, %d failed", passed, failed)
	if skipped > 0 {
		line += fmt.Sprintf(", %d skipped", skipped)
	}
	fmt.Println(line)
	if failed > 0 || buildFailed {
		os.Exit(1)
	}
}

func indent(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(b.String(), "\n") {
		if l != "" {
			out.WriteString("     " + l)
		}
	}
	return out.String()
}
