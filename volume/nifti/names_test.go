package nifti

import (
	"strings"
	"testing"
)

// TestNIfTINames: the extension is matched in any letter case, only at the
// end, and never leaves an empty name.
func TestNIfTINames(t *testing.T) {
	for _, c := range []struct {
		path, caseName string
		nifti          bool
	}{
		{"ct.nii.gz", "ct", true},
		{"ct.nii", "ct", true},
		{"dir/study_0255.Nii.gz", "study_0255", true},
		{"/a/b/CT.NII", "CT", true},
		{"CT.NII.GZ", "CT", true},
		{"x.nii.gz.bak", "x.nii.gz.bak", false},
		{"x.nii.bak", "x.nii.bak", false},
		{"ct.gz", "ct.gz", false},
		{".nii", ".nii", false},
		{".nii.gz", ".nii.gz", false},
		{"series_dir/", "series_dir", false},
		{"a.b.nii", "a.b", true},
	} {
		if got := IsNIfTIName(c.path); got != c.nifti {
			t.Errorf("IsNIfTIName(%q) = %v, want %v", c.path, got, c.nifti)
		}
		if got := CaseName(c.path); got != c.caseName {
			t.Errorf("CaseName(%q) = %q, want %q", c.path, got, c.caseName)
		}
	}
	if s, ok := TrimExt("mask.NiI"); s != "mask" || !ok {
		t.Errorf("TrimExt(mask.NiI) = %q, %v", s, ok)
	}
}

// FuzzTrimExt: a NIfTI name keeps a non-empty stem that is the name less
// a .nii or .nii.gz ending; any other name comes back whole.
func FuzzTrimExt(f *testing.F) {
	for _, s := range []string{"ct.nii.gz", "CT.NII", ".nii", "x.nii.gz.bak", "a.Nii.Gz", "", ".gz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		stem, ok := TrimExt(name)
		if !ok {
			if stem != name {
				t.Errorf("TrimExt(%q) = %q, false: changed the name", name, stem)
			}
			return
		}
		ext := name[len(stem):]
		if stem == "" || name[:len(stem)] != stem || !(strings.EqualFold(ext, ".nii") || strings.EqualFold(ext, ".nii.gz")) {
			t.Errorf("TrimExt(%q) = %q, true", name, stem)
		}
	})
}
