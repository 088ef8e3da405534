package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The files a pod sees as /etc/hosts and /etc/resolv.conf, and its
// hostname, exactly as the kubelet makes them (kubelet_pods.go
// managedHostsFileContent and GeneratePodHostNameAndDomain,
// pkg/kubelet/network/dns), for a node without cluster DNS.

// DefaultClusterDomain is used when Hosts.ClusterDomain is empty, as on
// every kubeadm-made cluster.
const DefaultClusterDomain = "cluster.local"

// Warning reasons; each ResolvConf warning starts with one and ": ", so the
// caller can record it as an event with that reason.
const (
	ReasonMissingClusterDNS = "MissingClusterDNS"
	ReasonDNSConfigForming  = "DNSConfigForming"
)

// Limits of the kubelet (pkg/apis/core/validation, ExpandedDNSConfig).
const (
	maxNameservers   = 3
	maxSearchPaths   = 32
	maxSearchChars   = 2048
	maxSearchPathLen = 253
)

// hostResolvConfs are tried in order: systemd-resolved's upstream list
// first, because /etc/resolv.conf then names the 127.0.0.53 stub, which a
// pod cannot reach.
var hostResolvConfs = []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"}

// Hosts describes a pod's /etc/hosts.
type Hosts struct {
	IP            string // pod IP; no entry for the pod when empty
	Hostname      string // from Hostname
	Subdomain     string // spec.subdomain; "" when hostnameOverride is set (Hostname then returns no domain)
	Namespace     string
	ClusterDomain string // default DefaultClusterDomain
	Aliases       []corev1.HostAlias
	HostNetwork   bool
	HostFile      []byte // the node's /etc/hosts for HostNetwork; nil: read /etc/hosts (empty if unreadable)
}

// HostsFile returns the content of a pod's /etc/hosts.
func HostsFile(h Hosts) []byte {
	var b bytes.Buffer
	if h.HostNetwork {
		b.WriteString("# Kubernetes-managed hosts file (host network).\n")
		host := h.HostFile
		if host == nil {
			host, _ = os.ReadFile("/etc/hosts")
		}
		b.Write(host)
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n")
		b.WriteString("127.0.0.1\tlocalhost\n")
		b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
		b.WriteString("fe00::0\tip6-localnet\n")
		b.WriteString("fe00::0\tip6-mcastprefix\n")
		b.WriteString("fe00::1\tip6-allnodes\n")
		b.WriteString("fe00::2\tip6-allrouters\n")
		switch {
		case h.IP == "":
		case h.Subdomain != "":
			domain := h.ClusterDomain
			if domain == "" {
				domain = DefaultClusterDomain
			}
			fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", h.IP, h.Hostname, h.Subdomain, h.Namespace, domain, h.Hostname)
		default:
			fmt.Fprintf(&b, "%s\t%s\n", h.IP, h.Hostname)
		}
	}
	if len(h.Aliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range h.Aliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}

// Hostname returns a pod's hostname and DNS domain as the kubelet computes
// them: spec.hostnameOverride, else spec.hostname, else the pod name,
// truncated to 63 characters without a trailing '-' or '.'; the domain is
// <subdomain>.<namespace>.svc.<clusterDomain> when spec.subdomain is set
// (and no override is). clusterDomain "" means DefaultClusterDomain.
func Hostname(pod *corev1.Pod, clusterDomain string) (hostname, domain string, err error) {
	if clusterDomain == "" {
		clusterDomain = DefaultClusterDomain
	}
	if o := pod.Spec.HostnameOverride; o != nil && *o != "" {
		if msgs := validation.IsDNS1123Subdomain(*o); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod HostnameOverride %q is not a valid DNS subdomain: %s", *o, strings.Join(msgs, ";"))
		}
		hostname, err = truncateHostname(pod.Name, *o)
		return hostname, "", err
	}
	hostname = pod.Name
	if pod.Spec.Hostname != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Hostname); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Hostname %q is not a valid DNS label: %s", pod.Spec.Hostname, strings.Join(msgs, ";"))
		}
		hostname = pod.Spec.Hostname
	}
	if hostname, err = truncateHostname(pod.Name, hostname); err != nil {
		return "", "", err
	}
	if pod.Spec.Subdomain != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Subdomain); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Subdomain %q is not a valid DNS label: %s", pod.Spec.Subdomain, strings.Join(msgs, ";"))
		}
		domain = fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	return hostname, domain, nil
}

func truncateHostname(podName, hostname string) (string, error) {
	const max = 63
	if len(hostname) <= max {
		return hostname, nil
	}
	t := strings.TrimRight(hostname[:max], "-.")
	if t == "" {
		return "", fmt.Errorf("hostname for pod %q was invalid: %q", podName, hostname)
	}
	return t, nil
}

