package integration

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// web is an httpd container serving body at / on port 80 of the pod's
// addresses (or on addr), logging "IP <pod IP>" once it listens.
func web(name, body, addr string) corev1.Container {
	if addr == "" {
		addr = "80"
	}
	return container(name, fmt.Sprintf(`trap 'log Exiting; exit 0' TERM; mkdir -p /www; echo %s > /www/index.html
httpd -f -p %s -h /www & log IP $(hostname -i); log Started
while true; do sleep 1 & wait; done`, body, addr))
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	var last error
	for range 50 { // httpd may not have bound yet when Started is logged
		resp, err := c.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				return strings.TrimSpace(string(b))
			}
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

// ipOf returns the pod IP a container logged.
func ipOf(t *testing.T, ev *events, name string) string {
	t.Helper()
	for _, l := range ev.lines {
		if l.name == name && strings.HasPrefix(l.what, "IP ") {
			return strings.TrimPrefix(l.what, "IP ")
		}
	}
	t.Fatalf("%s logged no IP:\n%s", name, ev)
	return ""
}

func TestPodNetwork(t *testing.T) {
	port := 20000 + rand.IntN(20000)
	a := newScenario(t, "pod-a", corev1.RestartPolicyAlways)
	dir := a.dir
	client := container("client", `trap 'log Exiting; exit 0' TERM
until grep -q "^[0-9.]* server IP " /log/events; do sleep 0.1; done
ip=$(grep "^[0-9.]* server IP " /log/events | head -1 | cut -d' ' -f4)
log Got $(wget -q -O - http://$ip/); log Started; while true; do sleep 1 & wait; done`)
	a.app(web("web-a", "A", "")).app(client)
	b := newScenario(t, "pod-b", corev1.RestartPolicyAlways)
	b.pod.Spec.Volumes = a.pod.Spec.Volumes // one event log for both pods
	b.app(web("server", "B", ""))
	published := web("published", "C", "")
	published.Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: int32(port), HostIP: "127.0.0.1"}}
	c := newScenario(t, "pod-c", corev1.RestartPolicyAlways)
	c.pod.Spec.Volumes = a.pod.Spec.Volumes
	c.app(published)

	bg := startObjects(t, dir, []any{a.pod, b.pod, c.pod})
	for _, n := range []string{"web-a", "server", "published", "client"} {
		bg.waitEvent(n, "Started")
	}
	ev := readEvents(t, dir+"/events")
	ipA, ipB := ipOf(t, ev, "web-a"), ipOf(t, ev, "server")
	if ipA == ipB {
		t.Fatalf("both pods have IP %s", ipA)
	}
	if got := httpGet(t, "http://"+ipA+"/"); got != "A" {
		t.Errorf("host → pod A: %q", got)
	}
	if got := httpGet(t, "http://"+ipB+"/"); got != "B" {
		t.Errorf("host → pod B: %q", got)
	}
	if len(ev.all("client", "Got B")) != 1 {
		t.Errorf("pod A → pod B failed:\n%s", ev)
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "C" {
		t.Errorf("hostPort on 127.0.0.1: %q", got)
	}
	r := bg.interrupt()
	for _, p := range r.pods {
		if p.Status.PodIP == "" {
			t.Errorf("pod %s has no podIP in its status", p.Name)
		}
	}
}

func TestHostNetwork(t *testing.T) {
	port := 20000 + rand.IntN(20000)
	s := newScenario(t, "host-net", corev1.RestartPolicyAlways).
		app(web("web", "H", fmt.Sprintf("127.0.0.1:%d", port)))
	s.pod.Spec.HostNetwork = true
	s.pod.Spec.Containers = append(s.pod.Spec.Containers, container("name", `trap 'exit 0' TERM; log Hostname $(hostname); while true; do sleep 1 & wait; done`))
	bg := s.start()
	bg.waitEvent("web", "Started")
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "H" {
		t.Errorf("host network server: %q", got)
	}
	host, _ := os.Hostname()
	bg.until("the pod's hostname", func() bool {
		return len(readEvents(t, s.dir+"/events").all("name", "Hostname "+host)) == 1
	})
	bg.interrupt()
}

// TestHostUpstreamDNS: a pod with the default DNS policy resolves a name
// through the host's resolvers, also when the host's /etc/resolv.conf names
// systemd-resolved's stub 127.0.0.53, which the pod's network cannot reach
// (podrun gives it resolved's upstreams). PODRUN_TEST_DNS=NAME=IPV4 names a
// record the host's upstream serves (hack/vmtest's guests serve
// outside.test=192.0.2.2 from a namespace behind their default route).
func TestHostUpstreamDNS(t *testing.T) {
	name, ip, ok := strings.Cut(os.Getenv("PODRUN_TEST_DNS"), "=")
	if !ok {
		t.Skip("PODRUN_TEST_DNS (NAME=IPV4, a record the host's DNS upstream serves) is not set")
	}
	s := newScenario(t, "dns", corev1.RestartPolicyNever).
		app(container("app", `log Stub $(grep -c 127.0.0.53 /etc/resolv.conf); log Resolved $(nslookup -type=a `+name+` 2>&1 | awk '/^Name:/ {n=1} n && /^Address/ {print $NF}')`))
	r := s.run()
	if got := r.ev.all("app", "Resolved "+ip); len(got) != 1 {
		t.Errorf("%s did not resolve to %s in the pod:\n%s", name, ip, r.ev)
	}
	if len(r.ev.all("app", "Stub 0")) != 1 {
		t.Errorf("the pod was given the host's stub resolver:\n%s", r.ev)
	}
}

func TestEtcFiles(t *testing.T) {
	s := newScenario(t, "etc-files", corev1.RestartPolicyNever).
		app(container("app", `log Hosts $(grep -c foo.local /etc/hosts) $(grep "etc-files$" /etc/hosts | cut -f2); log Resolv $(grep nameserver /etc/resolv.conf); log Resolv $(grep search /etc/resolv.conf); log Hostname $(hostname)`))
	s.pod.Spec.HostAliases = []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"foo.local"}}}
	s.pod.Spec.DNSPolicy = corev1.DNSNone
	s.pod.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.53"}, Searches: []string{"example.test"}}
	r := s.run()
	want := []string{"Hosts 1 etc-files", "Resolv nameserver 192.0.2.53", "Resolv search example.test", "Hostname etc-files"}
	for _, w := range want {
		if len(r.ev.all("app", w)) != 1 {
			t.Errorf("no %q in the container's view:\n%s", w, r.ev)
		}
	}
}
