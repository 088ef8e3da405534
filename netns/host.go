package netns

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
)

// NFTablesWorks checks that the kernel answers nftables requests, which
// podrun's NAT and hostPorts need.
func NFTablesWorks() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.ListTables(); err != nil {
		return fmt.Errorf("nftables (the kernel needs nf_tables: modprobe nf_tables): %w", err)
	}
	return nil
}

// IPForward reports net.ipv4.ip_forward, which podrun turns on with the
// first pod network.
func IPForward() (bool, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// HostResolvConf is the host resolv.conf pods' DNS comes from and its
// nameservers.
func HostResolvConf() (path string, servers []string, err error) {
	path, b, err := readHostResolvConf()
	if err != nil {
		return "", nil, err
	}
	servers, _, _ = parseResolvConf(b)
	return path, servers, nil
}
