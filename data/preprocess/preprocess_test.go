package preprocess

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

func TestConfigYAML(t *testing.T) {
	in := `
mode: resize
grid: 20x224x224
schedule:
  - {from_epoch: 0, grid: 20x112x112}
  - {from_epoch: 10, grid: [20, 224, 224]}
window_lo: -1000
window_hi: 500
scaling: minmax
`
	cfg := DefaultConfig()
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if g := cfg.GridAt(0); g != (Grid{20, 112, 112}) {
		t.Errorf("epoch 0: %v", g)
	}
	if g := cfg.GridAt(9); g != (Grid{20, 112, 112}) {
		t.Errorf("epoch 9: %v", g)
	}
	if g := cfg.GridAt(10); g != (Grid{20, 224, 224}) {
		t.Errorf("epoch 10: %v", g)
	}
	if cfg.Scaling != ScaleMinMax || cfg.WindowLo != -1000 || cfg.Patch != (Grid{32, 160, 160}) {
		t.Errorf("config %+v", cfg)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "grid: 20x224x224") {
		t.Errorf("grid not written as DxHxW:\n%s", out)
	}
	var back Config
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.GridAt(3) != cfg.GridAt(3) || back.Spacing != cfg.Spacing || len(back.Schedule) != 2 {
		t.Errorf("round trip %+v", back)
	}
	if g := DefaultGrid.Dims(); g != (volume.Dims{224, 224, 20}) || GridOf(g) != DefaultGrid {
		t.Errorf("Dims %v", g)
	}
	for _, bad := range []string{
		"grid: 20x224", "grid: 0x1x1", "mode: crop", "scaling: zscore", "window_lo: 700",
		"schedule: [{from_epoch: 5, grid: 1x1x1}, {from_epoch: 5, grid: 2x2x2}]",
		"mode: patch\nlesion_fraction: 2", "mode: patch\nspacing: [0, 1, 1]",
	} {
		c := DefaultConfig()
		err := yaml.Unmarshal([]byte(bad), &c)
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// centroid returns the world position of the mask's lesion voxels' mean.
func centroid(m *volume.Label) [3]float64 {
	var s [3]float64
	n := 0.0
	d := m.Dims
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				if m.At(i, j, k) != 0 {
					w := m.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
					for a := range 3 {
						s[a] += w[a]
					}
					n++
				}
			}
		}
	}
	for a := range 3 {
		s[a] /= n
	}
	return s
}

func fraction(m *volume.Label) float64 {
	n := 0
	for _, x := range m.Data {
		if x != 0 {
			n++
		}
	}
	return float64(n) / float64(len(m.Data))
}

