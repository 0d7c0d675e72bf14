// Package plot draws the benchmark charts of docs/benchmarks.md as PNG with
// nothing but the standard library's image packages and a bitmap font: one
// line per series, a log-scaled y axis (latency spans orders of magnitude),
// labelled ticks and a legend.
package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// A Series is one line: points (X[i], Y[i]) in order of X.
type Series struct {
	Name string
	X, Y []float64
}

// A Chart is a line chart with a linear x axis and a logarithmic y axis.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	Width, Height         int // pixels; 900×540 when zero
}

var palette = []color.RGBA{
	{0x1f, 0x6f, 0xeb, 0xff}, {0xd9, 0x48, 0x2b, 0xff}, {0x2e, 0x9e, 0x4f, 0xff},
	{0x8e, 0x44, 0xad, 0xff}, {0xe6, 0x9b, 0x00, 0xff}, {0x55, 0x55, 0x55, 0xff},
}

// WritePNG renders c as PNG to w.
func (c Chart) WritePNG(w io.Writer) error {
	width, height := c.Width, c.Height
	if width == 0 {
		width, height = 900, 540
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	left, right, top, bottom := 80, width-200, 40, height-60

	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return fmt.Errorf("plot: series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		for i := range s.X {
			if s.Y[i] <= 0 {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, s.Y[i]), math.Max(ymax, s.Y[i])
		}
	}
	if math.IsInf(xmin, 1) {
		return fmt.Errorf("plot: nothing to draw")
	}
	if xmin == xmax {
		xmin, xmax = xmin-1, xmax+1
	}
	ylo, yhi := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	if ylo == yhi {
		yhi++
	}
	px := func(x float64) int { return left + int((x-xmin)/(xmax-xmin)*float64(right-left)) }
	py := func(y float64) int {
		return bottom - int((math.Log10(y)-ylo)/(yhi-ylo)*float64(bottom-top))
	}

	grid := color.RGBA{0xe4, 0xe6, 0xea, 0xff}
	ink := color.RGBA{0x22, 0x22, 0x22, 0xff}
	for e := ylo; e <= yhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if math.Log10(v) > yhi {
				break
			}
			y := py(v)
			line(img, left, y, right, y, grid)
			text(img, 8, y+4, tickLabel(v), ink)
		}
	}
	for i := 0; i <= 5; i++ {
		v := xmin + float64(i)/5*(xmax-xmin)
		x := px(v)
		line(img, x, top, x, bottom, grid)
		text(img, x-20, bottom+18, tickLabel(v), ink)
	}
	line(img, left, bottom, right, bottom, ink)
	line(img, left, top, left, bottom, ink)
	text(img, left, 16, c.Title, ink)
	text(img, (left+right)/2-len(c.XLabel)*3, height-16, c.XLabel, ink)
	text(img, 8, top-6, c.YLabel, ink)

	for k, s := range c.Series {
		col := palette[k%len(palette)]
		prevX, prevY, have := 0, 0, false
		for i := range s.X {
			if s.Y[i] <= 0 {
				continue
			}
			x, y := px(s.X[i]), py(s.Y[i])
			if have {
				thick(img, prevX, prevY, x, y, col)
			}
			dot(img, x, y, col)
			prevX, prevY, have = x, y, true
		}
		ly := top + 10 + 18*k
		thick(img, right+16, ly, right+40, ly, col)
		text(img, right+46, ly+4, s.Name, ink)
	}
	return png.Encode(w, img)
}

func tickLabel(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%gk", v/1000)
	case v >= 1:
		return fmt.Sprintf("%g", math.Round(v*100)/100)
	default:
		return fmt.Sprintf("%g", v)
	}
}

func text(img draw.Image, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// line draws a one-pixel line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func thick(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	for d := -1; d <= 1; d++ {
		line(img, x0, y0+d, x1, y1+d, c)
	}
}

func dot(img *image.RGBA, x, y int, c color.Color) {
	for i := -3; i <= 3; i++ {
		for j := -3; j <= 3; j++ {
			if i*i+j*j <= 9 {
				img.Set(x+i, y+j, c)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
