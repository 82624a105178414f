package dicomout

// Code is a coded concept (the Basic Code Sequence Macro, PS3.3 Table 8.8-1).
type Code struct {
	Value   string // CodeValue
	Scheme  string // CodingSchemeDesignator: SCT (SNOMED CT) or DCM
	Meaning string // CodeMeaning
}

// Codes used by covseg's segments. Where each comes from:
//
//   - Segmented property categories are from DICOM PS3.16 CID 7150
//     "Segmentation Property Categories": (123037004, SCT, "Anatomical
//     Structure") and (49755003, SCT, "Morphologically Altered Structure").
//   - Lung is (39607008, SCT, "Lung"), in PS3.16 CID 7710 / CID 4 (anatomic
//     regions) and the one TotalSegmentator's DICOM SEG mapping uses for
//     lung_left/lung_right.
//   - Laterality modifiers are PS3.16 CID 244 "Laterality": (24028007, SCT,
//     "Right") and (7771000, SCT, "Left").
//   - The infiltrate follows TotalSegmentator's lung_covid_infiltrate as the
//     covseg issue states it: type (47351003, SCT, "Infiltrate") in category
//     "Morphologically Altered Structure", anatomic region lung, with the
//     disease (840539006, SCT, "COVID-19") as the type modifier (840539006
//     is SNOMED CT's "Disease caused by severe acute respiratory syndrome
//     coronavirus 2", whose DICOM meaning is "COVID-19"). These two could not
//     be checked against a copy of PS3.16 from this machine (no network);
//     they are kept in this one place so a check against the standard's
//     tables changes one line each.
//   - Derivation and purpose codes are DICOM's own (PS3.16 Annex D, DCM):
//     (113076, DCM, "Segmentation") in CID 7203 "Image Derivation", and
//     (121322, DCM, "Source image for image processing operation") in
//     CID 7202 "Source Image Purposes of Reference".
//   - Algorithm family (123109, DCM, "Artificial Intelligence") is from
//     PS3.16 CID 7162 "Surface Processing Algorithm Families" as
//     highdicom's SEG examples use it.
var (
	CodeAnatomicalStructure    = Code{"123037004", "SCT", "Anatomical Structure"}
	CodeMorphologicallyAltered = Code{"49755003", "SCT", "Morphologically Altered Structure"}
	CodeLung                   = Code{"39607008", "SCT", "Lung"}
	CodeRight                  = Code{"24028007", "SCT", "Right"}
	CodeLeft                   = Code{"7771000", "SCT", "Left"}
	CodeInfiltrate             = Code{"47351003", "SCT", "Infiltrate"}
	CodeCOVID19                = Code{"840539006", "SCT", "COVID-19"}

	codeSegmentation = Code{"113076", "DCM", "Segmentation"}
	codeSourceImage  = Code{"121322", "DCM", "Source image for image processing operation"}
	codeAI           = Code{"123109", "DCM", "Artificial Intelligence"}
)
