package severity

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	chest "github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/volio"
)

// synthetic returns a 10x10x10 grid of 1 x 2 x 3 mm voxels (0.006 ml) with
// a right lung of 200 voxels (i < 2), a left lung of 100 (i == 9), and an
// infiltrate of 50 voxels in each lung and 7 outside them.
func synthetic() (*volume.Volume, *volume.Label, *volume.Label) {
	d := volume.Dims{10, 10, 10}
	a := volume.Diag([3]float64{1, 2, 3}, [3]float64{-5, 3, 100})
	ct, _ := volume.New(d, a)
	lung, _ := volume.NewLabel(d, a)
	inf, _ := volume.NewLabel(d, a)
	var right, left, out int
	for k := 0; k < 10; k++ {
		for j := 0; j < 10; j++ {
			for i := 0; i < 10; i++ {
				p := d.Index(i, j, k)
				switch {
				case i < 2:
					lung.Data[p] = lungs.Right
					if right < 50 {
						inf.Data[p] = 1
						right++
					}
				case i == 9:
					lung.Data[p] = lungs.Left
					if left < 50 {
						inf.Data[p] = 2 // any value > 0 is infiltrate
						left++
					}
				case out < 7:
					inf.Data[p] = 1
					out++
				}
			}
		}
	}
	return ct, inf, lung
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*(1+math.Abs(b)) }

func TestHandComputed(t *testing.T) {
	ct, inf, lung := synthetic()
	r, err := Compute(ct, inf, lung, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"voxel_ml", r.VoxelML, 0.006},
		{"lung_ml", r.LungML, 1.8},
		{"lung_right_ml", r.LungRightML, 1.2},
		{"lung_left_ml", r.LungLeftML, 0.6},
		{"infiltrate_ml", r.InfiltrateML, 0.6},
		{"infiltrate_right_ml", r.InfiltrateRightML, 0.3},
		{"infiltrate_left_ml", r.InfiltrateLeftML, 0.3},
		{"infiltrate_outside_lungs_ml", r.InfiltrateOutsideML, 0.042},
		{"involvement_pct", *r.InvolvementPct, 100.0 / 3},
		{"involvement_right_pct", *r.InvolvementRightPct, 25},
		{"involvement_left_pct", *r.InvolvementLeftPct, 50},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %.12g, want %g", c.name, c.got, c.want)
		}
	}
	if r.Category != "CT-2" {
		t.Errorf("category %s, want CT-2 (33.3 %%)", r.Category)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "outside the lung mask") {
		t.Errorf("warnings %q, want one about the infiltrate outside the lungs", r.Warnings)
	}
}

func TestCategoryBoundaries(t *testing.T) {
	for _, c := range []struct {
		inf, lung int64
		want      string
	}{
		{0, 100, "CT-0"}, {1, 100, "CT-1"}, {24, 100, "CT-1"}, {25, 100, "CT-2"},
		{49, 100, "CT-2"}, {50, 100, "CT-3"}, {74, 100, "CT-3"}, {75, 100, "CT-4"},
		{100, 100, "CT-4"}, {1, 4, "CT-2"}, {1, 3, "CT-2"}, {2, 3, "CT-3"}, {3, 4, "CT-4"},
		{1, 1 << 40, "CT-1"}, {1<<40 - 1, 1 << 42, "CT-1"}, {1 << 40, 1 << 42, "CT-2"}, {0, 0, ""},
	} {
		if got, _ := Category(c.inf, c.lung); got != c.want {
			t.Errorf("Category(%d infiltrate, %d lung voxels) = %q, want %q", c.inf, c.lung, got, c.want)
		}
	}
}

func TestJSONKeys(t *testing.T) {
	ct, inf, lung := synthetic()
	r, err := Compute(ct, inf, lung, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r.Inputs = Inputs{CT: "ct.nii.gz", Mask: "mask.nii.gz", Lungs: "lungs.nii.gz"}
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"lung_ml", "lung_right_ml", "lung_left_ml", "infiltrate_ml", "involvement_pct",
		"involvement_right_pct", "involvement_left_pct", "category", "infiltrate_outside_lungs_ml", "inputs", "versions"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks key %q", k)
		}
	}
	if m["category"] != "CT-2" || !near(m["lung_ml"].(float64), 1.8) {
		t.Errorf("JSON category %v, lung_ml %v", m["category"], m["lung_ml"])
	}
	if m["inputs"].(map[string]any)["mask"] != "mask.nii.gz" || m["versions"].(map[string]any)["covseg"] != "test" {
		t.Errorf("JSON inputs %v, versions %v", m["inputs"], m["versions"])
	}
}

