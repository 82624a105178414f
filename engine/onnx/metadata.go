package onnx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
)

// Keys of covseg's entries in an exported model's metadata_props.
const (
	KeyVersion       = "covseg.version"
	KeyArchitecture  = "covseg.architecture"
	KeyPreprocessing = "covseg.preprocessing"
	KeyClasses       = "covseg.classes"
)

// Metadata is what covseg stores in an exported model besides the graph: what
// an engine needs to use the network on a CT.
type Metadata struct {
	// Version is the covseg version that exported the model.
	Version string
	// Architecture is the network's configuration (model.Config) as a JSON
	// object.
	Architecture json.RawMessage
	// Preprocessing says how a CT becomes the network's input (HU window,
	// normalisation, input grid or spacing) as a JSON object.
	Preprocessing json.RawMessage
	// Classes names the output channels, background first.
	Classes []string
}

// props encodes m as metadata_props, refusing what ParseMetadata would.
func (m Metadata) props() ([]*onnxpb.StringStringEntryProto, error) {
	if m.Version == "" {
		return nil, fmt.Errorf("onnx: metadata: empty covseg version")
	}
	arch, err := compactObject(KeyArchitecture, m.Architecture)
	if err != nil {
		return nil, err
	}
	pre, err := compactObject(KeyPreprocessing, m.Preprocessing)
	if err != nil {
		return nil, err
	}
	if len(m.Classes) == 0 {
		return nil, fmt.Errorf("onnx: metadata: no class names")
	}
	classes, err := json.Marshal(m.Classes)
	if err != nil {
		return nil, fmt.Errorf("onnx: metadata: class names: %w", err)
	}
	entry := func(k, v string) *onnxpb.StringStringEntryProto {
		return &onnxpb.StringStringEntryProto{Key: &k, Value: &v}
	}
	return []*onnxpb.StringStringEntryProto{
		entry(KeyVersion, m.Version),
		entry(KeyArchitecture, arch),
		entry(KeyPreprocessing, pre),
		entry(KeyClasses, string(classes)),
	}, nil
}

// compactObject checks that raw is a JSON object and returns it compacted.
func compactObject(key string, raw json.RawMessage) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return "", fmt.Errorf("onnx: metadata %s: not a JSON object", key)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("onnx: metadata %s: %w", key, err)
	}
	return buf.String(), nil
}

// ParseMetadata decodes covseg's entries of a model's metadata_props (as an
// engine such as ONNX Runtime reports them). Other keys are ignored; a missing
// or malformed covseg key is an error, so a model covseg did not export is
// refused rather than misused.
func ParseMetadata(props map[string]string) (Metadata, error) {
	var m Metadata
	for _, k := range []string{KeyVersion, KeyArchitecture, KeyPreprocessing, KeyClasses} {
		if _, ok := props[k]; !ok {
			return m, fmt.Errorf("onnx: metadata: no %q entry (not a model exported by covseg?)", k)
		}
	}
	m.Version = props[KeyVersion]
	if m.Version == "" {
		return m, fmt.Errorf("onnx: metadata: empty %q", KeyVersion)
	}
	for _, f := range []struct {
		key string
		dst *json.RawMessage
	}{{KeyArchitecture, &m.Architecture}, {KeyPreprocessing, &m.Preprocessing}} {
		s, err := compactObject(f.key, json.RawMessage(props[f.key]))
		if err != nil {
			return Metadata{}, err
		}
		*f.dst = json.RawMessage(s)
	}
	if err := json.Unmarshal([]byte(props[KeyClasses]), &m.Classes); err != nil || len(m.Classes) == 0 {
		return Metadata{}, fmt.Errorf("onnx: metadata %s: want a non-empty JSON array of strings", KeyClasses)
	}
	return m, nil
}

// MaxModelSize is the largest model file covseg reads: a protobuf message
// cannot exceed 2 GiB.
const MaxModelSize = 2 << 30

// ReadMetadata reads the metadata_props of the ONNX model at path and decodes
// covseg's entries. See Describe.
func ReadMetadata(path string) (Metadata, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Metadata{}, fmt.Errorf("onnx: %w", err)
	}
	if st.Size() > MaxModelSize {
		return Metadata{}, fmt.Errorf("onnx: %s: %d bytes, more than an ONNX protobuf can hold", path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Metadata{}, fmt.Errorf("onnx: %w", err)
	}
	info, err := Describe(data)
	if err != nil {
		return Metadata{}, fmt.Errorf("onnx: %s: %w", path, err)
	}
	m, err := ParseMetadata(info.Props)
	if err != nil {
		return Metadata{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
