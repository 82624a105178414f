package infer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/engine/quant"
	"github.com/covseg/covseg/volume"
)

// KeyPrecision is the metadata_props entry naming a model's arithmetic
// ("int8"); models without it are float32.
const KeyPrecision = "covseg.precision"

// KeyQuantization is the metadata_props entry recording how an int8 model
// was made: its scheme and calibration (a JSON object).
const KeyQuantization = "covseg.quantization"

// DefaultMinDice is the agreement an int8 model must reach on every held-out
// case before QuantizeModel writes it.
const DefaultMinDice = 0.99

// NamedVolume is a CT with the name reports give it.
type NamedVolume struct {
	Name string
	V    *volume.Volume
}

// QuantizeOptions configure QuantizeModel.
type QuantizeOptions struct {
	// Calibration is the range calibration (Method empty: quant.MinMax).
	Calibration quant.Calibration
	// MinDice is the least Dice between the float32 and int8 foreground
	// masks that every held-out case must reach (0: DefaultMinDice).
	MinDice float64
	// Force writes the model even when the agreement is below MinDice.
	Force bool
	// Engine configures ONNX Runtime (threads, library).
	Engine EngineOptions
	// Segment are the options the held-out cases are segmented with.
	Segment Options
	// Log, when set, receives progress lines.
	Log func(format string, args ...any)
}

// CaseAgreement compares the float32 and int8 segmentations of one CT.
type CaseAgreement struct {
	Name string `json:"name"`
	// Dice is between the two foreground (any class > 0) masks; 1 when both
	// are empty.
	Dice float64 `json:"dice"`
	// MaxProbDiff is the largest difference of a class probability.
	MaxProbDiff float64 `json:"max_prob_diff"`
	// Float32ML and Int8ML are the foreground volumes in millilitres.
	Float32ML float64 `json:"float32_ml"`
	Int8ML    float64 `json:"int8_ml"`
}

// QuantizeReport is what QuantizeModel measured.
type QuantizeReport struct {
	Calibration []string        `json:"calibration_cases"`
	Method      string          `json:"method"`
	Percentile  float64         `json:"percentile,omitempty"`
	Activations int             `json:"quantized_activations"`
	Cases       []CaseAgreement `json:"agreement"`
	MinDice     float64         `json:"min_dice"`
	Written     bool            `json:"written"`
}