// ResolvConf returns the content of a pod's /etc/resolv.conf for its
// dnsPolicy ("" is the default, ClusterFirst) and dnsConfig, and warnings
// the caller should record as events (each "<Reason>: <message>"). podrun
// has no cluster DNS, so ClusterFirst and ClusterFirstWithHostNet fall back
// to Default with a MissingClusterDNS warning, as the kubelet does when it
// has no clusterDNS. Default uses the host's resolvers
// (/run/systemd/resolve/resolv.conf when present, else /etc/resolv.conf),
// with a warning for a loopback resolver the pod cannot reach. namespace
// would build the cluster search path; without cluster DNS it is unused.
func ResolvConf(policy corev1.DNSPolicy, cfg *corev1.PodDNSConfig, hostNetwork bool, namespace string) (content []byte, warnings []string, err error) {
	_ = namespace
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	var servers, searches, options []string
	useHost := false
	switch policy {
	case corev1.DNSNone:
	case corev1.DNSDefault:
		useHost = true
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet:
		useHost = true
		if policy == corev1.DNSClusterFirstWithHostNet || !hostNetwork {
			warnings = append(warnings, fmt.Sprintf("%s: podrun has no cluster DNS server and cannot create Pod using %q policy. Falling back to %q policy.",
				ReasonMissingClusterDNS, policy, corev1.DNSDefault))
		}
	default:
		return nil, nil, fmt.Errorf("invalid dnsPolicy %q", policy)
	}
	if useHost {
		path, b, err := readHostResolvConf()
		if err != nil {
			return nil, nil, err
		}
		servers, searches, options = parseResolvConf(b)
		if !hostNetwork {
			for _, s := range servers {
				if ip, err := netip.ParseAddr(s); err == nil && ip.IsLoopback() {
					warnings = append(warnings, fmt.Sprintf("%s: nameserver %s from %s is a loopback address the pod cannot reach; name resolution in the pod will fail",
						ReasonDNSConfigForming, s, path))
				}
			}
		}
	}
	if cfg != nil {
		servers = omitDuplicates(append(servers, cfg.Nameservers...))
		searches = omitDuplicates(append(searches, cfg.Searches...))
		options = mergeOptions(options, cfg.Options)
	}
	if len(servers) > maxNameservers {
		servers = servers[:maxNameservers]
		warnings = append(warnings, fmt.Sprintf("%s: Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: %s",
			ReasonDNSConfigForming, strings.Join(servers, " ")))
	}
	if fitted, cut := fitSearches(searches); cut {
		searches = fitted
		warnings = append(warnings, fmt.Sprintf("%s: Search Line limits were exceeded, some search paths have been omitted, the applied search line is: %s",
			ReasonDNSConfigForming, strings.Join(searches, " ")))
	}
	var b bytes.Buffer
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes(), warnings, nil
}

func readHostResolvConf() (path string, content []byte, err error) {
	var errs []error
	for _, p := range hostResolvConfs {
		b, err := os.ReadFile(p)
		if err == nil {
			return p, b, nil
		}
		errs = append(errs, err)
	}
	return "", nil, fmt.Errorf("read the host's resolv.conf: %w", errors.Join(errs...))
}

// parseResolvConf follows the kubelet: nameservers accumulate, the last
// search and options lines win, search domains lose a trailing dot.
func parseResolvConf(b []byte) (servers, searches, options []string) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) >= 2 {
				servers = append(servers, f[1])
			}
		case "search":
			searches = searches[:0:0]
			for _, s := range f[1:] {
				searches = append(searches, strings.TrimSuffix(s, "."))
			}
		case "options":
			options = f[1:]
		}
	}
	return servers, searches, options
}

func omitDuplicates(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// mergeOptions overrides existing options by name with the pod's. The
// kubelet rebuilds the list from a map, in random order; podrun keeps the
// host's order and appends new names in the pod's order.
func mergeOptions(existing []string, pod []corev1.PodDNSConfigOption) []string {
	var names []string
	value := map[string]string{}
	set := func(name, v string) {
		if _, ok := value[name]; !ok {
			names = append(names, name)
		}
		value[name] = v
	}
	for _, o := range existing {
		name, v, _ := strings.Cut(o, ":")
		set(name, v)
	}
	for _, o := range pod {
		v := ""
		if o.Value != nil {
			v = *o.Value
		}
		set(o.Name, v)
	}
	out := make([]string, 0, len(names))
	for _, name := range names {
		if value[name] != "" {
			out = append(out, name+":"+value[name])
		} else {
			out = append(out, name)
		}
	}
	return out
}

// fitSearches applies the kubelet's search line limits: at most 32 paths,
// none longer than 253 characters, at most 2048 characters in all (cut from
// the end).
func fitSearches(s []string) ([]string, bool) {
	cut := false
	if len(s) > maxSearchPaths {
		s, cut = s[:maxSearchPaths], true
	}
	kept := s[:0:0]
	for _, p := range s {
		if len(p) > maxSearchPathLen {
			cut = true
			continue
		}
		kept = append(kept, p)
	}
	for len(kept) > 0 && len(strings.Join(kept, " ")) > maxSearchChars {
		kept, cut = kept[:len(kept)-1], true
	}
	return kept, cut
}
