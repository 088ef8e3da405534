package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// Another tool's firewall (Docker, firewalld, an admin's iptables -P FORWARD
// DROP) may own a FORWARD chain with a drop policy. In nftables every base
// chain on a hook has to accept a packet, so the accept in podrun's own
// table does not get past it: podrun also puts two accept rules into the
// iptables filter table's FORWARD chain, as the CNI firewall plugin and
// netavark do, while its own table exists:
//
//	-A FORWARD -o BRIDGE -m comment --comment podrun:BRIDGE -j ACCEPT   (podrun's forward chain still filters what reaches the pods)
//	-A FORWARD -i BRIDGE -m comment --comment podrun:BRIDGE -j ACCEPT   (pods -> anywhere)
//
// They are written by the iptables binary of that table's backend, so the
// table stays in the form iptables-nft manages (a native nft expression in
// it would make iptables-nft, and so Docker, refuse the table). Nothing is
// run when no such table exists; the comment is what removal matches.

// forwardComment marks podrun's rules for this bridge.
func (n *Network) forwardComment() string { return "podrun:" + n.cfg.Bridge }

func (n *Network) forwardSpecs() [][]string {
	tail := []string{"-m", "comment", "--comment", n.forwardComment(), "-j", "ACCEPT"}
	return [][]string{
		append([]string{"-o", n.cfg.Bridge}, tail...),
		append([]string{"-i", n.cfg.Bridge}, tail...),
	}
}

// iptablesCommands returns, for each iptables filter table with a FORWARD
// chain that exists (nf_tables "ip filter", legacy x_tables "filter"), the
// iptables binary that manages it. A table without a binary is reported in
// missing.
func iptablesCommands() (cmds, missing []string) {
	if c, err := nftables.New(); err == nil {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"}
		if _, err := c.ListChain(t, "FORWARD"); err == nil {
			if bin := iptablesBinary("iptables-nft", "nf_tables"); bin != "" {
				cmds = append(cmds, bin)
			} else {
				missing = append(missing, "nf_tables table ip filter")
			}
		}
	}
	if names, err := os.ReadFile("/proc/net/ip_tables_names"); err == nil && hasLine(names, "filter") {
		if bin := iptablesBinary("iptables-legacy", "legacy"); bin != "" {
			cmds = append(cmds, bin)
		} else {
			missing = append(missing, "legacy iptables table filter")
		}
	}
	return cmds, missing
}

// iptablesBinary finds name, else an "iptables" whose version names backend.
func iptablesBinary(name, backend string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p, err := exec.LookPath("iptables")
	if err != nil {
		return ""
	}
	out, err := exec.Command(p, "-V").Output()
	if err != nil || !strings.Contains(string(out), "("+backend+")") {
		return ""
	}
	return p
}

func hasLine(b []byte, line string) bool {
	for l := range bytes.Lines(b) {
		if string(bytes.TrimSpace(l)) == line {
			return true
		}
	}
	return false
}

func iptables(bin string, args ...string) ([]byte, error) {
	out, err := exec.Command(bin, append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s -w %s: %w: %s", bin, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// ensureForward inserts podrun's FORWARD accept rules where a filter table
// exists and they are missing. A failure is logged, not returned: under an
// accepting policy pods work without the rules.
func (n *Network) ensureForward() {
	cmds, missing := iptablesCommands()
	for _, m := range missing {
		n.log.Warn("an iptables FORWARD chain exists but no iptables binary to add podrun's accept rules to it: its policy may drop pod traffic", "table", m)
	}
	for _, bin := range cmds {
		// One listing instead of a -C per rule: each run of the binary
		// costs 35-60 ms here.
		out, err := iptables(bin, "-S", "FORWARD")
		if err != nil {
			n.log.Warn("list the FORWARD chain", "err", err)
			continue
		}
		have := n.ownForwardRules(out)
		for _, spec := range n.forwardSpecs() {
			rule := append([]string{"FORWARD"}, spec...)
			if slices.ContainsFunc(have, func(r []string) bool { return slices.Equal(r, rule) }) {
				continue
			}
			if _, err := iptables(bin, append([]string{"-I"}, rule...)...); err != nil {
				n.log.Warn("add podrun's FORWARD accept rule", "err", err)
			}
		}
	}
}

// removeForward deletes every FORWARD rule that carries this bridge's
// comment, and nothing else.
func (n *Network) removeForward() error {
	cmds, _ := iptablesCommands()
	var errs []error
	for _, bin := range cmds {
		out, err := iptables(bin, "-S", "FORWARD")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, args := range n.ownForwardRules(out) {
			if _, err := iptables(bin, append([]string{"-D"}, args...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ownForwardRules picks from iptables -S output the rules with this
// bridge's comment, as arguments for -D (chain first).
func (n *Network) ownForwardRules(listing []byte) [][]string {
	var rules [][]string
	for l := range bytes.Lines(listing) {
		f := strings.Fields(string(l))
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		own := false
		for i := 1; i+1 < len(f); i++ {
			// iptables -S quotes the comment; a quoted comment with
			// spaces spans fields and never equals ours.
			if c := n.forwardComment(); f[i] == "--comment" && (f[i+1] == c || f[i+1] == `"`+c+`"`) {
				f[i+1], own = c, true
			}
		}
		if own {
			rules = append(rules, f[1:])
		}
	}
	return rules
}