// QuantizeModel makes an int8 version of the float32 ONNX model src (as
// `covseg model export` writes): it calibrates the activation ranges on the
// network inputs that covseg's preprocessing makes of the calibration CTs,
// rewrites the convolutions in QDQ form (package quant), segments the
// held-out CTs with both models and writes dst only if every held-out case
// reaches the Dice threshold (or opts.Force). The report is returned also
// when the agreement refuses the model; the error then says so.
func QuantizeModel(src, dst string, calib, held []NamedVolume, opts QuantizeOptions) (*QuantizeReport, error) {
	if len(calib) == 0 {
		return nil, fmt.Errorf("infer: quantize: no calibration CTs")
	}
	if len(held) == 0 {
		return nil, fmt.Errorf("infer: quantize: no held-out CTs to measure the agreement on")
	}
	c := opts.Calibration
	if c.Method == "" {
		c.Method = quant.MinMax
	}
	c.ORT.LibraryPath, c.ORT.Threads = opts.Engine.LibraryPath, opts.Engine.Threads
	minDice := opts.MinDice
	if minDice == 0 {
		minDice = DefaultMinDice
	}
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	m, err := readONNX(src)
	if err != nil {
		return nil, err
	}
	for _, p := range m.MetadataProps {
		if p.GetKey() == KeyPrecision {
			return nil, fmt.Errorf("infer: quantize: %s is already a %s model", src, p.GetValue())
		}
	}
	ref, err := OpenORT(src, opts.Engine)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	so := opts.Segment
	so.KeepProbs = true
	seg, err := New(ref, so)
	if err != nil {
		return nil, err
	}
	rep := &QuantizeReport{Method: c.Method, MinDice: minDice}
	if c.Method == quant.Percentile {
		rep.Percentile = c.Percentile
	}
	inputs := make([]quant.Input, 0, len(calib))
	for _, v := range calib {
		x, err := seg.Input(v.V)
		if err != nil {
			return nil, fmt.Errorf("infer: quantize: calibration CT %s: %w", v.Name, err)
		}
		inputs = append(inputs, calibrationInput(x, ref.Config().Preprocess.Grid, seg.Mode() == ModeSliding))
		rep.Calibration = append(rep.Calibration, v.Name)
	}
	logf("calibrating %d activations on %d CTs (%s)", len(quant.Targets(m)), len(inputs), c.Method)
	ranges, err := quant.Calibrate(m, inputs, c)
	if err != nil {
		return nil, fmt.Errorf("infer: quantize: %s: %w", src, err)
	}
	rep.Activations = len(ranges)
	record, err := json.Marshal(map[string]any{
		"weights":     "int8, symmetric, per output channel",
		"activations": "uint8, asymmetric, per tensor",
		"bias":        "int32, scale input scale x weight scale",
		"format":      "QDQ",
		"method":      rep.Method, "percentile": rep.Percentile,
		"calibration_cases": rep.Calibration,
	})
	if err != nil {
		return nil, fmt.Errorf("infer: quantize: %w", err)
	}
	q, err := quant.Model(m, ranges, map[string]string{KeyPrecision: "int8", KeyQuantization: string(record)})
	if err != nil {
		return nil, fmt.Errorf("infer: quantize: %s: %w", src, err)
	}
	dir, err := os.MkdirTemp("", "covseg-quant-")
	if err != nil {
		return nil, fmt.Errorf("infer: quantize: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "model.int8.onnx")
	if err := onnx.Write(tmp, q); err != nil {
		return nil, err
	}
	if err := agreement(rep, seg, tmp, held, opts, logf); err != nil {
		return rep, err
	}
	for _, cs := range rep.Cases {
		if cs.Dice < minDice && !opts.Force {
			return rep, fmt.Errorf("infer: quantize: %s: Dice %.4f between the float32 and int8 masks is below %.4g; not writing %s (force to write it anyway)",
				cs.Name, cs.Dice, minDice, dst)
		}
	}
	if err := onnx.Write(dst, q); err != nil {
		return rep, err
	}
	rep.Written = true
	return rep, nil
}

// agreement segments every held-out CT with the float32 segmenter ref and
// the int8 model at path and adds one CaseAgreement each to rep.
func agreement(rep *QuantizeReport, ref *Segmenter, path string, held []NamedVolume, opts QuantizeOptions, logf func(string, ...any)) error {
	eng, err := OpenORT(path, opts.Engine)
	if err != nil {
		return err
	}
	defer eng.Close()
	so := opts.Segment
	so.KeepProbs = true
	q, err := New(eng, so)
	if err != nil {
		return err
	}
	for _, v := range held {
		a, err := ref.Segment(v.V)
		if err != nil {
			return fmt.Errorf("infer: quantize: %s (float32): %w", v.Name, err)
		}
		b, err := q.Segment(v.V)
		if err != nil {
			return fmt.Errorf("infer: quantize: %s (int8): %w", v.Name, err)
		}
		ca := Compare(a, b)
		ca.Name = v.Name
		rep.Cases = append(rep.Cases, ca)
		logf("%s: Dice %.4f, largest probability difference %.4f, foreground %.2f ml (float32) vs %.2f ml (int8)",
			ca.Name, ca.Dice, ca.MaxProbDiff, ca.Float32ML, ca.Int8ML)
	}
	return nil
}

// Compare measures the agreement of two segmentations of one volume: the
// Dice of their foreground masks, the largest probability difference (when
// both kept probabilities) and the foreground volumes.
func Compare(a, b *Result) CaseAgreement {
	var ca CaseAgreement
	sp := a.Mask.Spacing()
	ml := sp[0] * sp[1] * sp[2] / 1000
	var na, nb, both int
	for i, x := range a.Mask.Data {
		y := b.Mask.Data[i]
		if x > 0 {
			na++
		}
		if y > 0 {
			nb++
		}
		if x > 0 && y > 0 {
			both++
		}
	}
	ca.Dice = 1
	if na+nb > 0 {
		ca.Dice = 2 * float64(both) / float64(na+nb)
	}
	ca.Float32ML, ca.Int8ML = float64(na)*ml, float64(nb)*ml
	for c := range min(len(a.Probs), len(b.Probs)) {
		for i, p := range a.Probs[c].Data {
			ca.MaxProbDiff = max(ca.MaxProbDiff, math.Abs(float64(p-b.Probs[c].Data[i])))
		}
	}
	return ca
}

// calibrationInput makes the network input of the preprocessed volume x:
// the whole grid in resize mode, its central patch of the model's grid in
// sliding mode (the size the network sees there).
func calibrationInput(x *volume.Volume, grid [3]int, sliding bool) quant.Input {
	d, h, w := x.Dims[2], x.Dims[1], x.Dims[0]
	if !sliding {
		return quant.Input{Data: x.Data, Shape: [5]int64{1, 1, int64(d), int64(h), int64(w)}}
	}
	pd, ph, pw := min(d, grid[0]), min(h, grid[1]), min(w, grid[2])
	od, oh, ow := (d-pd)/2, (h-ph)/2, (w-pw)/2
	data := make([]float32, 0, pd*ph*pw)
	for k := range pd {
		for j := range ph {
			row := ((od+k)*h+oh+j)*w + ow
			data = append(data, x.Data[row:row+pw]...)
		}
	}
	return quant.Input{Data: data, Shape: [5]int64{1, 1, int64(pd), int64(ph), int64(pw)}}
}

// readONNX reads and decodes the ONNX model at path.
func readONNX(path string) (*onnxpb.ModelProto, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if st.Size() > onnx.MaxModelSize {
		return nil, fmt.Errorf("infer: %s: %d bytes, more than an ONNX model can hold", path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("infer: %s: not an ONNX model: %w", path, err)
	}
	if m.GetGraph() == nil || len(m.GetGraph().GetInput()) != 1 {
		return nil, fmt.Errorf("infer: %s: want a graph with one input", path)
	}
	return &m, nil
}

// QuantizeUnchecked writes an int8 version of the float32 ONNX model src to
// dst, calibrated on the given network inputs, without the agreement check
// of QuantizeModel: for benchmarks, whose random networks agree with
// nothing.
func QuantizeUnchecked(src, dst string, inputs []quant.Input, c quant.Calibration) error {
	m, err := readONNX(src)
	if err != nil {
		return err
	}
	if c.Method == "" {
		c.Method = quant.MinMax
	}
	ranges, err := quant.Calibrate(m, inputs, c)
	if err != nil {
		return fmt.Errorf("infer: quantize: %s: %w", src, err)
	}
	q, err := quant.Model(m, ranges, map[string]string{KeyPrecision: "int8",
		KeyQuantization: `{"format":"QDQ","method":"` + c.Method + `","unchecked":true}`})
	if err != nil {
		return fmt.Errorf("infer: quantize: %s: %w", src, err)
	}
	return onnx.Write(dst, q)
}
