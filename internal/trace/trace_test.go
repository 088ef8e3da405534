package trace

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestOffAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	n := testing.AllocsPerRun(100, func() {
		c := Container(ctx, "app")
		sp := Start(c, "create")
		sp.End()
		Mark(ctx, "running", "app")
	})
	if n != 0 {
		t.Fatalf("tracing off: %v allocations per span, want 0", n)
	}
	if With(ctx, nil, "p") != ctx {
		t.Fatal("With(nil recorder) made a new context")
	}
}

func TestRecords(t *testing.T) {
	var b bytes.Buffer
	r := New(&b, nil)
	ctx := With(context.Background(), r, "default/web")
	sp := Start(Container(ctx, "app"), "create")
	sp.End()
	Mark(ctx, "running", "app")
	if !Enabled(ctx) {
		t.Fatal("Enabled: false with a recorder")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want header + init + 2 spans:\n%s", len(lines), b.String())
	}
	var h header
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.OriginBoottimeNs == 0 {
		t.Fatalf("header %s: %v", lines[0], err)
	}
	want := []Record{{Phase: "init"}, {Phase: "create", Pod: "default/web", Container: "app"}, {Phase: "running", Pod: "default/web", Container: "app"}}
	for i, l := range lines[1:] {
		var got Record
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatal(err)
		}
		if got.Phase != want[i].Phase || got.Pod != want[i].Pod || got.Container != want[i].Container || got.Ms < 0 {
			t.Errorf("line %d: %+v, want %+v", i+1, got, want[i])
		}
	}
}
