// Package torchpth reads PyTorch state_dict files (torch.save's zip format,
// PyTorch >= 1.6, and the older single-stream pickle format) such as
// torchvision's r3d_18-b3b3357e.pth, with github.com/nlpodyssey/gopickle and
// a scan that bounds the pickle before it is run. It knows nothing of the
// network: package model maps the tensors onto its variables.
package torchpth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// Tensor is one tensor of a PyTorch state_dict, copied out of its
// storage in row-major order.
type Tensor struct {
	DType string // "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"
	Shape []int
	F32   []float32 // the values of floating-point tensors, as float32
	I64   []int64   // the values of integer and bool tensors
}

// Size is the number of elements.
func (t *Tensor) Size() int { return numel(t.Shape) }

// StateDict is a PyTorch state_dict: tensors by name, Keys in file order.
type StateDict struct {
	Keys    []string
	Tensors map[string]*Tensor
}

// Limits that keep a hostile or corrupt file from making the reader allocate
// without bound; a real state_dict is far below them.
const (
	maxPickleBytes  = 64 << 20 // data.pkl of a state_dict is a few hundred kB
	maxTensorElems  = 1 << 31
	maxTensorRank   = 8
	maxStorageBytes = 1 << 34
)

// ReadStateDict reads a state_dict written by torch.save: the zip format
// (PyTorch ≥ 1.6) or the older single-stream format. Floating tensors come
// out as float32, integer ones as int64. A dict holding the state_dict under
// "state_dict" or "model" (a training checkpoint) is accepted too.
func ReadStateDict(path string) (*StateDict, error) {
	sd, err := readStateDict(path)
	if err != nil {
		return nil, fmt.Errorf("torchpth: %s: %w", path, err)
	}
	return sd, nil
}

func readStateDict(name string) (sd *StateDict, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var head [4]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return nil, errors.New("not a PyTorch file: too short")
	}
	switch {
	case bytes.Equal(head[:], []byte("PK\x03\x04")):
		zr, err := zip.NewReader(f, st.Size())
		if err != nil {
			return nil, fmt.Errorf("not a valid zip archive: %w", err)
		}
		return readZipStateDict(zr, st.Size())
	case head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		data, err := readAllLimited(f, st.Size())
		if err != nil {
			return nil, err
		}
		return readLegacyStateDict(data)
	}
	return nil, errors.New("not a PyTorch file: neither a zip archive (torch.save since 1.6) nor a pickle")
}

