package model

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// A model file is a zip archive (entries stored, not compressed) holding
// manifest.json — the format name and version, the Config and one record per
// variable (scope, name, dtype, shape, trainable, entry, byte count,
// CRC-32) — and one entry of raw little-endian values per variable. It keeps
// every variable of the context: the model's under Scope and any others, such
// as an optimiser's moments and step, so training can resume from it.
const (
	fileFormat   = "covseg-model"
	fileVersion  = 1
	manifestName = "manifest.json"
	maxManifest  = 64 << 20
	maxVariables = 1 << 16
	maxVarBytes  = 1 << 34
	maxVarRank   = 8
)

// VarInfo describes one variable stored in a model file.
type VarInfo struct {
	Scope     string `json:"scope"`
	Name      string `json:"name"`
	DType     string `json:"dtype"` // GoMLX's name: "Float32", "Int64", ...
	Shape     []int  `json:"shape"`
	Trainable bool   `json:"trainable"`
	Entry     string `json:"entry"`
	Bytes     int64  `json:"bytes"`
	CRC32     uint32 `json:"crc32"`
}

// Manifest is the table of contents of a model file.
type Manifest struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	Saved     time.Time `json:"saved"`
	Config    Config    `json:"config"`
	Variables []VarInfo `json:"variables"`
}

// Save writes cfg and every variable of ctx to path as one file. It writes a
// temporary file beside path and renames it, so path is either the old file
// or the complete new one.
func Save(path string, cfg Config, ctx *context.Context) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkModelVariables(ctx, cfg); err != nil {
		return fmt.Errorf("model: save %s: %w", path, err)
	}
	err := atomicfile.Write(path, func(out io.Writer) error {
		zw := zip.NewWriter(out)
		m := Manifest{Format: fileFormat, Version: fileVersion, Saved: time.Now().UTC(), Config: cfg}
		for v := range ctx.IterVariables() {
			info, err := writeVariable(zw, v, len(m.Variables))
			if err != nil {
				return err
			}
			m.Variables = append(m.Variables, info)
		}
		mj, err := json.MarshalIndent(m, "", " ")
		if err != nil {
			return err
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: manifestName, Method: zip.Store})
		if err != nil {
			return err
		}
		if _, err := w.Write(mj); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return fmt.Errorf("model: save %w", err)
	}
	return nil
}

// checkModelVariables verifies that ctx holds exactly the model of cfg.
func checkModelVariables(ctx *context.Context, cfg Config) error {
	var infos []VarInfo
	for v := range ctx.IterVariables() {
		infos = append(infos, VarInfo{Scope: v.Scope(), Name: v.Name(), DType: v.DType().String(), Shape: v.Shape().Dimensions})
	}
	return matchSpecs(infos, cfg)
}

// matchSpecs checks that the variables under Scope are exactly ParamSpecs(cfg).
func matchSpecs(vars []VarInfo, cfg Config) error {
	specs, err := ParamSpecs(cfg)
	if err != nil {
		return err
	}
	want := map[string][]int{}
	for _, s := range specs {
		want[s.Name] = s.Shape
	}
	var problems []string
	seen := map[string]bool{}
	for _, v := range vars {
		if v.Scope != Scope {
			continue
		}
		seen[v.Name] = true
		shape, ok := want[v.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("unexpected variable %q", v.Name))
		case v.DType != dtypes.Float32.String() || !slices.Equal(shape, v.Shape):
			problems = append(problems, fmt.Sprintf("%s is %s%v, the architecture needs Float32%v", v.Name, v.DType, v.Shape, shape))
		}
	}
	for _, s := range specs {
		if !seen[s.Name] {
			problems = append(problems, fmt.Sprintf("variable %q missing", s.Name))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 12 {
			problems = append(problems[:12], fmt.Sprintf("and %d more", len(problems)-12))
		}
		return fmt.Errorf("variables do not match %s: %s", cfg, strings.Join(problems, "; "))
	}
	return nil
}

func writeVariable(zw *zip.Writer, v *context.Variable, i int) (VarInfo, error) {
	info := VarInfo{
		Scope: v.Scope(), Name: v.Name(), DType: v.DType().String(),
		Shape: slices.Clone(v.Shape().Dimensions), Trainable: v.Trainable,
		Entry: fmt.Sprintf("variables/%05d.bin", i),
	}
	if v.DType().Size() < 1 {
		return info, fmt.Errorf("variable %s: dtype %s cannot be stored", v.ScopeAndName(), v.DType())
	}
	t, err := v.Value()
	if err != nil {
		return info, fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
	}
	w, err := zw.CreateHeader(&zip.FileHeader{Name: info.Entry, Method: zip.Store})
	if err != nil {
		return info, err
	}
	if t.Shape().Size() == 0 {
		return info, nil
	}
	var werr error
	err = t.ConstBytes(func(b []byte) {
		le := toLittleEndian(b, v.DType().Size())
		info.Bytes = int64(len(le))
		info.CRC32 = crc32.ChecksumIEEE(le)
		_, werr = w.Write(le)
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return info, fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
	}
	return info, nil
}

// littleEndianHost says whether the machine stores numbers as the file does.
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// toLittleEndian returns b (elements of size bytes) in little-endian order:
// b itself on a little-endian machine, a swapped copy otherwise. It is its
// own inverse.
func toLittleEndian(b []byte, size int) []byte {
	if littleEndianHost || size == 1 {
		return b
	}
	out := make([]byte, len(b))
	for i := 0; i+size <= len(b); i += size {
		for j := range size {
			out[i+j] = b[i+size-1-j]
		}
	}
	return out
}

// ReadManifest reads the table of contents of a model file without loading
// the variables.
func ReadManifest(path string) (*Manifest, error) {
	f, zr, err := openModelFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := readManifest(zr)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	return m, nil
}

func openModelFile(path string) (*os.File, *zip.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("model: %s: not a covseg model file (not a complete zip archive: %v)", path, err)
	}
	return f, zr, nil
}

