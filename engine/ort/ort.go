// Package ort runs covseg's exported ONNX models with ONNX Runtime through
// github.com/yalue/onnxruntime_go.
//
// ONNX Runtime is a shared library loaded at run time, found in this order:
// Options.LibraryPath, the environment variable COVSEG_ORT_LIB, then
// third_party/onnxruntime/libonnxruntime.so.1 in the executable's folder or
// one above it, or in the working directory or one above it up to the Go
// module root. scripts/setup puts it there (from the npm package
// onnxruntime-node@1.30.0). The binding asks for C API version 24, which
// every ONNX Runtime from 1.24 on serves.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/onnx/onnxpb"
)

// EnvLibrary names the environment variable that overrides the library path.
const EnvLibrary = "COVSEG_ORT_LIB"

// LibraryRelPath is where scripts/setup puts the library, relative to the
// repository root.
const LibraryRelPath = "third_party/onnxruntime/libonnxruntime.so.1"

// ErrNoLibrary is wrapped by the errors of Open when the ONNX Runtime
// library is missing or cannot be loaded; its text says how to get it.
var ErrNoLibrary = errors.New("run scripts/setup or set " + EnvLibrary + " to the path of libonnxruntime.so.1")

// Options configure a Session. The zero value is ready to use.
type Options struct {
	// LibraryPath is the ONNX Runtime shared library; empty means the search
	// the package documentation describes.
	LibraryPath string
	// Threads is the number of intra-op threads; 0 means runtime.NumCPU().
	Threads int
	// OptimizedModelPath, when set, asks ONNX Runtime to save the graph it
	// runs after its optimisations there (to see which kernels it picked).
	OptimizedModelPath string
}

// Session is a model loaded into ONNX Runtime. Run may be called from
// several goroutines at once; Close must not overlap other calls.
type Session struct {
	path     string
	s        *ortgo.DynamicAdvancedSession
	in, out  string
	channels int64 // input channels the model declares, 0 if symbolic
	meta     map[string]string
	threads  int
}

// Open loads the ONNX model at path, which must have one float32 input and
// one float32 output, both of rank 5 (NCDHW).
func Open(path string, opts Options) (*Session, error) {
	data, info, err := readModel(path)
	if err != nil {
		return nil, err
	}
	in, out := info.Inputs[0], info.Outputs[0]
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}

	if err := acquire(opts.LibraryPath); err != nil {
		return nil, err
	}
	s, err := newSession(data, []string{in.GetName()}, []string{out.GetName()}, threads, opts.OptimizedModelPath)
	if err != nil {
		release()
		return nil, fmt.Errorf("ort: %s: %w", path, err)
	}
	sess := &Session{path: path, s: s, in: in.GetName(), out: out.GetName(), threads: threads}
	if dims := in.GetType().GetTensorType().GetShape().GetDim(); len(dims) == 5 {
		sess.channels = dims[1].GetDimValue()
	}
	if sess.meta, err = metadata(s); err != nil {
		sess.Close()
		return nil, fmt.Errorf("ort: %s: metadata: %w", path, err)
	}
	return sess, nil
}

// readModel reads the model file and checks its inputs and outputs.
func readModel(path string) ([]byte, onnx.Info, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, onnx.Info{}, fmt.Errorf("ort: %w", err)
	}
	if st.Size() > onnx.MaxModelSize {
		return nil, onnx.Info{}, fmt.Errorf("ort: %s: %d bytes, more than an ONNX model can hold", path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, onnx.Info{}, fmt.Errorf("ort: %w", err)
	}
	info, err := onnx.Describe(data)
	if err != nil {
		return nil, onnx.Info{}, fmt.Errorf("ort: %s: %w", path, err)
	}
	if len(info.Inputs) != 1 || len(info.Outputs) != 1 {
		return nil, onnx.Info{}, fmt.Errorf("ort: %s: the model has %d inputs and %d outputs; covseg runs models with one of each",
			path, len(info.Inputs), len(info.Outputs))
	}
	for _, v := range []*onnxpb.ValueInfoProto{info.Inputs[0], info.Outputs[0]} {
		tt := v.GetType().GetTensorType()
		if tt == nil || tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
			return nil, onnx.Info{}, fmt.Errorf("ort: %s: %q is not a float32 tensor", path, v.GetName())
		}
		if tt.GetShape() != nil && len(tt.GetShape().GetDim()) != 5 {
			return nil, onnx.Info{}, fmt.Errorf("ort: %s: %q has rank %d, want 5 (NCDHW)", path, v.GetName(), len(tt.GetShape().GetDim()))
		}
	}
	return data, info, nil
}

func newSession(data []byte, in, out []string, threads int, optimized string) (*ortgo.DynamicAdvancedSession, error) {
	o, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer o.Destroy()
	if err := o.SetIntraOpNumThreads(threads); err != nil {
		return nil, err
	}
	if err := o.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	if optimized != "" {
		if err := o.SetOptimizedModelFilePath(optimized); err != nil {
			return nil, err
		}
	}
	return ortgo.NewDynamicAdvancedSessionWithONNXData(data, in, out, o)
}

func metadata(s *ortgo.DynamicAdvancedSession) (map[string]string, error) {
	m, err := s.GetModelMetadata()
	if err != nil {
		return nil, err
	}
	defer m.Destroy()
	keys, err := m.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, err
	}
	props := make(map[string]string, len(keys))
	for _, k := range keys {
		v, ok, err := m.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, err
		}
		if ok {
			props[k] = v
		}
	}
	return props, nil
}

