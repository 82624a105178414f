package train

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// LossTerms are the scalar terms of the training loss.
type LossTerms struct {
	Total, Dice, CE *graph.Node
}

// Loss builds the recipe's loss on logits [B, C, D, H, W] (any float dtype;
// computed in float32) and integer labels [B, D, H, W]:
//
//	total = DiceWeight·(1 − dice) + CEWeight·ce
//	dice  = (2·Σ p·t + s) / (Σ p + Σ t + s)
//	ce    = mean over voxels of −log softmax(logits)[label]
//
// where p is the softmax probability of class c.DiceClass, t is 1 where the
// label is that class, and the sums run over the whole batch at once
// (faimed3d's batch-flattened dice_loss, not a mean of per-case Dice).
// Labels outside 0..C-1 count as no class: their one-hot row is zero.
func Loss(logits, labels *graph.Node, c LossConfig) LossTerms {
	if logits.DType() != dtypes.Float32 {
		logits = graph.ConvertDType(logits, dtypes.Float32)
	}
	classes := logits.Shape().Dimensions[1]
	logp := graph.LogSoftmax(logits, 1)
	onehot := graph.OneHot(graph.ConvertDType(labels, dtypes.Int32), classes, dtypes.Float32) // [B, D, H, W, C]
	onehot = graph.TransposeAllDims(onehot, 0, 4, 1, 2, 3)                                    // [B, C, D, H, W]
	ce := graph.Neg(graph.ReduceAllMean(graph.ReduceSum(graph.Mul(logp, onehot), 1)))

	k := c.DiceClass
	p := graph.Exp(graph.Slice(logp, graph.AxisRange(), graph.AxisRange(k, k+1)))
	t := graph.Slice(onehot, graph.AxisRange(), graph.AxisRange(k, k+1))
	inter := graph.ReduceAllSum(graph.Mul(p, t))
	den := graph.Add(graph.ReduceAllSum(p), graph.ReduceAllSum(t))
	dice := graph.Div(graph.AddScalar(graph.MulScalar(inter, 2), c.DiceSmooth), graph.AddScalar(den, c.DiceSmooth))

	total := graph.Add(
		graph.MulScalar(graph.OneMinus(dice), c.DiceWeight),
		graph.MulScalar(ce, c.CEWeight))
	return LossTerms{Total: total, Dice: dice, CE: ce}
}

// DiceCounts returns, per batch item, the counts of the hard Dice of class
// k: |P∩T|, |P| and |T| as int32 [B] (exact counts), with P the voxels whose argmax over
// the logits [B, C, D, H, W] is k and T those labelled k ([B, D, H, W]).
func DiceCounts(logits, labels *graph.Node, k int) (inter, pred, truth *graph.Node) {
	g := logits.Graph()
	pk := graph.ConvertDType(graph.Equal(graph.ArgMax(logits, 1, dtypes.Int32), graph.Scalar(g, dtypes.Int32, k)), dtypes.Int32)
	tk := graph.ConvertDType(graph.Equal(graph.ConvertDType(labels, dtypes.Int32), graph.Scalar(g, dtypes.Int32, k)), dtypes.Int32)
	return graph.ReduceSum(graph.Mul(pk, tk), 1, 2, 3), graph.ReduceSum(pk, 1, 2, 3), graph.ReduceSum(tk, 1, 2, 3)
}

// Dice is 2·inter/(pred+truth), and 1 when both are empty (a case without
// lesion predicted without lesion is perfect).
func Dice(inter, pred, truth float64) float64 {
	if pred+truth == 0 {
		return 1
	}
	return 2 * inter / (pred + truth)
}