func TestEmptyLungs(t *testing.T) {
	ct, inf, lung := synthetic()
	clear(lung.Data)
	r, err := Compute(ct, inf, lung, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := r.JSON()
	if r.Category != "" || r.InvolvementPct != nil || !strings.Contains(string(b), `"involvement_pct": null`) {
		t.Errorf("empty lungs: category %q, involvement %v; want none, null in JSON", r.Category, r.InvolvementPct)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "empty") {
		t.Errorf("warnings %q, want one saying the lung mask is empty", r.Warnings)
	}
}

func TestGridsMustMatch(t *testing.T) {
	ct, inf, lung := synthetic()
	shifted := lung.Clone()
	shifted.Affine[1][3] += 0.01
	slightly := lung.Clone()
	slightly.Affine[1][3] += 1e-4
	small, _ := volume.NewLabel(volume.Dims{10, 10, 9}, ct.Affine)
	if _, err := Compute(ct, inf, slightly, Options{}); err != nil {
		t.Errorf("lung affine 1e-4 mm off: %v, want it accepted", err)
	}
	for _, c := range []struct {
		name      string
		inf, lung *volume.Label
		want      string
	}{
		{"lungs shifted 0.01 mm", inf, shifted, "lung mask affine"},
		{"mask of other dims", small, lung, "infiltrate mask has dims"},
		{"lungs of other dims", inf, small, "lung mask has dims"},
		{"no mask", nil, lung, "no infiltrate mask"},
	} {
		_, err := Compute(ct, c.inf, c.lung, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	bad := lung.Clone()
	bad.Data[5] = 3
	if _, err := Compute(ct, inf, bad, Options{}); err == nil || !strings.Contains(err.Error(), "value 3") {
		t.Errorf("lung label 3: error %v, want one naming the value", err)
	}
}

func TestMarkdown(t *testing.T) {
	ct, inf, lung := synthetic()
	r, _ := Compute(ct, inf, lung, Options{Version: "test"})
	md := r.Markdown()
	for _, want := range []string{"**Category CT-2**", "| lung volume (ml) | 1.8 | 1.2 | 0.6 |", "| involvement | 33.3 % | 25.0 % | 50.0 % |", "0.0 ml"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestComputedLungs gives no lung mask: the lungs come from package lungs,
// here on the TotalSegmentator chest crop with a made-up infiltrate.
func TestComputedLungs(t *testing.T) {
	ct, _, err := volio.Read(testutil.IO(t, "totalseg_chest_crop.nii.gz"), volio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := lungs.Segment(ct, lungs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	inf, _ := volume.NewLabel(ct.Dims, ct.Affine)
	n := 0
	for p, l := range want.Mask.Data {
		if l == lungs.Left && p%3 == 0 { // a third of the left lung
			inf.Data[p] = 1
			n++
		}
	}
	r, err := Compute(ct, inf, nil, Options{Version: "test", Lungs: lungs.DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Inputs.LungsComputed || r.Versions["lungs"] != lungs.Method || !near(r.LungRightML, want.RightML) || !near(r.LungLeftML, want.LeftML) {
		t.Errorf("computed lungs: %v %v, %.1f/%.1f ml; want lungs.Segment's %.1f/%.1f ml", r.Inputs.LungsComputed, r.Versions, r.LungRightML, r.LungLeftML, want.RightML, want.LeftML)
	}
	if p := *r.InvolvementLeftPct; math.Abs(p-100.0/3) > 0.1 || *r.InvolvementRightPct != 0 {
		t.Errorf("involvement right %.2f %%, left %.2f %%; want 0 and 33.3", *r.InvolvementRightPct, p)
	}
	img, err := r.Montage(ct, inf, montage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() < 400 || img.Bounds().Dy() < 300 {
		t.Errorf("montage of %v", img.Bounds())
	}
}

// TestSharedPhantom reports on a synthetic chest of package phantom with
// its true lung mask, where every figure can be counted directly, and with
// the lungs covseg segments, which miss part of the consolidations at the
// lungs' medial border there (see package lungs): every lesion voxel must
// then be counted either in a lung or outside the lungs, and flagged.
func TestSharedPhantom(t *testing.T) {
	p, err := chest.Generate(chest.DefaultConfig(), 7)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := Compute(p.Image, p.Lesions, p.Lungs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var lung, les [3]int64
	for i, l := range p.Lungs.Data {
		lung[l]++
		if p.Lesions.Data[i] > 0 {
			les[l]++
		}
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"total", *truth.InvolvementPct, 100 * float64(les[1]+les[2]) / float64(lung[1]+lung[2])},
		{"right", *truth.InvolvementRightPct, 100 * float64(les[chest.RightLung]) / float64(lung[chest.RightLung])},
		{"left", *truth.InvolvementLeftPct, 100 * float64(les[chest.LeftLung]) / float64(lung[chest.LeftLung])},
	} {
		if !near(c.got, c.want) {
			t.Errorf("true lungs: %s involvement %.6f %%, counted %.6f %%", c.name, c.got, c.want)
		}
	}
	if les[0] != 0 || truth.Voxels.InfiltrateOutside != 0 {
		t.Fatalf("phantom lesions outside its lungs: %d, reported %d", les[0], truth.Voxels.InfiltrateOutside)
	}
	seg, err := Compute(p.Image, p.Lesions, nil, Options{Lungs: lungs.DefaultOptions()})
	if err != nil {
		t.Fatal(err)
	}
	v := seg.Voxels
	if v.InfiltrateRight+v.InfiltrateLeft+v.InfiltrateOutside != les[1]+les[2] {
		t.Errorf("segmented lungs: %d + %d + %d lesion voxels counted, the mask holds %d", v.InfiltrateRight, v.InfiltrateLeft, v.InfiltrateOutside, les[1]+les[2])
	}
	if v.InfiltrateOutside > 0 && !strings.Contains(strings.Join(seg.Warnings, "\n"), "outside the lung mask") {
		t.Errorf("segmented lungs: %d lesion voxels outside them but no warning: %q", v.InfiltrateOutside, seg.Warnings)
	}
	t.Logf("involvement %.2f %% with the true lungs, %.2f %% with segmented ones (%.1f ml of lesion outside them); %s and %s",
		*truth.InvolvementPct, *seg.InvolvementPct, seg.InfiltrateOutsideML, truth.Category, seg.Category)
}
