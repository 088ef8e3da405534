package netns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHostsFile(t *testing.T) {
	base := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	aliases := []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"foo.local", "bar.local"}}, {IP: "10.1.2.3", Hostnames: []string{"foo.remote"}}}
	aliasBlock := "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
	for name, tc := range map[string]struct {
		h    Hosts
		want string
	}{
		"plain":     {Hosts{IP: "10.213.0.2", Hostname: "web"}, base + "10.213.0.2\tweb\n"},
		"subdomain": {Hosts{IP: "10.213.0.2", Hostname: "web-0", Subdomain: "web", Namespace: "prod"}, base + "10.213.0.2\tweb-0.web.prod.svc.cluster.local\tweb-0\n"},
		"domain":    {Hosts{IP: "10.213.0.2", Hostname: "a", Subdomain: "s", Namespace: "n", ClusterDomain: "corp.example"}, base + "10.213.0.2\ta.s.n.svc.corp.example\ta\n"},
		"aliases":   {Hosts{IP: "10.213.0.2", Hostname: "web", Aliases: aliases}, base + "10.213.0.2\tweb\n" + aliasBlock},
		"host network": {Hosts{HostNetwork: true, HostFile: []byte("127.0.0.1 localhost\n192.0.2.2 node\n"), Aliases: aliases},
			"# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n192.0.2.2 node\n" + aliasBlock},
	} {
		if got := string(HostsFile(tc.h)); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, tc.want)
		}
	}
}

func TestHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + "-b"
	override := "override.example.host"
	for name, tc := range map[string]struct {
		pod              corev1.Pod
		hostname, domain string
		err              bool
	}{
		"name":      {pod: pod("web", corev1.PodSpec{}), hostname: "web"},
		"hostname":  {pod: pod("web-abc", corev1.PodSpec{Hostname: "web"}), hostname: "web"},
		"subdomain": {pod: pod("web-0", corev1.PodSpec{Subdomain: "svc"}), hostname: "web-0", domain: "svc.ns.svc.cluster.local"},
		"truncated": {pod: pod(long, corev1.PodSpec{}), hostname: strings.Repeat("a", 62)},
		"override":  {pod: pod("web", corev1.PodSpec{Hostname: "h", Subdomain: "s", HostnameOverride: &override}), hostname: override},
		"bad label": {pod: pod("web", corev1.PodSpec{Hostname: "Not_Valid"}), err: true},
	} {
		h, d, err := Hostname(&tc.pod, "")
		if (err != nil) != tc.err || h != tc.hostname || d != tc.domain {
			t.Errorf("%s: Hostname = %q, %q, %v; want %q, %q, error %v", name, h, d, err, tc.hostname, tc.domain, tc.err)
		}
	}
}

func pod(name string, spec corev1.PodSpec) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: spec}
}

func withHostResolvConf(t *testing.T, content string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := hostResolvConfs
	hostResolvConfs = []string{filepath.Join(t.TempDir(), "missing"), p}
	t.Cleanup(func() { hostResolvConfs = old })
}

func TestResolvConf(t *testing.T) {
	withHostResolvConf(t, "# comment\nnameserver 10.255.255.53\nsearch example.com. corp.example\nsearch lan.\noptions ndots:2 edns0\nnameserver 10.255.255.54\n")
	host := "search lan\nnameserver 10.255.255.53\nnameserver 10.255.255.54\noptions ndots:2 edns0\n"
	five := "5"
	cfg := &corev1.PodDNSConfig{
		Nameservers: []string{"10.255.255.54", "1.1.1.1", "8.8.8.8"},
		Searches:    []string{"pod.example", "lan"},
		Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: &five}, {Name: "single-request"}},
	}
	for name, tc := range map[string]struct {
		policy      corev1.DNSPolicy
		cfg         *corev1.PodDNSConfig
		hostNetwork bool
		want        string
		warnings    []string // reasons
	}{
		"default":                       {policy: corev1.DNSDefault, want: host},
		"cluster first falls back":      {policy: corev1.DNSClusterFirst, want: host, warnings: []string{ReasonMissingClusterDNS}},
		"empty policy is cluster first": {policy: "", want: host, warnings: []string{ReasonMissingClusterDNS}},
		"cluster first on host network": {policy: corev1.DNSClusterFirst, hostNetwork: true, want: host},
		"with host net":                 {policy: corev1.DNSClusterFirstWithHostNet, hostNetwork: true, want: host, warnings: []string{ReasonMissingClusterDNS}},
		"none":                          {policy: corev1.DNSNone, cfg: &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"}}, want: "search a.example\nnameserver 1.1.1.1\n"},
		"none and empty":                {policy: corev1.DNSNone, want: ""},
		"merged and limited": {policy: corev1.DNSDefault, cfg: cfg,
			want:     "search lan pod.example\nnameserver 10.255.255.53\nnameserver 10.255.255.54\nnameserver 1.1.1.1\noptions ndots:5 edns0 single-request\n",
			warnings: []string{ReasonDNSConfigForming}},
	} {
		got, warnings, err := ResolvConf(tc.policy, tc.cfg, tc.hostNetwork, "ns")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, tc.want)
		}
		if len(warnings) != len(tc.warnings) {
			t.Errorf("%s: warnings %q, want reasons %q", name, warnings, tc.warnings)
			continue
		}
		for i, w := range warnings {
			if !strings.HasPrefix(w, tc.warnings[i]+": ") {
				t.Errorf("%s: warning %q, want reason %s", name, w, tc.warnings[i])
			}
		}
	}
	if _, _, err := ResolvConf("Bogus", nil, false, "ns"); err == nil {
		t.Error("invalid dnsPolicy accepted")
	}
}

func TestResolvConfLoopbackStub(t *testing.T) {
	withHostResolvConf(t, "nameserver 127.0.0.53\noptions edns0 trust-ad\n")
	_, warnings, err := ResolvConf(corev1.DNSDefault, nil, false, "ns")
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "127.0.0.53") {
		t.Fatalf("warnings = %q, err = %v; want one about 127.0.0.53", warnings, err)
	}
	if _, warnings, _ := ResolvConf(corev1.DNSDefault, nil, true, "ns"); len(warnings) != 0 {
		t.Fatalf("hostNetwork pod warned about its own loopback resolver: %q", warnings)
	}
}

func TestSearchLimits(t *testing.T) {
	var many []string
	for i := range 40 {
		many = append(many, strings.Repeat("d", 60)+string(rune('a'+i%26)))
	}
	fitted, cut := fitSearches(append([]string{strings.Repeat("x", 254)}, many...))
	if !cut || len(fitted) > maxSearchPaths || len(strings.Join(fitted, " ")) > maxSearchChars {
		t.Fatalf("fitSearches kept %d paths, %d chars, cut %v", len(fitted), len(strings.Join(fitted, " ")), cut)
	}
	if strings.HasPrefix(fitted[0], "x") {
		t.Fatal("a 254-character search path was kept")
	}
}