func readAllLimited(f *os.File, size int64) ([]byte, error) {
	if size > maxStorageBytes {
		return nil, fmt.Errorf("file of %d bytes is too large", size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	return data, nil
}

// storageRef is a storage named by a pickle's persistent id; data is read
// only for the tensors that use it.
type storageRef struct {
	dtype    string
	itemSize int
	key      string
	numel    int
	data     []byte // raw little-endian bytes, once read
}

// tensorRef is a tensor as the pickle describes it: a strided view of a
// storage.
type tensorRef struct {
	storage *storageRef
	offset  int
	shape   []int
	stride  []int
}

// storageClass marks a torch.XxxStorage class found in the pickle.
type storageClass struct {
	dtype    string
	itemSize int
}

var storageClasses = map[string]storageClass{
	"FloatStorage":    {"float32", 4},
	"DoubleStorage":   {"float64", 8},
	"HalfStorage":     {"float16", 2},
	"BFloat16Storage": {"bfloat16", 2},
	"LongStorage":     {"int64", 8},
	"IntStorage":      {"int32", 4},
	"ShortStorage":    {"int16", 2},
	"CharStorage":     {"int8", 1},
	"ByteStorage":     {"uint8", 1},
	"BoolStorage":     {"bool", 1},
}

// callFunc adapts a Go function to a pickled callable.
type callFunc func(args ...any) (any, error)

func (f callFunc) Call(args ...any) (any, error) { return f(args...) }

// findClass resolves the globals a state_dict pickle may name; anything
// else is refused rather than mimicked.
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return callFunc(rebuildTensor), nil
	case "torch._utils._rebuild_parameter":
		return callFunc(func(args ...any) (any, error) {
			if len(args) < 1 {
				return nil, errors.New("_rebuild_parameter without arguments")
			}
			if _, ok := args[0].(*tensorRef); !ok {
				return nil, errors.New("_rebuild_parameter of something not a tensor")
			}
			return args[0], nil
		}), nil
	}
	if module == "torch" {
		if c, ok := storageClasses[name]; ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("unsupported pickled class %s.%s (not a plain state_dict?)", module, name)
}

// rebuildTensor is torch._utils._rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]).
func rebuildTensor(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments", len(args))
	}
	st, ok := args[0].(*storageRef)
	offset, ok2 := args[1].(int)
	shape, ok3 := intTuple(args[2])
	stride, ok4 := intTuple(args[3])
	if !ok || !ok2 || !ok3 || !ok4 || len(shape) != len(stride) || offset < 0 {
		return nil, errors.New("_rebuild_tensor_v2 with malformed arguments")
	}
	if len(shape) > maxTensorRank {
		return nil, fmt.Errorf("tensor of rank %d", len(shape))
	}
	n, last := 1, offset // elements, and the largest storage index used
	for i, d := range shape {
		if d < 0 || stride[i] < 0 {
			return nil, fmt.Errorf("tensor with negative size or stride %v / %v", shape, stride)
		}
		if d == 0 {
			n = 0
			break
		}
		if n > maxTensorElems/d {
			return nil, fmt.Errorf("tensor of shape %v is too large", shape)
		}
		n *= d
		last += (d - 1) * stride[i]
	}
	if n > st.numel {
		// Only broadcast views (stride 0) are larger than their storage.
		return nil, fmt.Errorf("tensor of shape %v is larger than its storage of %d elements", shape, st.numel)
	}
	if n > 0 && last >= st.numel {
		return nil, fmt.Errorf("tensor of shape %v, strides %v at offset %d overruns its storage of %d elements",
			shape, stride, offset, st.numel)
	}
	return &tensorRef{storage: st, offset: offset, shape: shape, stride: stride}, nil
}

func intTuple(v any) ([]int, bool) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int, t.Len())
	for i := range out {
		if out[i], ok = t.Get(i).(int); !ok {
			return nil, false
		}
	}
	return out, true
}

// storageID parses a persistent id ('storage', StorageClass, key, location,
// numel[, view]) into its class, key and size.
func storageID(id any, wantLen int) (storageClass, string, int, *types.Tuple, error) {
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() < wantLen {
		return storageClass{}, "", 0, nil, fmt.Errorf("unexpected persistent id %v", id)
	}
	kind, _ := t.Get(0).(string)
	class, ok1 := t.Get(1).(storageClass)
	key, ok2 := t.Get(2).(string)
	n, ok3 := t.Get(4).(int)
	if kind != "storage" || !ok1 || !ok2 || !ok3 || n < 0 {
		return storageClass{}, "", 0, nil, fmt.Errorf("unexpected persistent id %v", id)
	}
	if int64(n) > maxStorageBytes/int64(class.itemSize) {
		return storageClass{}, "", 0, nil, fmt.Errorf("storage %q of %d elements is too large", key, n)
	}
	return class, key, n, t, nil
}

// unpickle runs gopickle on one complete pickle (scanned first), turning
// any panic of the library into an error.
func unpickle(data []byte, persistentLoad func(any) (any, error)) (obj any, err error) {
	if _, err := scanPickle(data); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = findClass
	u.PersistentLoad = persistentLoad
	return u.Load()
}

