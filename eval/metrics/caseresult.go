package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// CaseResult is one case's figures as every covseg output that lists cases
// writes them: covseg evaluate (--json, --csv), reproduce (results.json,
// cases.csv) and the demo (demo.json). Its JSON object has the keys
//
//	case                      the case's name
//	dataset, split            where it comes from (omitted when empty)
//	image, pred, truth        its CT, predicted and reference mask files (omitted when empty)
//	error                     why it failed (omitted when it did not)
//	dice, iou                 overlap
//	sensitivity, precision    recall and precision of the prediction
//	hd95_mm, hd_mm            95th-percentile and maximum symmetric surface distance, mm
//	nsd_<τ>mm                 normalised surface Dice at tolerance τ mm, one key per
//	                          tolerance: nsd_1mm, nsd_2.5mm (see NSDKey)
//	truth_ml, pred_ml         reference and predicted volume, ml
//	volume_diff_ml            pred_ml − truth_ml
//	truth_voxels, pred_voxels voxel counts
//
// Figures are null where undefined (see Result) and for failed cases.
type CaseResult struct {
	Case        string `json:"case"`
	Dataset     string `json:"dataset,omitempty"`
	Split       string `json:"split,omitempty"`
	Image       string `json:"image,omitempty"`
	Pred        string `json:"pred,omitempty"`
	Truth       string `json:"truth,omitempty"`
	Error       string `json:"error,omitempty"`
	Dice        Value  `json:"dice"`
	IoU         Value  `json:"iou"`
	Sensitivity Value  `json:"sensitivity"`
	Precision   Value  `json:"precision"`
	HD95        Value  `json:"hd95_mm"`
	HD          Value  `json:"hd_mm"`
	// Taus are the NSD tolerances in mm and NSD the surface Dice at each:
	// the keys nsd_<τ>mm.
	Taus        []float64 `json:"-"`
	NSD         []Value   `json:"-"`
	TruthML     Value     `json:"truth_ml"`
	PredML      Value     `json:"pred_ml"`
	DiffML      Value     `json:"volume_diff_ml"`
	TruthVoxels *int      `json:"truth_voxels"`
	PredVoxels  *int      `json:"pred_voxels"`
	// Result is the comparison the figures come from; nil for a failed
	// case or one read back from JSON.
	Result *Result `json:"-"`
}

// NewCaseResult returns the case's figures from r, or undefined figures
// and err's message when err is not nil. taus are the tolerances whose NSD
// keys a failed case still has (null).
func NewCaseResult(name string, r *Result, err error, taus []float64) CaseResult {
	u := Undefined()
	c := CaseResult{Case: name, Dice: u, IoU: u, Sensitivity: u, Precision: u, HD95: u, HD: u,
		TruthML: u, PredML: u, DiffML: u}
	if err != nil || r == nil {
		if err != nil {
			c.Error = err.Error()
		}
		c.Taus = append([]float64(nil), taus...)
		c.NSD = make([]Value, len(taus))
		for i := range c.NSD {
			c.NSD[i] = u
		}
		return c
	}
	c.Result = r
	c.Dice, c.IoU, c.Sensitivity, c.Precision, c.HD95, c.HD = r.Dice, r.IoU, r.Sensitivity, r.Precision, r.HD95, r.HD
	c.Taus, c.NSD = append([]float64(nil), r.Taus...), append([]Value(nil), r.NSD...)
	c.TruthML, c.PredML, c.DiffML = Value(r.TruthML), Value(r.PredML), Value(r.DiffML)
	tv, pv := r.TruthVoxels, r.PredVoxels
	c.TruthVoxels, c.PredVoxels = &tv, &pv
	return c
}

// NSDAt returns the NSD at tolerance tau mm, undefined when it was not
// computed.
func (c CaseResult) NSDAt(tau float64) Value {
	for i, t := range c.Taus {
		if t == tau && i < len(c.NSD) {
			return c.NSD[i]
		}
	}
	return Undefined()
}

// NSDKey is the JSON key (and column header) of the NSD at tau mm:
// "nsd_1mm", "nsd_2.5mm".
func NSDKey(tau float64) string { return "nsd_" + strconv.FormatFloat(tau, 'g', -1, 64) + "mm" }

// tauOfKey parses an NSDKey; ok is false for other keys.
func tauOfKey(key string) (float64, bool) {
	s, ok := strings.CutPrefix(key, "nsd_")
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, "mm"); !ok {
		return 0, false
	}
	t, err := strconv.ParseFloat(s, 64)
	return t, err == nil
}

// caseResultFields is CaseResult without its methods, for the default
// encoding of its plain fields.
type caseResultFields CaseResult

// MarshalJSON writes the keys listed on CaseResult, the nsd_<τ>mm keys
// last.
func (c CaseResult) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(caseResultFields(c))
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(c.Taus))
	for i := range c.Taus {
		vals[i] = Undefined()
		if i < len(c.NSD) {
			vals[i] = c.NSD[i]
		}
	}
	return AppendNSDKeys(b, c.Taus, vals)
}

// UnmarshalJSON reads what MarshalJSON writes, the nsd_<τ>mm keys in
// increasing τ.
func (c *CaseResult) UnmarshalJSON(b []byte) error {
	var f caseResultFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*c = CaseResult(f)
	c.Taus, c.NSD = nil, nil
	for k, raw := range all {
		tau, ok := tauOfKey(k)
		if !ok {
			continue
		}
		var v Value
		if err := v.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("metrics: %s: %w", k, err)
		}
		i := 0
		for i < len(c.Taus) && c.Taus[i] < tau {
			i++
		}
		c.Taus = append(c.Taus[:i], append([]float64{tau}, c.Taus[i:]...)...)
		c.NSD = append(c.NSD[:i], append([]Value{v}, c.NSD[i:]...)...)
	}
	return nil
}

// AppendNSDKeys adds the keys NSDKey(taus[i]) with the JSON of vals[i] to
// the JSON object obj (as json.Marshal writes it) before its closing
// brace: how covseg's outputs flatten per-tolerance figures.
func AppendNSDKeys(obj []byte, taus []float64, vals []any) ([]byte, error) {
	obj = bytes.TrimSpace(obj)
	if len(obj) < 2 || obj[len(obj)-1] != '}' {
		return nil, fmt.Errorf("metrics: %q is not a JSON object", obj)
	}
	var b bytes.Buffer
	b.Write(obj[:len(obj)-1])
	empty := bytes.Equal(bytes.TrimSpace(obj[1:len(obj)-1]), nil)
	for i, tau := range taus {
		v, err := json.Marshal(vals[i])
		if err != nil {
			return nil, err
		}
		if !empty || i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(NSDKey(tau))
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
