package dicomout

import "github.com/covseg/covseg/volume"

// InfiltrateSegment is covseg's infiltrate segment: every non-zero voxel
// of inf (ground glass and consolidation alike). version is covseg's.
func InfiltrateSegment(inf *volume.Label, version string) Segment {
	lung, covid, ai := CodeLung, CodeCOVID19, CodeArtificialIntelligence
	return Segment{
		Label:       "COVID-19 infiltrate",
		Description: "pulmonary infiltrate (ground glass and consolidation) segmented by covseg's 3D U-Net",
		Category:    CodeMorphologicallyAbnormal, Type: CodeInfiltrate, TypeModifier: &covid,
		AnatomicRegion: &lung,
		Algorithm:      "covseg 3D U-Net", AlgorithmVersion: version, Family: &ai,
		CIELab: [3]int{34885, 53485, 50171}, // red
		Mask:   inf,
	}
}

// LungSegments are the right (label 1) and left (label 2) lung of a lung
// mask from package lungs.
func LungSegments(lungs *volume.Label, version string) []Segment {
	right, left, morph := CodeRight, CodeLeft, CodeMorphologicalOperations
	const alg = "covseg lungs (threshold and morphology)"
	return []Segment{
		{
			Label: "Right lung", Category: CodeAnatomicalStructure, Type: CodeLung, TypeModifier: &right,
			Algorithm: alg, AlgorithmVersion: version, Family: &morph,
			CIELab: [3]int{39168, 34432, 25088}, Mask: lungs, Value: 1,
		},
		{
			Label: "Left lung", Category: CodeAnatomicalStructure, Type: CodeLung, TypeModifier: &left,
			Algorithm: alg, AlgorithmVersion: version, Family: &morph,
			CIELab: [3]int{39168, 28160, 46080}, Mask: lungs, Value: 2,
		},
	}
}

// StandardSegments are the infiltrate, then the right and left lung when
// lungs is not nil.
func StandardSegments(inf, lungs *volume.Label, version string) []Segment {
	segs := []Segment{InfiltrateSegment(inf, version)}
	if lungs != nil {
		segs = append(segs, LungSegments(lungs, version)...)
	}
	return segs
}
