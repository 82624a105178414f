package nifti

import (
	"path/filepath"
	"strings"
)

// exts are the NIfTI file extensions, longer first.
var exts = []string{".nii.gz", ".nii"}

// IsNIfTIName reports whether a file name (or path) ends in .nii or
// .nii.gz in any letter case, after a non-empty stem: "ct.Nii.gz" and
// "CT.NII" are NIfTI names; "x.nii.gz.bak", "ct.gz" and ".nii" are not.
// Every command that picks NIfTI files out of a folder decides with it.
func IsNIfTIName(name string) bool {
	_, ok := TrimExt(filepath.Base(name))
	return ok
}

// TrimExt returns name without its NIfTI extension (.nii.gz or .nii, any
// letter case) and true, or name unchanged and false when it has none (or
// nothing would be left).
func TrimExt(name string) (string, bool) {
	for _, ext := range exts {
		if n := len(name) - len(ext); n > 0 && strings.EqualFold(name[n:], ext) {
			return name[:n], true
		}
	}
	return name, false
}

// CaseName is the name of the case a file holds: its base name without
// the NIfTI extension ("study_0255.Nii.gz" → "study_0255"). A name without
// one, such as a DICOM folder's, is returned whole.
func CaseName(path string) string {
	name, _ := TrimExt(filepath.Base(filepath.Clean(path)))
	return name
}
