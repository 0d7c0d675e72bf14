package plot_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/courier-im/courier/bench/plot"
)

func TestWritePNG(t *testing.T) {
	c := plot.Chart{Title: "p99 latency", XLabel: "msg/s", YLabel: "ms", Series: []plot.Series{
		{Name: "courier p99", X: []float64{5000, 10000, 20000}, Y: []float64{0.8, 1.2, 3}},
		{Name: "socket.io p99", X: []float64{5000, 10000, 20000}, Y: []float64{4, 20, 110}},
	}}
	var buf bytes.Buffer
	if err := c.WritePNG(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 540 {
		t.Fatalf("size %v", b)
	}
	// Both series' colours are on the canvas.
	seen := map[[3]uint32]bool{}
	for y := 0; y < 540; y++ {
		for x := 0; x < 900; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	if !seen[[3]uint32{0x1f, 0x6f, 0xeb}] || !seen[[3]uint32{0xd9, 0x48, 0x2b}] {
		t.Fatal("a series is missing from the chart")
	}
	if dir := os.Getenv("PLOT_OUT"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "test.png"), buf.Bytes(), 0o644)
	}
	if err := (plot.Chart{}).WritePNG(&buf); err == nil {
		t.Fatal("an empty chart drew")
	}
}
