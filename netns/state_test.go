package netns

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestAllocateRoundRobinAndExhaustion(t *testing.T) {
	subnet := netip.MustParsePrefix("10.250.0.0/29") // .2-.6 are pod addresses
	st := &state{Pods: map[string]*entry{}}
	var got []string
	for i := range 5 {
		ip, err := st.allocate(subnet)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		st.Pods[ip.String()] = &entry{IP: ip.String()}
		got = append(got, ip.String())
	}
	if want := "10.250.0.2 10.250.0.3 10.250.0.4 10.250.0.5 10.250.0.6"; strings.Join(got, " ") != want {
		t.Fatalf("allocated %v, want %s", got, want)
	}
	if _, err := st.allocate(subnet); err == nil || !strings.Contains(err.Error(), "no free IP") {
		t.Fatalf("allocation in a full subnet: err = %v", err)
	}
	delete(st.Pods, "10.250.0.3")
	delete(st.Pods, "10.250.0.5")
	// The freed addresses come back in round-robin order after the last one.
	for _, want := range []string{"10.250.0.3", "10.250.0.5"} {
		ip, err := st.allocate(subnet)
		if err != nil || ip.String() != want {
			t.Fatalf("allocate = %v, %v; want %s", ip, err, want)
		}
		st.Pods[want] = &entry{IP: want}
	}
}

func TestHostPortsNormaliseAndConflict(t *testing.T) {
	ports, err := hostPorts([]Port{
		{ContainerPort: 80}, // not published
		{HostPort: 8080, ContainerPort: 80},
		{HostIP: "0.0.0.0", HostPort: 8081, ContainerPort: 81, Protocol: "UDP"},
		{HostIP: "127.0.0.1", HostPort: 8082, ContainerPort: 82},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{
		{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"},
		{HostPort: 8081, ContainerPort: 81, Protocol: "UDP"},
		{HostIP: "127.0.0.1", HostPort: 8082, ContainerPort: 82, Protocol: "TCP"},
	}
	if len(ports) != len(want) {
		t.Fatalf("ports = %+v", ports)
	}
	for i := range want {
		if ports[i] != want[i] {
			t.Errorf("port %d = %+v, want %+v", i, ports[i], want[i])
		}
	}
	bad := map[string][]Port{
		"protocol":      {{HostPort: 1, ContainerPort: 1, Protocol: "tcp"}},
		"range":         {{HostPort: 70000, ContainerPort: 1}},
		"hostIP":        {{HostIP: "nope", HostPort: 1, ContainerPort: 1}},
		"IPv6":          {{HostIP: "fd00::2", HostPort: 1, ContainerPort: 1}},
		"sctp loopback": {{HostIP: "127.0.0.1", HostPort: 1, ContainerPort: 1, Protocol: "SCTP"}},
		"listed twice":  {{HostPort: 1, ContainerPort: 1}, {HostIP: "127.0.0.1", HostPort: 1, ContainerPort: 2}},
	}
	for name, ps := range bad {
		if _, err := hostPorts(ps, false); err == nil {
			t.Errorf("%s: accepted %+v", name, ps)
		}
	}
	if _, err := hostPorts([]Port{{HostPort: 80, ContainerPort: 8080}}, true); err == nil {
		t.Error("hostNetwork pod with hostPort != containerPort accepted")
	}

	st := &state{Pods: map[string]*entry{
		"a": {Name: "web", Namespace: "default", Ports: []Port{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "TCP"}}},
		"b": {Name: "gone", Namespace: "default", Terminating: true, Ports: []Port{{HostPort: 9090, ContainerPort: 80, Protocol: "TCP"}}},
	}}
	for _, tc := range []struct {
		p        Port
		conflict bool
	}{
		{Port{HostIP: "127.0.0.1", HostPort: 8080, Protocol: "TCP"}, true},
		{Port{HostPort: 8080, Protocol: "TCP"}, true}, // all addresses include 127.0.0.1
		{Port{HostIP: "127.0.0.2", HostPort: 8080, Protocol: "TCP"}, false},
		{Port{HostIP: "127.0.0.1", HostPort: 8080, Protocol: "UDP"}, false},
		{Port{HostPort: 9090, Protocol: "TCP"}, false}, // held by a terminating pod
	} {
		err := st.checkPorts("c", []Port{tc.p})
		if tc.conflict != (err != nil) {
			t.Errorf("%s: err = %v, want conflict %v", tc.p, err, tc.conflict)
		}
		if err != nil && (!errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "default/web")) {
			t.Errorf("%s: error %q does not name the holder", tc.p, err)
		}
	}
}

func TestAlias(t *testing.T) {
	br, id, ok := parseAlias(linkAlias("podrun0", "0b6c-uid"))
	if !ok || br != "podrun0" || id != "0b6c-uid" {
		t.Fatalf("parseAlias = %q %q %v", br, id, ok)
	}
	if _, _, ok := parseAlias("something else"); ok {
		t.Fatal("foreign alias parsed")
	}
}
