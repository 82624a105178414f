package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/covseg/covseg/model/torchpth"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// LoadStateDict copies tensors of sd into the model variables of ctx: every
// parameter and running statistic of the given parts (all parts if none).
// Names are this package's (torchvision's for the encoder, see the package
// comment); other keys (fc.*, num_batches_tracked) are ignored. A stem
// kernel with 3 input channels (RGB) loads into a 1-channel model summed over
// that axis, as faimed3d does (the same as feeding the CT to all three).
//
// It fails, changing nothing, if a tensor is missing (all missing names are
// listed), has another shape (the name and both shapes are given) or is not
// floating point.
func LoadStateDict(ctx *context.Context, cfg Config, sd *torchpth.StateDict, parts ...Part) error {
	specs, err := ParamSpecs(cfg)
	if err != nil {
		return err
	}
	type update struct {
		name  string
		data  []float32
		shape []int
	}
	var updates []update
	var missing, problems []string
	for _, s := range specs {
		if len(parts) > 0 && !slices.Contains(parts, s.Part) {
			continue
		}
		t, ok := sd.Tensors[s.Name]
		if !ok {
			missing = append(missing, s.Name)
			continue
		}
		if t.F32 == nil {
			problems = append(problems, fmt.Sprintf("%s is %s, not floating point", s.Name, t.DType))
			continue
		}
		data := t.F32
		if s.Name == "stem.0.weight" && len(t.Shape) == 5 && t.Shape[1] == 3 && cfg.InChannels == 1 &&
			slices.Equal(t.Shape[2:], s.Shape[2:]) && t.Shape[0] == s.Shape[0] {
			data = sumRGB(t.F32, t.Shape)
		} else if !slices.Equal(t.Shape, s.Shape) {
			problems = append(problems, fmt.Sprintf("%s has shape %v in the file, the model needs %v", s.Name, t.Shape, s.Shape))
			continue
		}
		updates = append(updates, update{s.Name, data, s.Shape})
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("%d tensors missing: %s", len(missing), strings.Join(missing, ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("model: state_dict does not fit %s: %s", cfg, strings.Join(problems, "; "))
	}
	for _, u := range updates {
		if Variable(ctx, u.name) == nil {
			return fmt.Errorf("model: variable %q is missing from the context", u.name)
		}
	}
	for _, u := range updates {
		if err := SetFloat32Value(ctx, u.name, u.data, u.shape); err != nil {
			return err
		}
	}
	return nil
}

// sumRGB sums a [O, 3, kD, kH, kW] kernel over its input-channel axis.
func sumRGB(w []float32, shape []int) []float32 {
	o, k := shape[0], shape[2]*shape[3]*shape[4]
	out := make([]float32, o*k)
	for i := range o {
		for c := range 3 {
			src := w[(i*3+c)*k : (i*3+c+1)*k]
			dst := out[i*k : (i+1)*k]
			for j, v := range src {
				dst[j] += v
			}
		}
	}
	return out
}

// LoadPretrainedEncoder reads torchvision's r3d_18 weights (e.g.
// r3d_18-b3b3357e.pth, Kinetics-400) into the encoder variables of ctx and
// records the file's name and SHA-256 in cfg.Encoder. The model must have
// full width.
func LoadPretrainedEncoder(ctx *context.Context, cfg *Config, path string) error {
	sd, err := torchpth.ReadStateDict(path)
	if err != nil {
		return err
	}
	if err := LoadStateDict(ctx, *cfg, sd, PartEncoder); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return err
	}
	cfg.Encoder.Kind = SourceTorchvision
	cfg.Encoder.File = filepath.Base(path)
	cfg.Encoder.SHA256 = sum
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("model: %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