func TestPrepareResize(t *testing.T) {
	cfg := phantom.Small(volume.Dims{48, 40, 24})
	ph, err := phantom.Generate(cfg, 4)
	if err != nil {
		t.Fatal(err)
	}
	pc := DefaultConfig()
	pc.Grid = Grid{12, 32, 36}
	s, err := Prepare("x", ph.Image, ph.Lesions, pc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Image.Dims != (volume.Dims{36, 32, 12}) || s.Mask.Dims != s.Image.Dims {
		t.Fatalf("dims %v %v", s.Image.Dims, s.Mask.Dims)
	}
	if s.Image.Affine.AxCodes() != "RAS" || s.Mask.Affine != s.Image.Affine {
		t.Errorf("affine %v", s.Image.Affine)
	}
	lo, hi := float32(1), float32(0)
	for _, x := range s.Image.Data {
		lo, hi = min(lo, x), max(hi, x)
	}
	if lo < 0 || hi > 1 || hi-lo < 0.5 {
		t.Errorf("intensities %g..%g", lo, hi)
	}
	for _, x := range s.Mask.Data {
		if x > 1 {
			t.Fatalf("mask value %d", x)
		}
	}
	// The lesions stay where they were in the world (a flipped or swapped
	// axis would move them), and nearest resizing keeps their share.
	a, b := centroid(ph.Lesions), centroid(s.Mask)
	sp := s.Mask.Spacing()
	for ax := range 3 {
		if math.Abs(a[ax]-b[ax]) > sp[ax] { // nearest picks one source voxel in 2 or 3
			t.Errorf("lesion centroid moved from %v to %v (spacing %v)", a, b, sp)
			break
		}
	}
	if fa, fb := fraction(ph.Lesions), fraction(s.Mask); math.Abs(fa-fb) > 0.25*fa {
		t.Errorf("lesion share %.4f became %.4f", fa, fb)
	}
	// Prepare does not touch its inputs.
	again, _ := phantom.Generate(cfg, 4)
	if !bytes.Equal(f32bytes(again.Image.Data), f32bytes(ph.Image.Data)) {
		t.Error("Prepare changed its input")
	}
}

func f32bytes(x []float32) []byte {
	b := make([]byte, 0, 4*len(x))
	for _, v := range x {
		u := math.Float32bits(v)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return b
}

func TestPrepareIntensity(t *testing.T) {
	v, _ := volume.New(volume.Dims{4, 1, 1}, volume.Identity())
	copy(v.Data, []float32{-2000, -1024, 600, 3000})
	cfg := DefaultConfig()
	cfg.Grid = Grid{1, 1, 4}
	s, err := Prepare("w", v, nil, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Image.Data; got[0] != 0 || got[1] != 0 || got[2] != 1 || got[3] != 1 || s.Mask != nil {
		t.Errorf("window: %v", got)
	}
	copy(v.Data, []float32{-500, -100, 100, float32(math.NaN())})
	cfg.Scaling = ScaleMinMax
	s, _ = Prepare("m", v, nil, cfg, 0)
	// NaN becomes the window's floor, −1024: min–max over −1024..100.
	want := []float32{524.0 / 1124, 924.0 / 1124, 1, 0}
	for i, x := range s.Image.Data {
		if math.Abs(float64(x-want[i])) > 1e-6 {
			t.Errorf("minmax: %v, want %v", s.Image.Data, want)
			break
		}
	}
}

func TestPreparePatch(t *testing.T) {
	cfg := phantom.Small(volume.Dims{48, 40, 16})
	ph, _ := phantom.Generate(cfg, 9)
	pc := DefaultConfig()
	pc.Mode, pc.Spacing, pc.Patch = ModePatch, [3]float64{10, 8, 8}, Grid{8, 16, 16}
	s, err := Prepare("p", ph.Image, ph.Lesions, pc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sp := s.Image.Spacing(); math.Abs(sp[0]-8) > 0.5 || math.Abs(sp[2]-10) > 1 {
		t.Errorf("spacing %v", sp)
	}
	if len(s.Lesion) == 0 {
		t.Fatal("no lesion samples")
	}
	for _, idx := range s.Lesion {
		if s.Mask.Data[idx] != 1 {
			t.Fatal("lesion sample outside the mask")
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 50; n++ {
		p, err := RandomPatch(s, pc.Patch, 1, rng)
		if err != nil {
			t.Fatal(err)
		}
		if p.Image.Dims != pc.Patch.Dims() || p.Mask.Dims != pc.Patch.Dims() {
			t.Fatalf("patch dims %v", p.Image.Dims)
		}
		if fraction(p.Mask) == 0 {
			t.Fatal("a lesion-centred patch without lesion")
		}
		checkPatchPlace(t, s, p)
	}
	// Without oversampling some patches miss the lesions.
	empty := 0
	for n := 0; n < 50; n++ {
		p, _ := RandomPatch(s, pc.Patch, 0, rng)
		if fraction(p.Mask) == 0 {
			empty++
		}
	}
	if empty == 0 {
		t.Error("uniform patches always hit a lesion; oversampling is untested")
	}
	// A patch larger than the volume is padded with zeros, centred.
	big := Grid{s.Image.Dims[2] + 4, 8, 8}
	p, err := RandomPatch(s, big, 0, rng)
	if err != nil {
		t.Fatal(err)
	}
	if p.Image.At(0, 0, 0) != 0 || p.Image.At(0, 0, big[0]-1) != 0 || p.Image.Dims != big.Dims() {
		t.Errorf("padding: %v", p.Image.Dims)
	}
}

// checkPatchPlace checks that a patch's voxels are the sample's voxels at
// the same world position.
func checkPatchPlace(t *testing.T, s, p *Sample) {
	t.Helper()
	inv, _ := s.Image.Affine.Inverse()
	for _, ijk := range [][3]int{{0, 0, 0}, {3, 5, 2}, {p.Image.Dims[0] - 1, p.Image.Dims[1] - 1, p.Image.Dims[2] - 1}} {
		q := inv.Apply(p.Image.Affine.Apply([3]float64{float64(ijk[0]), float64(ijk[1]), float64(ijk[2])}))
		i, j, k := int(math.Round(q[0])), int(math.Round(q[1])), int(math.Round(q[2]))
		d := s.Image.Dims
		if i < 0 || j < 0 || k < 0 || i >= d[0] || j >= d[1] || k >= d[2] {
			continue
		}
		if p.Image.At(ijk[0], ijk[1], ijk[2]) != s.Image.At(i, j, k) || p.Mask.At(ijk[0], ijk[1], ijk[2]) != s.Mask.At(i, j, k) {
			t.Fatalf("patch voxel %v is not sample voxel (%d,%d,%d)", ijk, i, j, k)
		}
	}
}

// writeCase writes a phantom as a NIfTI pair and returns its entry.
func writeCase(t *testing.T, dir, name string, seed uint64) dataset.Entry {
	t.Helper()
	ph, err := phantom.Generate(phantom.Small(volume.Dims{32, 28, 10}), seed)
	if err != nil {
		t.Fatal(err)
	}
	e := dataset.Entry{Image: filepath.Join(dir, name+".nii.gz"), Mask: filepath.Join(dir, name+"_mask.nii.gz"), Case: name, Dataset: "x", Split: dataset.Train}
	if err := nifti.WriteVolume(e.Image, ph.Image, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nifti.WriteLabel(e.Mask, ph.Lesions); err != nil {
		t.Fatal(err)
	}
	return e
}

func sameSample(a, b *Sample) bool {
	return a.Image.Dims == b.Image.Dims && a.Image.Affine == b.Image.Affine &&
		bytes.Equal(f32bytes(a.Image.Data), f32bytes(b.Image.Data)) && bytes.Equal(a.Mask.Data, b.Mask.Data) && len(a.Lesion) == len(b.Lesion)
}

func TestCache(t *testing.T) {
	dir := t.TempDir()
	e := writeCase(t, dir, "c1", 1)
	cdir := filepath.Join(dir, "cache")
	cfg := DefaultConfig()
	cfg.Grid = Grid{8, 16, 16}
	c, err := NewCache(cdir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := c.Load(e, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := c.Load(e, cfg, 0)
	if st := c.Stats(); st.Prepared != 1 || st.Memory != 1 || s1 != s2 {
		t.Errorf("stats %+v", st)
	}
	// A new cache on the same folder reads the file: the same sample.
	c2, _ := NewCache(cdir, 0)
	s3, err := c2.Load(e, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st := c2.Stats(); st.Disk != 1 || !sameSample(s1, s3) {
		t.Errorf("from disk: stats %+v, same %v", st, sameSample(s1, s3))
	}
	// Settings and sources are in the key.
	other := cfg
	other.Grid = Grid{8, 16, 20}
	if _, err := c2.Load(e, other, 0); err != nil || c2.Stats().Prepared != 1 {
		t.Errorf("another grid hit the cache: %v %+v", err, c2.Stats())
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(e.Mask, later, later)
	if _, err := c2.Load(e, cfg, 0); err != nil || c2.Stats().Prepared != 2 {
		t.Errorf("a changed mask hit the cache: %v %+v", err, c2.Stats())
	}
	// A corrupt file is prepared again and replaced.
	files, _ := filepath.Glob(filepath.Join(cdir, "*.zst"))
	if len(files) != 3 {
		t.Fatalf("%d cache files", len(files))
	}
	for _, f := range files {
		os.WriteFile(f, []byte("garbage"), 0o644)
	}
	c3, _ := NewCache(cdir, 0)
	s4, err := c3.Load(e, cfg, 0)
	if err != nil || c3.Stats().Prepared != 1 || !sameSample(s1, s4) {
		t.Errorf("corrupt file: %v %+v", err, c3.Stats())
	}
	c4, _ := NewCache(cdir, 0)
	if c4.Load(e, cfg, 0); c4.Stats().Disk != 1 {
		t.Errorf("the replaced file was not used: %+v", c4.Stats())
	}
	// Concurrent loads of one key prepare it once.
	c5, _ := NewCache("", 1<<30)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c5.Load(e, cfg, 0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if st := c5.Stats(); st.Prepared != 1 || st.Memory != 3 {
		t.Errorf("concurrent: %+v", st)
	}
	// The memory budget evicts.
	c6, _ := NewCache("", int64(len(s1.Image.Data)*5+100))
	e2 := writeCase(t, dir, "c2", 2)
	c6.Load(e, cfg, 0)
	c6.Load(e2, cfg, 0)
	c6.Load(e, cfg, 0)
	if st := c6.Stats(); st.Prepared != 3 {
		t.Errorf("budget of one sample kept two: %+v", st)
	}
	// Missing sources are errors naming the case.
	bad := e
	bad.Image = filepath.Join(dir, "none.nii.gz")
	if _, err := c6.Load(bad, cfg, 0); err == nil || !strings.Contains(err.Error(), "c1") {
		t.Errorf("missing image: %v", err)
	}
}

func TestCachePatchLesions(t *testing.T) {
	dir := t.TempDir()
	e := writeCase(t, dir, "p", 3)
	cfg := DefaultConfig()
	cfg.Mode, cfg.Spacing, cfg.Patch = ModePatch, [3]float64{12, 6, 6}, Grid{4, 8, 8}
	c, _ := NewCache(filepath.Join(dir, "cache"), 0)
	a, err := c.Load(e, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := NewCache(filepath.Join(dir, "cache"), 0)
	b, err := c2.Load(e, cfg, 0)
	if err != nil || c2.Stats().Disk != 1 {
		t.Fatal(err, c2.Stats())
	}
	if len(a.Lesion) == 0 || len(a.Lesion) != len(b.Lesion) || a.Lesion[0] != b.Lesion[0] {
		t.Errorf("lesion samples %d / %d", len(a.Lesion), len(b.Lesion))
	}
}

func FuzzDecodeSample(f *testing.F) {
	var buf bytes.Buffer
	buf.Write(cacheMagic)
	h := []byte(`{"Case":"x","Dims":[2,1,1],"Affine":[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]],"HasMask":true,"Lesions":1}`)
	buf.Write([]byte{byte(len(h)), 0, 0, 0})
	buf.Write(h)
	buf.Write(make([]byte, 8))
	buf.Write([]byte{0, 1})
	buf.Write([]byte{1, 0, 0, 0})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSample(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(s.Image.Data) != s.Image.Dims.Len() || (s.Mask != nil && len(s.Mask.Data) != len(s.Image.Data)) {
			t.Fatal("inconsistent sample")
		}
	})
}

// TestLabelsClasses: with labels: classes a mask's labels reach the sample
// as class indices (1 lesion, 2 lung here) through the cache, under their
// own key, and lesion-centred patches sample class 1 only; binary masks
// (the default) still make every label above 0 a lesion.
func TestLabelsClasses(t *testing.T) {
	dir := t.TempDir()
	ph, err := phantom.Generate(phantom.Small(volume.Dims{32, 28, 10}), 4)
	if err != nil {
		t.Fatal(err)
	}
	classes := ph.Lesions.Clone()
	var lesions, lungs int
	for i := range classes.Data {
		switch {
		case ph.Lesions.Data[i] != 0:
			classes.Data[i] = 1
			lesions++
		case ph.Lungs.Data[i] != 0:
			classes.Data[i] = 2
			lungs++
		}
	}
	if lesions == 0 || lungs == 0 {
		t.Fatalf("phantom with %d lesion and %d lung voxels", lesions, lungs)
	}
	e := dataset.Entry{Image: filepath.Join(dir, "c.nii.gz"), Mask: filepath.Join(dir, "c_classes.nii.gz"), Case: "c", Dataset: "x", Split: dataset.Train}
	if err := nifti.WriteVolume(e.Image, ph.Image, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nifti.WriteLabel(e.Mask, classes); err != nil {
		t.Fatal(err)
	}
	count := func(m *volume.Label) [3]int {
		var n [3]int
		for _, x := range m.Data {
			if x > 2 {
				t.Fatalf("label %d", x)
			}
			n[x]++
		}
		return n
	}
	_, bin, err := Read(e, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := count(bin); n[1] != lesions+lungs || n[2] != 0 {
		t.Errorf("binary: %v, want every labelled voxel (%d) as 1", n, lesions+lungs)
	}
	_, kept, err := Read(e, LabelsClasses)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(kept); n[1] != lesions || n[2] != lungs {
		t.Errorf("classes: %v, want %d lesion and %d lung voxels", n, lesions, lungs)
	}

	cfg := DefaultConfig()
	cfg.Mode, cfg.Spacing, cfg.Patch = ModePatch, [3]float64{12, 12, 10.5}, Grid{4, 8, 8}
	cfg.Labels = LabelsClasses
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, _ := NewCache(filepath.Join(dir, "cache"), 1<<30)
	s, err := c.Load(e, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(s.Mask); n[1] == 0 || n[2] == 0 {
		t.Fatalf("prepared sample: %v, want both classes", n)
	}
	if len(s.Lesion) == 0 {
		t.Fatal("no lesion voxels to centre patches on")
	}
	for _, i := range s.Lesion {
		if s.Mask.Data[i] != 1 {
			t.Fatalf("lesion sample %d has class %d", i, s.Mask.Data[i])
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		p, err := RandomPatch(s, cfg.Patch, 1, rng)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(p.Mask); n[1] == 0 {
			t.Fatalf("a lesion-centred patch holds no lesion: %v", n)
		}
	}
	binCfg := cfg
	binCfg.Labels = ""
	sb, err := c.Load(e, binCfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(sb.Mask); n[2] != 0 || c.Stats().Prepared != 2 {
		t.Errorf("binary config after classes: %v, %+v: want its own key and no class 2", n, c.Stats())
	}
	bad := DefaultConfig()
	bad.Labels = "multi"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Errorf("labels %q: %v", bad.Labels, err)
	}
}
