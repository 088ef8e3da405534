package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// podrun's firewall is one nftables table of its own, "ip <bridge>"; the
// only rules it puts anywhere else are two accepts in an iptables FORWARD
// chain that already exists (forward.go). The table's rules are rewritten
// from the state as a whole, in one atomic batch, so they never need
// diffing and whatever was done to them by hand is undone. The batch keeps the chains and flushes
// their rules: deleting a base chain waits for an RCU grace period (~10 ms
// measured), recreating the table only happens when the chains are not as
// podrun makes them. Rules:
//
//	prerouting  (nat, dstnat): fib daddr type local jump hostports
//	output      (nat, dstnat): ip daddr != 127.0.0.0/8 fib daddr type local jump hostports
//	hostports:   [ip daddr HOSTIP] meta l4proto P th dport HP dnat to PODIP:CP   (one per port)
//	postrouting (nat, srcnat): ip saddr SUBNET oifname != BRIDGE masquerade            (outbound)
//	                           ct status dnat ip saddr SUBNET oifname BRIDGE masquerade (pod -> a hostPort, own one included)
//	forward  (filter, filter): oifname BRIDGE ct state established,related accept        (replies to the pods' own connections)
//	                           oifname BRIDGE ct status dnat accept                      (published hostPorts)
//	                           oifname BRIDGE iifname BRIDGE accept                      (pod -> pod through the host)
//	                           oifname BRIDGE drop                                       (nothing else reaches a pod)
//
// A FORWARD chain of another tool's with policy drop still drops what this
// chain accepts: see forward.go for podrun's accept rules in it.
//
// The forward chain keeps ip_forward, which podrun turns on, from opening
// every pod port to whoever routes the pod subnet to this host: only what
// a pod publishes as a hostPort is reachable from outside the host.
//
// Loopback destinations are left to the userspace proxy: kernel NAT to a
// pod from 127.0.0.1 needs route_localnet, which exposes the host's
// loopback services to the bridge.

const ipsDstNAT = 0x20 // IPS_DST_NAT in include/uapi/linux/netfilter/nf_conntrack_common.h

func (n *Network) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: n.cfg.Bridge}
}

// writeRules makes podrun's table hold the rules for st.
func (n *Network) writeRules(st *state) error {
	err := n.writeTable(st, false)
	if err != nil {
		// The chains exist with other hooks or types: start afresh.
		err = n.writeTable(st, true)
	}
	return err
}

func (n *Network) writeTable(st *state, recreate bool) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := n.table()
	c.AddTable(t)
	if recreate {
		c.DelTable(t)
		c.AddTable(t)
	}
	var chains []*nftables.Chain
	chain := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		ch := &nftables.Chain{Name: name, Table: t, Hooknum: hook, Priority: prio}
		switch {
		case hook == nftables.ChainHookForward:
			ch.Type = nftables.ChainTypeFilter
		case hook != nil:
			ch.Type = nftables.ChainTypeNAT
		}
		ch = c.AddChain(ch)
		c.FlushChain(ch)
		chains = append(chains, ch)
		return ch
	}
	pre := chain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := chain("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := chain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	hp := chain("hostports", nil, nil)
	fwd := chain("forward", nftables.ChainHookForward, nftables.ChainPriorityFilter)

	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: hp.Name}
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: cat(localDst(), []expr.Any{jump})})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: cat(
		ipField(16, netip.MustParsePrefix("127.0.0.0/8"), expr.CmpOpNeq), localDst(), []expr.Any{jump})})
	for _, e := range st.Pods {
		if !e.bridged() || e.Terminating {
			continue
		}
		pod, err := netip.ParseAddr(e.IP)
		if err != nil {
			return fmt.Errorf("pod %s has a bad IP in the state: %w", e.Name, err)
		}
		for _, p := range e.Ports {
			if !p.loopback() {
				c.AddRule(&nftables.Rule{Table: t, Chain: hp, Exprs: dnat(p, pod)})
			}
		}
	}
	src := ipField(12, n.subnet, expr.CmpOpEq)
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(src, oifname(n.cfg.Bridge, expr.CmpOpNeq), []expr.Any{&expr.Masq{}})})
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: cat(dnatted(), src, oifname(n.cfg.Bridge, expr.CmpOpEq), []expr.Any{&expr.Masq{}})})
	toPods := oifname(n.cfg.Bridge, expr.CmpOpEq)
	accept := []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(toPods, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept)})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(toPods, dnatted(), accept)})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(toPods, iifname(n.cfg.Bridge), accept)})
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: cat(toPods, []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("write nftables table ip %s: %w", t.Name, err)
	}
	return nil
}

func iifname(name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// ctState matches connections in any of the states of mask: ct state ….
func ctState(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// rulesKey identifies the rules writeRules makes for st.
func (n *Network) rulesKey(st *state) string {
	var keys []string
	for _, e := range st.Pods {
		if !e.bridged() || e.Terminating {
			continue
		}
		for _, p := range e.Ports {
			if !p.loopback() {
				keys = append(keys, fmt.Sprintf("%s:%s:%d>%s:%d", p.Protocol, p.HostIP, p.HostPort, e.IP, p.ContainerPort))
			}
		}
	}
	sort.Strings(keys)
	return fmt.Sprintf("v2 %s %s %s", n.cfg.Bridge, n.subnet, strings.Join(keys, " "))
}

func (n *Network) hasTable() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = c.ListTableOfFamily(n.cfg.Bridge, nftables.TableFamilyIPv4)
	return err == nil
}

// deleteRules removes podrun's table if it exists. Asking first is a
// dump; a delete of a missing table is a commit that waits for RCU.
func (n *Network) deleteRules() error {
	if !n.hasTable() {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := n.table()
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table ip %s: %w", t.Name, err)
	}
	return nil
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// localDst matches packets for an address of this host: fib daddr type local.
func localDst() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// ipField matches the IPv4 address at offset (12 source, 16 destination)
// against a prefix.
func ipField(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := binaryutil.BigEndian.PutUint32(^uint32(0) << (32 - p.Bits()))
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: a[:]},
	}
}

func oifname(name string, op expr.CmpOp) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// dnatted matches connections whose destination was translated: ct status dnat.
func dnatted() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

var l4proto = map[string]byte{"TCP": unix.IPPROTO_TCP, "UDP": unix.IPPROTO_UDP, "SCTP": unix.IPPROTO_SCTP}

func dnat(p Port, pod netip.Addr) []expr.Any {
	var ex []expr.Any
	if p.HostIP != "" {
		ex = ipField(16, netip.PrefixFrom(netip.MustParseAddr(p.HostIP), 32), expr.CmpOpEq)
	}
	podIP := pod.As4()
	return append(ex,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4proto[p.Protocol]}},
		// TCP, UDP and SCTP all carry the destination port at offset 2.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(p.HostPort))},
		&expr.Immediate{Register: 1, Data: podIP[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(uint16(p.ContainerPort))},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
	)
}
