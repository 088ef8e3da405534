package netns

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/podrun/podrun/internal/testutil"
)

// TestForwardDropPolicy gives the host an iptables-nft FORWARD chain with
// policy drop and br_netfilter's bridge-nf-call-iptables, as Docker leaves
// a host, and runs the connectivity tests under it: pod -> pod over the
// bridge, pod -> outside, outside -> hostPort. A filter table the host
// already has keeps its rules and gets its policy back; one the test made
// is deleted.
func TestForwardDropPolicy(t *testing.T) {
	testutil.RequiresRoot(t)
	bin, err := exec.LookPath("iptables-nft")
	if err != nil {
		t.Skip("no iptables-nft")
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := iptables(bin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	filter := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"}
	if ch, err := c.ListChain(filter, "FORWARD"); err == nil {
		policy := "ACCEPT"
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			policy = "DROP"
		}
		t.Cleanup(func() { run("-P", "FORWARD", policy) })
	} else if _, err := c.ListTableOfFamily("filter", nftables.TableFamilyIPv4); err == nil {
		t.Skip("the host's table ip filter has no FORWARD chain")
	} else {
		t.Cleanup(func() {
			c.DelTable(filter)
			if err := c.Flush(); err != nil {
				t.Errorf("delete the test's table ip filter: %v", err)
			}
		})
	}
	const bnf = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if old, err := os.ReadFile(bnf); err != nil {
		t.Logf("no br_netfilter (%v): bridged frames skip FORWARD", err)
	} else if strings.TrimSpace(string(old)) != "1" {
		if err := os.WriteFile(bnf, []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.WriteFile(bnf, old, 0o644) })
	}
	run("-P", "FORWARD", "DROP")

	t.Run("PodConnectivityAndHostPorts", TestPodConnectivityAndHostPorts)
	t.Run("OutboundNATAndExternalClient", TestOutboundNATAndExternalClient)

	// podrun's rules: added once, however many pods and GCs; removed with the last
	// pod; other rules, even ones that look like podrun's, stay.
	n, _ := newTestNetwork(t, 24)
	foreign := [][]string{
		{"-o", "lo", "-j", "DROP"},
		{"-i", n.cfg.Bridge, "-m", "comment", "--comment", n.forwardComment() + " by hand", "-j", "ACCEPT"},
		{"-i", n.cfg.Bridge, "-m", "comment", "--comment", "podrun:other", "-j", "ACCEPT"},
	}
	for _, r := range foreign {
		run(append([]string{"-A", "FORWARD"}, r...)...)
		t.Cleanup(func() { run(append([]string{"-D", "FORWARD"}, r...)...) })
	}
	before := run("-S", "FORWARD")
	var ids []string
	for _, name := range []string{"r1", "r2"} {
		p := Pod{ID: "uid-" + name + "-" + randHex(4), Name: name, Namespace: "test"}
		if _, err := n.Setup(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	// GC checks the rules again (force): still one of each.
	if err := n.GC(context.Background(), func(id string) bool { return slices.Contains(ids, id) }); err != nil {
		t.Fatal(err)
	}
	own := n.ownForwardRules([]byte(run("-S", "FORWARD")))
	want := [][]string{
		append([]string{"FORWARD"}, n.forwardSpecs()[1]...),
		append([]string{"FORWARD"}, n.forwardSpecs()[0]...),
	}
	if !slices.EqualFunc(own, want, slices.Equal) {
		t.Errorf("podrun's FORWARD rules with two pods: %q, want %q", own, want)
	}
	for _, id := range ids {
		if err := n.Teardown(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if after := run("-S", "FORWARD"); after != before {
		t.Errorf("FORWARD after the last pod:\n%s\nwant as before the first:\n%s", after, before)
	}
}