func readZipStateDict(zr *zip.Reader, fileSize int64) (*StateDict, error) {
	files := map[string]*zip.File{}
	var pkl *zip.File
	for _, f := range zr.File {
		files[f.Name] = f
		if path.Base(f.Name) == "data.pkl" && (pkl == nil || len(f.Name) < len(pkl.Name)) {
			pkl = f
		}
	}
	if pkl == nil {
		return nil, errors.New("zip archive without data.pkl: not written by torch.save")
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	if _, ok := files[prefix+"constants.pkl"]; ok {
		return nil, errors.New("a TorchScript archive (torch.jit.save), not a state_dict: save model.state_dict() with torch.save")
	}
	if pkl.UncompressedSize64 > maxPickleBytes {
		return nil, fmt.Errorf("data.pkl of %d bytes is too large", pkl.UncompressedSize64)
	}
	data, err := readZipFile(pkl, int(pkl.UncompressedSize64))
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	storages := map[string]*storageRef{}
	obj, err := unpickle(data, func(id any) (any, error) {
		class, key, n, _, err := storageID(id, 5)
		if err != nil {
			return nil, err
		}
		if s, ok := storages[key]; ok {
			return s, nil
		}
		f, ok := files[prefix+"data/"+key]
		if !ok {
			return nil, fmt.Errorf("storage %q is missing from the archive", key)
		}
		size := uint64(n) * uint64(class.itemSize)
		if f.UncompressedSize64 < size {
			return nil, fmt.Errorf("storage %q has %d bytes, its tensor needs %d", key, f.UncompressedSize64, size)
		}
		// Refuse sizes the file cannot hold before allocating them: torch.save
		// stores entries uncompressed; deflate expands at most ~1032 times.
		ratio := uint64(1)
		if f.Method != zip.Store {
			ratio = 1032
		}
		if f.CompressedSize64 > uint64(fileSize) || size > f.CompressedSize64*ratio {
			return nil, fmt.Errorf("storage %q claims %d bytes, more than the file holds", key, size)
		}
		s := &storageRef{dtype: class.dtype, itemSize: class.itemSize, key: key, numel: n}
		storages[key] = s
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	return collect(obj, func(s *storageRef) error {
		b, err := readZipFile(files[prefix+"data/"+s.key], s.numel*s.itemSize)
		if err != nil {
			return fmt.Errorf("storage %q: %w", s.key, err)
		}
		s.data = b
		return nil
	})
}

// readZipFile reads the first n bytes of a zip entry and, when that is the
// whole entry, lets archive/zip verify its CRC-32.
func readZipFile(f *zip.File, n int) ([]byte, error) {
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if uint64(n) == f.UncompressedSize64 {
		if _, err := r.Read(make([]byte, 1)); err != io.EOF {
			if err == nil {
				err = errors.New("longer than its header says")
			}
			return nil, err
		}
	}
	return b, nil
}

// readLegacyStateDict reads torch.save's format before 1.6: pickles of the
// magic number, the protocol version and the system info, the object, the
// list of storage keys, then each storage as an int64 element count and its
// raw bytes.
func readLegacyStateDict(data []byte) (*StateDict, error) {
	pos := 0
	next := func(what string, pl func(any) (any, error)) (any, error) {
		n, err := scanPickle(data[pos:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		obj, err := unpickle(data[pos:pos+n], pl)
		pos += n
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return obj, nil
	}
	magic, err := next("magic number", nil)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Text(16) != "1950a86a20f9469cfc6c" {
		return nil, errors.New("a pickle, but not one written by torch.save")
	}
	if proto, err := next("protocol version", nil); err != nil {
		return nil, err
	} else if proto != 1001 {
		return nil, fmt.Errorf("torch.save protocol %v, want 1001", proto)
	}
	info, err := next("system info", nil)
	if err != nil {
		return nil, err
	}
	if d, ok := info.(*types.Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, errors.New("written on a big-endian machine: not supported")
		}
	}
	storages := map[string]*storageRef{}
	obj, err := next("state_dict", func(id any) (any, error) {
		class, key, n, t, err := storageID(id, 6)
		if err != nil {
			return nil, err
		}
		if t.Get(5) != nil {
			return nil, fmt.Errorf("storage %q is a view of another storage: not supported", key)
		}
		if s, ok := storages[key]; ok {
			return s, nil
		}
		s := &storageRef{dtype: class.dtype, itemSize: class.itemSize, key: key, numel: n}
		storages[key] = s
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	keys, err := next("storage keys", nil)
	if err != nil {
		return nil, err
	}
	list, ok := keys.(*types.List)
	if !ok {
		return nil, errors.New("storage keys are not a list")
	}
	for _, k := range *list {
		key, _ := k.(string)
		s, ok := storages[key]
		if !ok {
			return nil, fmt.Errorf("storage key %v is not used by the state_dict", k)
		}
		if len(data)-pos < 8 {
			return nil, fmt.Errorf("storage %q: file ends early", key)
		}
		n := binary.LittleEndian.Uint64(data[pos:])
		pos += 8
		if n != uint64(s.numel) {
			return nil, fmt.Errorf("storage %q has %d elements, the pickle says %d", key, n, s.numel)
		}
		size := s.numel * s.itemSize
		if len(data)-pos < size {
			return nil, fmt.Errorf("storage %q: file ends early", key)
		}
		s.data = data[pos : pos+size]
		pos += size
	}
	return collect(obj, func(s *storageRef) error {
		if s.data == nil {
			return fmt.Errorf("storage %q has no data in the file", s.key)
		}
		return nil
	})
}

// collect turns the unpickled object into a StateDict, loading each storage
// it uses with load.
func collect(obj any, load func(*storageRef) error) (*StateDict, error) {
	entries, ok := dictEntries(obj)
	if !ok {
		return nil, fmt.Errorf("holds a %T, not a state_dict", obj)
	}
	// A training checkpoint keeps the state_dict under one of these keys.
	for _, e := range entries {
		if k, _ := e.key.(string); k == "state_dict" || k == "model" || k == "model_state_dict" {
			if inner, ok := dictEntries(e.value); ok {
				entries = inner
				break
			}
		}
	}
	sd := &StateDict{Tensors: map[string]*Tensor{}}
	for _, e := range entries {
		name, ok1 := e.key.(string)
		ref, ok2 := e.value.(*tensorRef)
		if !ok1 || !ok2 {
			continue // non-tensor entries (an epoch counter, say)
		}
		if _, dup := sd.Tensors[name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", name)
		}
		if ref.storage.data == nil {
			if err := load(ref.storage); err != nil {
				return nil, err
			}
		}
		sd.Keys = append(sd.Keys, name)
		sd.Tensors[name] = materialize(ref)
	}
	if len(sd.Keys) == 0 {
		return nil, errors.New("no tensors: not a state_dict")
	}
	return sd, nil
}

type entry struct{ key, value any }

func dictEntries(obj any) ([]entry, bool) {
	var out []entry
	switch d := obj.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*types.OrderedDictEntry)
			out = append(out, entry{oe.Key, oe.Value})
		}
	case *types.Dict:
		for _, de := range *d {
			out = append(out, entry{de.Key, de.Value})
		}
	default:
		return nil, false
	}
	return out, true
}

// materialize copies a strided view out of its storage, converting the
// element type.
func materialize(r *tensorRef) *Tensor {
	s := r.storage
	t := &Tensor{DType: s.dtype, Shape: r.shape}
	n := numel(r.shape)
	isFloat := s.dtype == "float32" || s.dtype == "float64" || s.dtype == "float16" || s.dtype == "bfloat16"
	if isFloat {
		t.F32 = make([]float32, n)
	} else {
		t.I64 = make([]int64, n)
	}
	contiguous, step := true, 1
	for a := len(r.shape) - 1; a >= 0; a-- {
		if r.shape[a] != 1 && r.stride[a] != step {
			contiguous = false
		}
		step *= r.shape[a]
	}
	idx := make([]int, len(r.shape))
	for i := 0; i < n; i++ {
		off := r.offset + i
		if !contiguous {
			off = r.offset
			for a, v := range idx {
				off += v * r.stride[a]
			}
		}
		b := s.data[off*s.itemSize:]
		switch s.dtype {
		case "float32":
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(b))
		case "float64":
			t.F32[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b)))
		case "float16":
			t.F32[i] = math.Float32frombits(pytorch.FloatBits16to32(binary.LittleEndian.Uint16(b)))
		case "bfloat16":
			t.F32[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16)
		case "int64":
			t.I64[i] = int64(binary.LittleEndian.Uint64(b))
		case "int32":
			t.I64[i] = int64(int32(binary.LittleEndian.Uint32(b)))
		case "int16":
			t.I64[i] = int64(int16(binary.LittleEndian.Uint16(b)))
		case "int8":
			t.I64[i] = int64(int8(b[0]))
		case "uint8", "bool":
			t.I64[i] = int64(b[0])
		}
		if contiguous {
			continue
		}
		// Advance the row-major index.
		for a := len(idx) - 1; a >= 0; a-- {
			idx[a]++
			if idx[a] < r.shape[a] {
				break
			}
			idx[a] = 0
		}
	}
	return t
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
