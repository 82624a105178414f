package dicomout

// Code is a coded concept (the Basic Code Sequence Macro, PS3.3 Table 8.8-1).
type Code struct {
	Value   string // CodeValue
	Scheme  string // CodingSchemeDesignator: SCT (SNOMED CT) or DCM
	Meaning string // CodeMeaning
}

// Codes used by covseg's segments, checked against DICOM PS3.16's context
// groups (CIDs) as rendered, version 2026-03-19, by the
// bvdh/dicom-terminology-in-fhir project (ValueSet-dicom-cid-*.fsh):
//
//   - Categories, CID 7150 "Segmentation Property Category":
//     (91723000, SCT, "Anatomical Structure") and (49755003, SCT,
//     "Morphologically Abnormal Structure"). Older tools (and the covseg
//     issue) use 123037004 for Anatomical Structure; the current CID 7150
//     lists 91723000 only.
//   - Lung, (39607008, SCT, "Lung"): CID 4 "Anatomic Region", which CID
//     7192 (anatomical structure property types, part of CID 7151) includes.
//   - Right and left, (24028007, SCT, "Right") and (7771000, SCT, "Left"):
//     CID 247 "Laterality Left-Right Only", included by CID 244 "Laterality".
//   - Infiltrate, (112121, DCM, "Infiltrate"): CID 6104 "Abnormal Opacity
//     Finding or Feature"; CID 7151 is extensible. (SCT 47351003, which the
//     covseg issue names, is in no PS3.16 context group.)
//   - COVID-19, (840539006, SCT, "COVID-19"): SNOMED CT's "Disease caused
//     by severe acute respiratory syndrome coronavirus 2"; no PS3.16
//     context group holds it, it is the type modifier the issue asks for.
//   - Algorithm families, CID 7162: (123110, DCM, "Artificial
//     Intelligence") for the U-Net, (123104, DCM, "Morphological
//     Operations") for the classical lung method.
//   - (113076, DCM, "Segmentation"): CID 7203 "Image Derivation";
//     (121322, DCM, "Source image for image processing operation"): CID
//     7202 "Source Image Purpose of Reference".
var (
	CodeAnatomicalStructure     = Code{"91723000", "SCT", "Anatomical Structure"}
	CodeMorphologicallyAbnormal = Code{"49755003", "SCT", "Morphologically Abnormal Structure"}
	CodeLung                    = Code{"39607008", "SCT", "Lung"}
	CodeRight                   = Code{"24028007", "SCT", "Right"}
	CodeLeft                    = Code{"7771000", "SCT", "Left"}
	CodeInfiltrate              = Code{"112121", "DCM", "Infiltrate"}
	CodeCOVID19                 = Code{"840539006", "SCT", "COVID-19"}
	CodeArtificialIntelligence  = Code{"123110", "DCM", "Artificial Intelligence"}
	CodeMorphologicalOperations = Code{"123104", "DCM", "Morphological Operations"}

	codeSegmentation = Code{"113076", "DCM", "Segmentation"}
	codeSourceImage  = Code{"121322", "DCM", "Source image for image processing operation"}
)
