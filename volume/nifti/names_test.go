package nifti

import "testing"

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
