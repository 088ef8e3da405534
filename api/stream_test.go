package api

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf)
	big := strings.Repeat("x", maxFrame+10)
	if _, err := io.WriteString(fw.Stream(StreamStdout), "hello"); err != nil {
		t.Fatal(err)
	}
	if err := fw.WriteFrame(StreamStdin, nil); err != nil { // stdin's end
		t.Fatal(err)
	}
	if _, err := io.WriteString(fw.Stream(StreamStderr), big); err != nil {
		t.Fatal(err)
	}
	if n, err := fw.Stream(StreamStdout).Write(nil); n != 0 || err != nil || buf.Len() != 5+5+5+5+len(big)+5 {
		t.Fatalf("an empty write must send nothing: %d %v, %d bytes so far", n, err, buf.Len())
	}

	type frame struct {
		stream byte
		n      int
	}
	var got []frame
	var stderr strings.Builder
	for {
		s, p, err := ReadFrame(&buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, frame{s, len(p)})
		if s == StreamStderr {
			stderr.Write(p)
		}
	}
	want := []frame{{StreamStdout, 5}, {StreamStdin, 0}, {StreamStderr, maxFrame}, {StreamStderr, 10}}
	if len(got) != len(want) {
		t.Fatalf("frames %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d: %v, want %v", i, got[i], want[i])
		}
	}
	if stderr.String() != big {
		t.Error("the split payload did not join back")
	}
}

func TestReadFrameRejectsDamage(t *testing.T) {
	for name, in := range map[string][]byte{
		"truncated header":  {1, 0, 0},
		"truncated payload": {1, 0, 0, 0, 9, 'a', 'b'},
		"oversized":         {1, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, _, err := ReadFrame(bytes.NewReader(in)); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: err %v, want a damage error", name, err)
		}
	}
}

func TestRefs(t *testing.T) {
	refs, err := Refs([]byte(`apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
---
# only a comment
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []ObjectRef{{Kind: "Pod", Namespace: "x", Name: "a"}, {Kind: "ConfigMap", Name: "c"}}
	if len(refs) != len(want) || refs[0] != want[0] || refs[1] != want[1] {
		t.Errorf("refs %v, want %v", refs, want)
	}
	if _, err := Refs([]byte("kind: [")); err == nil {
		t.Error("broken YAML read without error")
	}
}
