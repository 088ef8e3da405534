package netns

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrPortInUse: a hostPort another pod already publishes.
var ErrPortInUse = errors.New("hostPort already in use")

// Port is a container port; only those with HostPort != 0 are published.
type Port struct {
	HostIP        string `json:"hostIP,omitempty"` // "" or 0.0.0.0: all addresses
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // TCP (the default), UDP or SCTP
}

func (p Port) String() string {
	on := "all addresses"
	if p.HostIP != "" {
		on = p.HostIP
	}
	return fmt.Sprintf("hostPort %d/%s on %s", p.HostPort, p.Protocol, on)
}

func (p Port) conflicts(q Port) bool {
	return p.Protocol == q.Protocol && p.HostPort == q.HostPort &&
		(p.HostIP == "" || q.HostIP == "" || p.HostIP == q.HostIP)
}

// loopback reports whether the port is published on a loopback address
// only, which kernel NAT does not serve.
func (p Port) loopback() bool {
	ip, err := netip.ParseAddr(p.HostIP)
	return err == nil && ip.IsLoopback()
}

// hostPorts returns the published ports of a pod, normalised (protocol
// defaulted, all-address host IPs as ""), or an error naming the bad one.
// hostNetwork pods publish their container ports as they are: the kubelet
// requires hostPort == containerPort there.
func hostPorts(ports []Port, hostNetwork bool) ([]Port, error) {
	var out []Port
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		if p.Protocol == "" {
			p.Protocol = "TCP"
		}
		switch p.Protocol {
		case "TCP", "UDP", "SCTP":
		default:
			return nil, fmt.Errorf("%s: unsupported protocol %q (TCP, UDP or SCTP)", p, p.Protocol)
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return nil, fmt.Errorf("%s: ports must be in 1-65535 (containerPort %d)", p, p.ContainerPort)
		}
		if hostNetwork && p.HostPort != p.ContainerPort {
			return nil, fmt.Errorf("%s: a hostNetwork pod's hostPort must equal its containerPort %d", p, p.ContainerPort)
		}
		if p.HostIP != "" {
			ip, err := netip.ParseAddr(p.HostIP)
			if err != nil {
				return nil, fmt.Errorf("%s: invalid hostIP: %w", p, err)
			}
			switch {
			case ip.IsUnspecified():
				p.HostIP = ""
			case ip.Is6() && !ip.IsLoopback() && !hostNetwork:
				return nil, fmt.Errorf("%s: pods have IPv4 addresses only; an IPv6 hostIP other than ::1 is not supported", p)
			default:
				p.HostIP = ip.String()
			}
		}
		if p.Protocol == "SCTP" && p.loopback() && !hostNetwork {
			return nil, fmt.Errorf("%s: SCTP is not published on loopback addresses (no userspace SCTP proxy)", p)
		}
		for _, q := range out {
			if p.conflicts(q) {
				return nil, fmt.Errorf("%w: %s is listed twice in the pod", ErrPortInUse, p)
			}
		}
		out = append(out, p)
	}
	return out, nil
}