// readManifest reads and checks manifest.json; it returns the archive's
// entries by name too.
func readManifest(zr *zip.Reader) (*Manifest, map[string]*zip.File, error) {
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[f.Name] = f
	}
	mf, ok := files[manifestName]
	if !ok {
		return nil, nil, errors.New("not a covseg model file (no manifest.json)")
	}
	if mf.UncompressedSize64 > maxManifest {
		return nil, nil, fmt.Errorf("manifest of %d bytes is too large", mf.UncompressedSize64)
	}
	raw, err := readEntry(mf, int64(mf.UncompressedSize64))
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Format != fileFormat {
		return nil, nil, fmt.Errorf("not a covseg model file (format %q)", m.Format)
	}
	if m.Version != fileVersion {
		return nil, nil, fmt.Errorf("model file version %d, this covseg reads version %d", m.Version, fileVersion)
	}
	if err := m.Config.Validate(); err != nil {
		return nil, nil, err
	}
	if len(m.Variables) > maxVariables {
		return nil, nil, fmt.Errorf("%d variables", len(m.Variables))
	}
	seen := map[string]bool{}
	for _, v := range m.Variables {
		if err := checkVarInfo(v, files); err != nil {
			return nil, nil, err
		}
		if seen[v.Scope+"\x00"+v.Name] {
			return nil, nil, fmt.Errorf("variable %s %s appears twice", v.Scope, v.Name)
		}
		seen[v.Scope+"\x00"+v.Name] = true
	}
	if err := matchSpecs(m.Variables, m.Config); err != nil {
		return nil, nil, fmt.Errorf("not a model of its own architecture: %w", err)
	}
	return &m, files, nil
}

// checkVarInfo validates one manifest record against its entry before
// anything is allocated for it.
func checkVarInfo(v VarInfo, files map[string]*zip.File) error {
	if !strings.HasPrefix(v.Scope, context.ScopeSeparator) || v.Name == "" || strings.Contains(v.Name, context.ScopeSeparator) {
		return fmt.Errorf("variable %q in scope %q: bad name", v.Name, v.Scope)
	}
	dt, err := dtypes.DTypeString(v.DType)
	if err != nil || dt.Size() < 1 {
		return fmt.Errorf("variable %s %s: unsupported dtype %q", v.Scope, v.Name, v.DType)
	}
	if len(v.Shape) > maxVarRank {
		return fmt.Errorf("variable %s %s: rank %d", v.Scope, v.Name, len(v.Shape))
	}
	n := int64(dt.Size())
	for _, d := range v.Shape {
		if d < 0 || (d > 0 && n > maxVarBytes/int64(d)) {
			return fmt.Errorf("variable %s %s: bad shape %v", v.Scope, v.Name, v.Shape)
		}
		n *= int64(d)
	}
	if n != v.Bytes {
		return fmt.Errorf("variable %s %s: %d bytes for %s%v", v.Scope, v.Name, v.Bytes, v.DType, v.Shape)
	}
	f, ok := files[v.Entry]
	if !ok {
		return fmt.Errorf("variable %s %s: entry %q missing", v.Scope, v.Name, v.Entry)
	}
	if f.UncompressedSize64 != uint64(n) || f.Method != zip.Store || f.CompressedSize64 != f.UncompressedSize64 {
		return fmt.Errorf("variable %s %s: entry %q holds %d bytes, want %d stored", v.Scope, v.Name, v.Entry, f.UncompressedSize64, n)
	}
	return nil
}

// readEntry reads a whole zip entry of n bytes, letting archive/zip check
// its CRC-32.
func readEntry(f *zip.File, n int64) ([]byte, error) {
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		if err == nil {
			err = errors.New("longer than its header says")
		}
		return nil, err
	}
	return b, nil
}

// Load reads a model file written by Save: its Config and a new context
// holding all its variables (model and optimiser state) with their
// trainable flags. A file of another architecture, a truncated or corrupt
// file fails with an error that says so.
func Load(path string) (Config, *context.Context, error) {
	f, zr, err := openModelFile(path)
	if err != nil {
		return Config{}, nil, err
	}
	defer f.Close()
	m, files, err := readManifest(zr)
	if err != nil {
		return Config{}, nil, fmt.Errorf("model: %s: %w", path, err)
	}
	ctx := context.New()
	for _, v := range m.Variables {
		t, err := readVariable(files[v.Entry], v)
		if err != nil {
			return Config{}, nil, fmt.Errorf("model: %s: variable %s %s: %w", path, v.Scope, v.Name, err)
		}
		ctx.InAbsPath(v.Scope).Checked(false).VariableWithValue(v.Name, t).SetTrainable(v.Trainable)
	}
	return m.Config, ctx, nil
}

func readVariable(f *zip.File, v VarInfo) (*tensors.Tensor, error) {
	dt, _ := dtypes.DTypeString(v.DType) // checked by checkVarInfo
	b, err := readEntry(f, v.Bytes)
	if err != nil {
		return nil, err
	}
	if c := crc32.ChecksumIEEE(b); c != v.CRC32 {
		return nil, fmt.Errorf("checksum %08x, manifest says %08x: the file is corrupt", c, v.CRC32)
	}
	t := tensors.FromShape(shapes.Make(dt, v.Shape...))
	if len(b) == 0 {
		return t, nil
	}
	if err := t.MutableBytes(func(data []byte) { copy(data, toLittleEndian(b, dt.Size())) }); err != nil {
		return nil, err
	}
	return t, nil
}
