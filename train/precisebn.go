package train

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/model"
)

// PreciseBN replaces every BatchNorm's running mean and variance with the
// statistics its input has over the given batches in training mode
// (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm": precise BN).
//
// Why: PyTorch's running averages move a tenth of the way to each batch's
// statistics, so after training they describe the last ten or so batches,
// which with a batch of one patch (half of them centred on a lesion) are
// neither many nor like the volumes inference sees. The network's last
// BatchNorm sits on the logits, so a stale estimate there shifts every
// voxel's decision.
//
// Each batch runs forward once in training mode with the momentum set to 1,
// which leaves that batch's mean m_k and unbiased variance v_k in the
// running statistics; the results are pooled by the law of total variance:
// mean = avg(m_k), variance = avg(v_k) + avg(m_k²) − mean², what one pass
// over all the batches stacked would give. Training itself never reads the
// running statistics, so recalibrating them between epochs changes nothing
// but inference (validation, best.ckpt and last.ckpt).
func (e *Engine) PreciseBN(batches []Batch) error {
	if len(batches) == 0 {
		return fmt.Errorf("train: precise BatchNorm statistics need at least one batch")
	}
	for _, b := range batches {
		if err := b.Check(); err != nil {
			return err
		}
	}
	names := runningStatNames(e.ctx)
	saved := map[string][]float32{}
	for _, n := range names {
		v, _, err := model.Float32Value(e.ctx, n)
		if err != nil {
			return fmt.Errorf("train: precise BatchNorm: %w", err)
		}
		saved[n] = v
	}
	if e.bnExec == nil {
		ex, err := mlctx.NewExec(e.backend, e.ctx, e.bnStatsGraph)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		e.bnExec = ex
	}
	sum := map[string][]float64{}   // Σ m_k for a mean, Σ v_k for a variance
	sumSq := map[string][]float64{} // Σ m_k² for a mean
	for _, b := range batches {
		x, _ := b.tensors()
		if _, err := e.exec(e.bnExec, x); err != nil {
			restoreStats(e.ctx, saved)
			return err
		}
		for _, n := range names {
			v, _, err := model.Float32Value(e.ctx, n)
			if err != nil {
				restoreStats(e.ctx, saved)
				return fmt.Errorf("train: precise BatchNorm: %w", err)
			}
			accumulate(sum, n, v, false)
			if strings.HasSuffix(n, ".running_mean") {
				accumulate(sumSq, n, v, true)
			}
		}
	}
	k := float64(len(batches))
	for _, n := range names {
		if !strings.HasSuffix(n, ".running_mean") {
			continue
		}
		vn := strings.TrimSuffix(n, ".running_mean") + ".running_var"
		mean := make([]float32, len(sum[n]))
		variance := make([]float32, len(sum[n]))
		for c := range mean {
			m := sum[n][c] / k
			mean[c] = float32(m)
			variance[c] = float32(max(0, sum[vn][c]/k+sumSq[n][c]/k-m*m))
		}
		if err := model.SetFloat32Value(e.ctx, n, mean, []int{len(mean)}); err != nil {
			return err
		}
		if err := model.SetFloat32Value(e.ctx, vn, variance, []int{len(variance)}); err != nil {
			return err
		}
	}
	return nil
}

// bnStatsGraph runs the network forward in training mode with a BatchNorm
// momentum of 1, so the running statistics become the batch's. It returns
// the logits' largest value, for something to return.
func (e *Engine) bnStatsGraph(ctx *mlctx.Context, x *graph.Node) *graph.Node {
	ctx.SetTraining(x.Graph(), true)
	opt := model.Options{BNMomentum: 1}
	if e.dtype != dtypes.Float32 {
		x = graph.ConvertDType(x, e.dtype)
		opt.DType = e.dtype
	}
	return graph.ReduceAllMax(graph.ConvertDType(model.Forward(ctx, e.mcfg, x, opt), dtypes.Float32))
}

// runningStatNames lists the model's BatchNorm running means and variances.
func runningStatNames(ctx *mlctx.Context) []string {
	var names []string
	for v := range ctx.IterVariables() {
		if v.Scope() == model.Scope && (strings.HasSuffix(v.Name(), ".running_mean") || strings.HasSuffix(v.Name(), ".running_var")) {
			names = append(names, v.Name())
		}
	}
	return names
}

func accumulate(into map[string][]float64, name string, v []float32, square bool) {
	s := into[name]
	if s == nil {
		s = make([]float64, len(v))
		into[name] = s
	}
	for i, x := range v {
		if square {
			s[i] += float64(x) * float64(x)
		} else {
			s[i] += float64(x)
		}
	}
}

// restoreStats puts back the running statistics saved before a failed
// recalibration.
func restoreStats(ctx *mlctx.Context, saved map[string][]float32) {
	for n, v := range saved {
		_ = model.SetFloat32Value(ctx, n, v, []int{len(v)})
	}
}
