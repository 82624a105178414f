// Package lungs segments the lungs in a chest CT with a classical,
// training-free method, and tells the patient's right lung (label 1) from the
// left (label 2).
//
// Segment works on a CT in Hounsfield units in any orientation: it
// reorients the volume to the closest canonical RAS+ grid (permuting and
// flipping axes only, see volume.PlanCanonical), segments there, and maps
// the labels back onto the input's own grid voxel for voxel, so the result
// has the input's dims and affine. Sizes (structuring elements, areas,
// distances) are in millimetres from the affine's voxel spacing. Which lung
// is which comes from world coordinates: in RAS+ (nibabel's and NIfTI's
// convention; see nibabel's orientations.py, whose axis labels are
// (('L','R'), ('P','A'), ('I','S')), i.e. x runs from the subject's Left to
// their Right) world x grows towards the patient's right, so the right lung
// is the one at larger x.
//
// # Method
//
// On the canonical grid (i towards the patient's right, j anterior, k
// superior), slice by slice in parallel and then in 3D:
//
//  1. Air is every voxel below Options.AirHU (−320 HU) or NaN; tissue is the
//     rest. Each axial slice's air is split into 4-connected components,
//     its tissue into 8-connected ones.
//  2. Outside air. An air component that does not touch the slice's border
//     is inside the patient. One that touches it is inside too when at
//     least half of it lies within the convex hull of the slice's tissue
//     (its components of at least 5 % of the largest one's area): a lung
//     that reaches the border of a cropped field of view, with the body
//     around it. Otherwise it is the air around the patient when its
//     median is below Options.AirwayHU (−950 HU: pure gas; lung parenchyma
//     is around −850), and "maybe" lung when it is not: in a tight crop
//     the lungs can fill whole corners of a slice beyond the body's hull,
//     while a mattress or blanket beside the patient is not pure gas
//     either. Step 5 decides the maybes in 3D. Air that is enclosed in a
//     slice but outside the body (between an arm and the chest wall,
//     between the back and the table) is pure gas and goes in step 5.
//  3. Trachea and main bronchi are followed from the top down as
//     4-connected components of the dark air, below AirwayHU, so that the
//     airway lumen is apart from the parenchyma even where a bronchus
//     wall is not resolved. In the top 20 mm of the slices that hold air,
//     a dark component of 25 to 1200 mm² starts an airway; in each slice
//     below, a dark component continues it when it overlaps an airway
//     component of the slice above, is at most 1200 mm² and at most twice
//     the area it continues. The carina splits the trachea into two such
//     components; each bronchus is followed while it keeps its size, into
//     the lung as far as its lumen stays apart from dark parenchyma. The
//     air within two pixels of the airway in its slice (the wall's partial
//     volume, air at AirHU but not dark) is removed with it, so no thin
//     tube of air joins the lungs through the mediastinum. Intrapulmonary
//     bronchi removed this way come back as holes in step 7; the trachea
//     and the main bronchi, which the lung does not surround, do not: the
//     cut falls where the bronchi enter the lung. Air in the esophagus is
//     followed and removed the same way.
//  4. The midline is the median over slices of the world x of the
//     airway's centroid (the trachea; below the carina the pair of main
//     bronchi, which straddle the midline); with no airway found, the
//     median of the tissue's centroid.
//  5. The remaining air is joined across slices into 3D components
//     (6-connectivity: overlapping 2D components of adjacent slices). A
//     component whose median is below AirwayHU is pure gas, not lung
//     (outside air enclosed in slices, bowel gas, a pneumothorax); a
//     component of which less than 5 % is surely inside the body (not
//     "maybe" air) is outside material; both are dropped, as are
//     components under 0.5 ml.
//  6. Right and left: a component with at least 80 % of its voxels on one
//     side of the midline belongs to that side. A component that straddles
//     the midline (the lungs touching at the anterior or posterior junction
//     line, or joined through small airways) is eroded slice by slice with
//     growing radii (2, 4, 7, 10, 15 mm) until it falls apart into pieces
//     on both sides, each side holding at least 10 % of the eroded volume;
//     the pieces then grow back through the component in a multi-source
//     breadth-first search (a watershed on geodesic distance), so the cut
//     runs where the lungs touch. If no radius separates them, the
//     component is cut by the midline plane when at least 20 % lies on each
//     side, and otherwise given to its majority side. On each side the
//     pieces of at least 10 % of that side's largest are kept, and a side
//     whose largest piece is under 10 % of the other side's largest is
//     dropped: a cropped scan may hold one lung only.
//  7. Each lung, slice by slice: every hole (background not connected to
//     the slice's border) is filled; then dense lung at the costal border
//     is brought back. A morphological closing with a disc of
//     Options.ClosingRadiusMM (30 mm; exact, through Euclidean distance
//     transforms, with background beyond the slice's border) fills the
//     inside of a bite in the border; a closing by line segments in eight
//     directions ("bridging": a pixel on a chord of at most
//     Options.BridgeMM, 60 mm, between two lung pixels) also reaches the
//     lens at the bite's mouth, which a disc cannot, and is kept only for
//     regions of additions that the disc filled at least 30 % of. Both add
//     only on the costal side: inside the rib cage (the convex hull of the
//     slice's bone, voxels of at least Options.BoneHU in the larger tissue
//     components), within Options.CostalBandMM (40 mm) of that hull, with
//     no lung on the straight path to the hull's nearest point, and only
//     soft tissue (between AirHU and BoneHU). Holes are filled once more.
//
// # Trade-offs
//
// Dense lung (consolidation, ground glass above −320 HU, tumour) is not air,
// so a threshold alone leaves it out. Holes are filled whatever their size,
// so dense regions surrounded by aerated lung in a slice are kept, and with
// them the vessels; the price is that the top of the diaphragm's dome, in
// the one or two slices where it shows as an island inside the lung, is
// counted as lung. Dense regions at the lung's border make a bite in the
// thresholded mask. A disc closing fills a bite narrower than about its
// radius but not the lens along the chord across its mouth (the disc
// enters the mouth); a convex hull, or bridging alone, fills the bite to
// the chord but also every shallow concavity of a normal lung: slivers of
// heart, vertebra and liver along chords of their curved surfaces (2 % of
// the lungs' volume on the TotalSegmentator crop with 60 mm chords). The
// combination keeps the chords only where the disc found a bite: on a
// synthetic lung with a 40 mm consolidation at the pleura it restores 89 %
// of it (the disc alone 60 %), and it adds 0.7 % to the normal lungs of the
// TotalSegmentator crop. Bites wider than the chords, shallow bands of
// consolidation along the pleura, and dense lung at the mediastinal
// surface (the closing adds only on the costal side: without that limit it
// would fill the hilum and the mediastinal concavities with soft tissue)
// are under-segmented; a report that measures infiltrate inside this mask
// should show the infiltrate found outside it (package report does). Where
// a lung meets the chest wall at a sharp angle next to the heart or the
// liver, a fillet of a few millimetres of them can be added. Without bone
// in a slice (a tight crop), nothing is added there but the filled holes.
// In a crop that cuts through the rib cage, the hull of the bone it keeps
// can pass through the mediastinum, and hilar vessels and bronchi next to
// the lung can then be added (some tens of ml on the IBSI crop among the
// shared fixtures).
//
// An airway removed down into the lung leaves a hole that step 7 fills,
// except where the bronchus runs along the lung's surface at the hilum;
// emphysematous bullae dark enough to be followed from the trachea come
// back the same way.
//
// The method assumes an axial chest CT in HU of an adult or child, the body
// in the field of view. It is not meant to match deep-learning lung masks
// (lungmask and others) voxel for voxel; it is a dependable mask for
// measuring involvement.
package lungs
