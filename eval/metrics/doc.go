// Package metrics compares a predicted segmentation with a reference
// ("truth") segmentation on the same voxel grid: overlap (Dice, IoU,
// sensitivity, precision), boundary distances (HD95, HD, normalised surface
// Dice) and volumes, per case and aggregated over cases.
//
// The definitions equal those of the project's reference implementation
// (shared/tools/metrics_ref.py, numpy + scipy); the tests check every figure
// of its fixtures.
//
// # Masks
//
// A voxel belongs to a mask when its label is > 0 (Options.Label = 0), or,
// when Options.Label = N > 0, when its label equals N (one class of a
// multi-class map). T is the truth mask, P the predicted one; |·| counts
// voxels.
//
// # Overlap
//
//	dice        = 2|P∩T| / (|P| + |T|)
//	iou         = |P∩T| / |P∪T|
//	sensitivity = |P∩T| / |T|   (recall, true-positive rate)
//	precision   = |P∩T| / |P|   (positive predictive value)
//
// # Volumes
//
// The volume of a voxel is the product of the voxel spacings (the lengths
// of the first three columns of the truth's affine: the header zooms that
// metrics_ref.py uses, for any file whose zooms agree with its affine)
// divided by 1000, in millilitres; truth_ml = |T| times it,
// pred_ml = |P| times it, and diff_ml = pred_ml − truth_ml (signed: positive
// means the prediction is too large).
//
// # Surfaces and distances
//
// The surface S(M) of a mask M is the set of its voxels with at least one of
// their six face neighbours outside M; positions outside the array count as
// outside. Distances are Euclidean, in millimetres, between voxel centres on
// the voxel grid, scaled by the voxel spacing along each axis (the affine's
// rotation does not change them). d(x, S) is the distance from voxel x to the
// nearest voxel of S, computed with an exact Euclidean distance transform
// (see SquaredDistanceTransform). The directed distances are
//
//	D(P→T) = { d(p, S(T)) : p ∈ S(P) }     D(T→P) = { d(t, S(P)) : t ∈ S(T) }
//
// and
//
//	hd95 = max(q95(D(P→T)), q95(D(T→P)))   (MONAI's convention)
//	hd   = max(max D(P→T), max D(T→P))
//	nsd  = (#{d ∈ D(P→T): d ≤ τ} + #{d ∈ D(T→P): d ≤ τ}) / (|S(P)| + |S(T)|)
//
// where q95 is the 95th percentile with linear interpolation between order
// statistics, numpy's default: with the n values sorted ascending as
// x[0] ≤ … ≤ x[n−1], h = 0.95·(n−1) and q95 = x[⌊h⌋] + (h−⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
// nsd is the normalised surface Dice at tolerance τ millimetres
// (Nikolov et al. 2021), computed for every τ in Options.Taus.
//
// Distances are float64 and formed as scipy forms them, so they agree with
// the reference to the last bits; but where two features lie at distances
// that differ only by rounding (2 × 1.96 mm against 3.92 mm, say), any
// floating-point transform may pick either, so a distance equal to τ within
// rounding may count on either side of it. Tolerances that are not such
// exact combinations of the spacings are unaffected.
//
// # Empty masks
//
// When both masks are empty, the prediction is perfect: dice = iou = nsd =
// sensitivity = precision = 1 and hd95 = hd = 0. When exactly one is empty,
// dice = iou = nsd = 0 and hd95 and hd are undefined; sensitivity is 0 when
// only the prediction is empty and undefined when only the truth is empty;
// precision is 0 when only the truth is empty and undefined when only the
// prediction is empty (a 0/0 ratio is undefined, not a score). Undefined
// figures are NaN Values and marshal to JSON null.
//
// # Aggregates
//
// Summarize reports, for every figure, the number of cases where it is
// defined, their mean, sample standard deviation (denominator n − 1;
// undefined for fewer than two cases), median (the mean of the two middle
// values for an even count), minimum and maximum, ignoring undefined values;
// the pooled (micro-averaged) Dice 2·Σ|P∩T| / Σ(|P|+|T|) over all cases (1
// when every mask is empty); and the counts of cases with an empty truth, an
// empty prediction, or both.
//
// # Speed
//
// Every voxel outside the bounding box of T ∪ P is outside both masks and
// both surfaces, and every surface voxel (the only features of the distance
// transform and the only points where it is read) lies inside that box, so
// surfaces and distance transforms are computed on the box alone; the result
// is exactly what the whole grid would give. The distance transform is linear
// in voxels and runs over lines of voxels in parallel.
package metrics
