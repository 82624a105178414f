package lungs

// run is a horizontal stretch of foreground pixels, x0..x1 inclusive, in
// row y, with the component it belongs to.
type run struct {
	y, x0, x1 int32
	label     int32
}

// labeler labels the connected components of 2D binary images by runs: one
// pass finds each row's runs of foreground and merges, in a union-find over
// runs whose roots are always the smallest run of their set, each run with
// the runs it touches in the row above; the labels are then written run by
// run. After label, runs and area describe the result. It keeps its buffers
// between calls; use one per goroutine.
type labeler struct {
	runs   []run
	parent []int32
	area   []int32 // pixels per label, index 0 unused
}

func (lb *labeler) find(x int32) int32 {
	p := lb.parent
	for p[x] != x {
		p[x] = p[p[x]]
		x = p[x]
	}
	return x
}

// label writes to lab (len w*h, row major, x fastest) the component of
// every pixel whose mask is non-zero, numbered 1..n in raster order of each
// component's first pixel, and 0 elsewhere. conn8 chooses 8-connectivity
// over 4-connectivity. It returns n.
func (lb *labeler) label(lab []int32, mask []uint8, w, h int, conn8 bool) int {
	n := lb.scan(mask, w, h, conn8)
	clear(lab[:w*h])
	for _, r := range lb.runs {
		row := lab[int(r.y)*w : int(r.y+1)*w]
		for x := r.x0; x <= r.x1; x++ {
			row[x] = r.label
		}
	}
	return n
}

// scan is label without writing the labels: lb.runs and lb.area hold the
// components.
func (lb *labeler) scan(mask []uint8, w, h int, conn8 bool) int {
	runs, parent := lb.runs[:0], lb.parent[:0]
	grow := int32(0)
	if conn8 {
		grow = 1
	}
	prevStart, prevEnd := 0, 0
	for y := 0; y < h; y++ {
		row := mask[y*w : (y+1)*w]
		curStart := len(runs)
		j := prevStart
		for x := 0; x < w; {
			for x < w && row[x] == 0 {
				x++
			}
			if x == w {
				break
			}
			x0 := x
			for x < w && row[x] != 0 {
				x++
			}
			id := int32(len(runs))
			runs = append(runs, run{y: int32(y), x0: int32(x0), x1: int32(x - 1)})
			parent = append(parent, id)
			lo, hi := int32(x0)-grow, int32(x-1)+grow
			for k := j; k < prevEnd; k++ {
				pr := runs[k]
				if pr.x1 < lo {
					j = k + 1 // left of every later run of this row too
					continue
				}
				if pr.x0 > hi {
					break
				}
				lb.parent = parent
				a, b := lb.find(id), lb.find(int32(k))
				if a < b {
					parent[b] = a
				} else if b < a {
					parent[a] = b
				}
			}
		}
		prevStart, prevEnd = curStart, len(runs)
	}
	lb.runs, lb.parent = runs, parent
	n := int32(0)
	area := lb.area[:0]
	area = append(area, 0)
	for i := range runs {
		// A root is the smallest run of its set, so its label is known
		// before any other member asks for it.
		r := lb.find(int32(i))
		if r == int32(i) {
			n++
			runs[i].label = n
			area = append(area, 0)
		} else {
			runs[i].label = runs[r].label
		}
		area[runs[i].label] += runs[i].x1 - runs[i].x0 + 1
	}
	lb.area = area
	return int(n)
}
