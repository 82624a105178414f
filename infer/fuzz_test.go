package infer

import (
	"encoding/json"
	"testing"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/model"
)

// FuzzConfigFromMetadata feeds arbitrary metadata_props to the reader of a
// model's configuration (an ONNX file is untrusted input): it must not
// panic, and whatever it accepts must be a valid configuration.
func FuzzConfigFromMetadata(f *testing.F) {
	cfg := model.DefaultConfig()
	arch, _ := json.Marshal(cfg)
	pre, _ := json.Marshal(cfg.Preprocess)
	classes, _ := json.Marshal(cfg.ClassNames)
	f.Add("0.1", string(arch), string(pre), string(classes))
	f.Add("x", string(arch), `{"window_low":0,"window_high":1,"normalize":"fixed","std":0,"orientation":"LPS","mode":"resize","grid":[1,1,1]}`, `["a","b"]`)
	f.Add("x", `{"arch":"r3d18-unet3d","classes":1,"class_names":["x"],"in_channels":1,"width":0.015625}`, string(pre), `["x"]`)
	f.Add("", "{}", "[]", "null")
	f.Fuzz(func(t *testing.T, version, arch, pre, classes string) {
		props := map[string]string{
			onnx.KeyVersion: version, onnx.KeyArchitecture: arch,
			onnx.KeyPreprocessing: pre, onnx.KeyClasses: classes,
		}
		c, err := configFromMetadata(props)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid configuration: %v", err)
		}
	})
}
