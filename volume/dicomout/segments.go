package dicomout

import "github.com/covseg/covseg/volume"

// StandardSegments are covseg's segments for a CT: the infiltrate (every
// non-zero voxel of inf), and the right (1) and left (2) lung of lungs
// when lungs is not nil. version is covseg's version, the algorithms'.
func StandardSegments(inf, lungs *volume.Label, version string) []Segment {
	lung, right, left := CodeLung, CodeRight, CodeLeft
	covid := CodeCOVID19
	segs := []Segment{{
		Label:       "COVID-19 infiltrate",
		Description: "pulmonary infiltrate (ground glass and consolidation) segmented by covseg's 3D U-Net",
		Category:    CodeMorphologicallyAltered, Type: CodeInfiltrate, TypeModifier: &covid,
		AnatomicRegion: &lung,
		Algorithm:      "covseg 3D U-Net", AlgorithmVersion: version, AI: true,
		CIELab: [3]int{34885, 53485, 50171}, // a red
		Mask:   inf,
	}}
	if lungs == nil {
		return segs
	}
	return append(segs,
		Segment{
			Label: "Right lung", Category: CodeAnatomicalStructure, Type: CodeLung, TypeModifier: &right,
			Algorithm: "covseg lungs (threshold and morphology)", AlgorithmVersion: version,
			CIELab: [3]int{39168, 34432, 25088}, Mask: lungs, Value: 1,
		},
		Segment{
			Label: "Left lung", Category: CodeAnatomicalStructure, Type: CodeLung, TypeModifier: &left,
			Algorithm: "covseg lungs (threshold and morphology)", AlgorithmVersion: version,
			CIELab: [3]int{39168, 28160, 46080}, Mask: lungs, Value: 2,
		})
}