// Metadata returns the model's metadata_props as ONNX Runtime read them
// (onnx.ParseMetadata decodes covseg's entries).
func (s *Session) Metadata() map[string]string {
	m := make(map[string]string, len(s.meta))
	for k, v := range s.meta {
		m[k] = v
	}
	return m
}

// Threads returns the session's intra-op thread count.
func (s *Session) Threads() int { return s.threads }

// maxElements bounds an input's element count: ONNX Runtime's CPU kernels
// index with 64-bit sizes, but a float32 buffer beyond 2^34 elements (64 GiB)
// is a mistake, not a CT.
const maxElements = 1 << 34

// Run runs the model on input, a float32 tensor of the given NCDHW shape in
// row-major order, and returns the output and its shape. Shapes may differ
// from call to call.
func (s *Session) Run(input []float32, shape [5]int64) ([]float32, [5]int64, error) {
	var outShape [5]int64
	if s.s == nil {
		return nil, outShape, fmt.Errorf("ort: %s: session is closed", s.path)
	}
	n := int64(1)
	for _, d := range shape {
		if d <= 0 || n > maxElements/d {
			return nil, outShape, fmt.Errorf("ort: %s: bad input shape %v", s.path, shape)
		}
		n *= d
	}
	if n != int64(len(input)) {
		return nil, outShape, fmt.Errorf("ort: %s: input shape %v needs %d values, got %d", s.path, shape, n, len(input))
	}
	if s.channels > 0 && shape[1] != s.channels {
		return nil, outShape, fmt.Errorf("ort: %s: the model takes %d channels, the input has %d", s.path, s.channels, shape[1])
	}
	x, err := ortgo.NewTensor(ortgo.NewShape(shape[:]...), input)
	if err != nil {
		return nil, outShape, fmt.Errorf("ort: %s: input: %w", s.path, err)
	}
	defer x.Destroy()
	outs := []ortgo.Value{nil}
	if err := s.s.Run([]ortgo.Value{x}, outs); err != nil {
		return nil, outShape, fmt.Errorf("ort: %s: %w", s.path, err)
	}
	defer outs[0].Destroy()
	y, ok := outs[0].(*ortgo.Tensor[float32])
	if !ok {
		return nil, outShape, fmt.Errorf("ort: %s: output %q is not a float32 tensor", s.path, s.out)
	}
	got := y.GetShape()
	if len(got) != 5 {
		return nil, outShape, fmt.Errorf("ort: %s: output %q has shape %v, want rank 5", s.path, s.out, got)
	}
	copy(outShape[:], got)
	// The tensor's data is Go memory the binding allocated for this output;
	// it stays valid after Destroy releases the ORT value.
	return y.GetData(), outShape, nil
}

// Close releases the session. The library stays loaded while other sessions
// are open.
func (s *Session) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	release()
	if err != nil {
		return fmt.Errorf("ort: %s: close: %w", s.path, err)
	}
	return nil
}

// LibraryVersion returns the version of the loaded ONNX Runtime library, or
// "" when none is loaded.
func LibraryVersion() string {
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.refs == 0 {
		return ""
	}
	return ortgo.GetVersion()
}

// env tracks the process-wide ONNX Runtime environment. onnxruntime_go keeps
// the loaded library and environment in package variables, so this is
// process-wide state by nature: the first Open loads the library, the last
// Close unloads it.
var env struct {
	mu   sync.Mutex
	refs int
	lib  string
}

func acquire(explicit string) error {
	env.mu.Lock()
	defer env.mu.Unlock()
	lib, err := findLibrary(explicit)
	if err != nil {
		return err
	}
	if env.refs > 0 {
		if lib != env.lib {
			return fmt.Errorf("ort: ONNX Runtime %s is requested while %s is loaded; one process runs one library", lib, env.lib)
		}
		env.refs++
		return nil
	}
	if ortgo.IsInitialized() {
		return errors.New("ort: ONNX Runtime was initialised outside this package")
	}
	ortgo.SetSharedLibraryPath(lib)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		return fmt.Errorf("ort: loading ONNX Runtime %s: %w (%w)", lib, err, ErrNoLibrary)
	}
	env.refs, env.lib = 1, lib
	return nil
}

func release() {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.refs--
	if env.refs == 0 {
		// Unloading only frees memory; a failure leaves nothing to undo.
		_ = ortgo.DestroyEnvironment()
		env.lib = ""
	}
}

// findLibrary returns the absolute path of the ONNX Runtime library.
func findLibrary(explicit string) (string, error) {
	from := "Options.LibraryPath"
	lib := explicit
	if lib == "" {
		from, lib = EnvLibrary, os.Getenv(EnvLibrary)
	}
	if lib != "" {
		if st, err := os.Stat(lib); err != nil || st.IsDir() {
			return "", fmt.Errorf("ort: ONNX Runtime library %s (from %s) not found: %w", lib, from, ErrNoLibrary)
		}
		return filepath.Abs(lib)
	}
	var looked []string
	for _, dir := range searchDirs() {
		p := filepath.Join(dir, LibraryRelPath)
		looked = append(looked, p)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("ort: ONNX Runtime library not found (looked for %v): %w", looked, ErrNoLibrary)
}

// searchDirs lists the executable's folder and its parent, then the working
// directory and its parents up to the first holding go.mod.
func searchDirs() []string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			d := filepath.Dir(exe)
			dirs = append(dirs, d, filepath.Dir(d))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, d)
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil || filepath.Dir(d) == d {
				break
			}
		}
	}
	return dirs
}
