package preprocess

import (
	"bufio"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// formatVersion changes whenever the pipeline or the file layout changes,
// so that old cache files are never read as current ones.
const formatVersion = 1

// cacheMagic starts every cache file (before compression).
var cacheMagic = []byte("covseg-preprocessed\x00")

// Cache prepares cases and keeps the results: on disk as zstd-compressed
// files (so later epochs and later runs skip reading DICOM or NIfTI and
// resampling) and, within a memory budget, in memory. A file's key hashes
// the source files' paths, sizes and modification times (every file of a
// DICOM folder) and the settings that shape the result, so a changed input
// or setting never hits a stale entry. Files are written atomically; an
// unreadable or corrupt file is recomputed and replaced. A Cache is safe for
// concurrent use; concurrent loads of one key prepare it once.
//
// Samples from a Cache are shared: callers must not modify them.
type Cache struct {
	dir       string
	maxMemory int64

	mu       sync.Mutex
	mem      map[string]*list.Element // key → LRU element holding *memEntry
	lru      *list.List
	used     int64
	inflight map[string]*call
	stats    Stats
}

// Stats counts how loads were served.
type Stats struct {
	Memory   int // from memory (or from a concurrent load of the same key)
	Disk     int // from a cache file
	Prepared int // prepared from the source files
}

type memEntry struct {
	key  string
	s    *Sample
	size int64
}

type call struct {
	done chan struct{}
	s    *Sample
	err  error
}

// NewCache returns a cache writing files to dir ("" keeps nothing on disk)
// and keeping at most maxMemory bytes of samples in memory (0: none).
func NewCache(dir string, maxMemory int64) (*Cache, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("preprocess: cache: %w", err)
		}
	}
	return &Cache{dir: dir, maxMemory: maxMemory, mem: map[string]*list.Element{}, lru: list.New(), inflight: map[string]*call{}}, nil
}

// Stats returns how loads were served so far.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Load returns the entry prepared by cfg for an epoch (the epoch matters
// for a ModeResize schedule only).
func (c *Cache) Load(e dataset.Entry, cfg Config, epoch int) (*Sample, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := Key(e, cfg, epoch)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if el, ok := c.mem[key]; ok {
		c.lru.MoveToFront(el)
		c.stats.Memory++
		c.mu.Unlock()
		return el.Value.(*memEntry).s, nil
	}
	if cl, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		<-cl.done
		if cl.err == nil {
			c.mu.Lock()
			c.stats.Memory++
			c.mu.Unlock()
		}
		return cl.s, cl.err
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[key] = cl
	c.mu.Unlock()

	s, fromDisk, err := c.load(key, e, cfg, epoch)
	cl.s, cl.err = s, err
	c.mu.Lock()
	delete(c.inflight, key)
	if err == nil {
		if fromDisk {
			c.stats.Disk++
		} else {
			c.stats.Prepared++
		}
		c.remember(key, s)
	}
	c.mu.Unlock()
	close(cl.done)
	return s, err
}

// load reads the cache file or prepares the sample and writes the file.
func (c *Cache) load(key string, e dataset.Entry, cfg Config, epoch int) (*Sample, bool, error) {
	path := ""
	if c.dir != "" {
		path = filepath.Join(c.dir, key+".zst")
		if s, err := readSample(path); err == nil {
			return s, true, nil
		}
	}
	img, mask, err := Read(e, cfg.Labels)
	if err != nil {
		return nil, false, err
	}
	s, err := Prepare(e.Case, img, mask, cfg, epoch)
	if err != nil {
		return nil, false, err
	}
	if path != "" {
		if err := writeSample(path, s); err != nil {
			return nil, false, err
		}
	}
	return s, false, nil
}

// remember keeps s in memory within the budget (c.mu held).
func (c *Cache) remember(key string, s *Sample) {
	size := int64(len(s.Image.Data)*4 + 4*len(s.Lesion))
	if s.Mask != nil {
		size += int64(len(s.Mask.Data))
	}
	if size > c.maxMemory {
		return
	}
	c.mem[key] = c.lru.PushFront(&memEntry{key: key, s: s, size: size})
	c.used += size
	for c.used > c.maxMemory {
		old := c.lru.Back().Value.(*memEntry)
		c.lru.Remove(c.lru.Back())
		delete(c.mem, old.key)
		c.used -= old.size
	}
}

// Key returns the cache key of an entry prepared by cfg at an epoch: a hash
// of the sources' fingerprints and of the settings that shape the sample.
func Key(e dataset.Entry, cfg Config, epoch int) (string, error) {
	img, err := fingerprint(e.Image)
	if err != nil {
		return "", fmt.Errorf("preprocess: case %s: %w", e.Case, err)
	}
	var mask []string
	if e.Mask != "" {
		if mask, err = fingerprint(e.Mask); err != nil {
			return "", fmt.Errorf("preprocess: case %s: %w", e.Case, err)
		}
	}
	k := struct {
		Version    int
		Case       string
		Image      []string
		Mask       []string
		Mode       Mode
		Grid       Grid       `json:",omitempty"`
		Spacing    [3]float64 `json:",omitempty"`
		Lo, Hi     float64
		Scaling    Scaling
		MaxLesions int
		Labels     Labels `json:",omitempty"`
	}{Version: formatVersion, Case: e.Case, Image: img, Mask: mask, Mode: cfg.Mode, Lo: cfg.WindowLo, Hi: cfg.WindowHi, Scaling: cfg.Scaling, MaxLesions: MaxLesionSamples}
	if cfg.Labels == LabelsClasses {
		k.Labels = cfg.Labels
	}
	if cfg.Mode == ModePatch {
		k.Spacing = cfg.Spacing
	} else {
		k.Grid = cfg.GridAt(epoch)
	}
	b, _ := json.Marshal(k)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16]), nil
}

// fingerprint describes a file (absolute path, size, modification time) or
// every file of a folder (a DICOM series), sorted.
func fingerprint(path string) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{fmt.Sprintf("%s\x00%d\x00%d", abs, st.Size(), st.ModTime().UnixNano())}, nil
	}
	var out []string
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := os.Stat(p) // follows links, as the DICOM reader does
		if err != nil {
			return nil
		}
		out = append(out, fmt.Sprintf("%s\x00%d\x00%d", p, info.Size(), info.ModTime().UnixNano()))
		return nil
	})
	sort.Strings(out)
	return out, err
}

// header is the uncompressed description at the start of a cache file.
type header struct {
	Case    string
	Dims    volume.Dims
	Affine  volume.Affine
	HasMask bool
	Lesions int
}

// writeSample writes s as a zstd-compressed cache file, atomically.
func writeSample(path string, s *Sample) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		h, _ := json.Marshal(header{Case: s.Case, Dims: s.Image.Dims, Affine: s.Image.Affine, HasMask: s.Mask != nil, Lesions: len(s.Lesion)})
		bw := bufio.NewWriterSize(zw, 1<<16)
		bw.Write(cacheMagic)
		binary.Write(bw, binary.LittleEndian, uint32(len(h)))
		bw.Write(h)
		buf := make([]byte, 4)
		for _, x := range s.Image.Data {
			binary.LittleEndian.PutUint32(buf, math.Float32bits(x))
			bw.Write(buf)
		}
		if s.Mask != nil {
			bw.Write(s.Mask.Data)
		}
		for _, x := range s.Lesion {
			binary.LittleEndian.PutUint32(buf, uint32(x))
			bw.Write(buf)
		}
		if err := bw.Flush(); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	})
}

// readSample reads a cache file, checking everything it reads.
func readSample(path string) (*Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<33))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return decodeSample(bufio.NewReaderSize(zr, 1<<16))
}

// decodeSample reads an uncompressed cache stream.
func decodeSample(r io.Reader) (*Sample, error) {
	magic := make([]byte, len(cacheMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != string(cacheMagic) {
		return nil, errors.New("not a cache file")
	}
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || n > 1<<16 {
		return nil, errors.New("bad header length")
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, err
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, err
	}
	if err := h.Dims.Valid(); err != nil || h.Dims.Len() > 1<<30 || h.Lesions < 0 || h.Lesions > h.Dims.Len() {
		return nil, errors.New("bad header")
	}
	s := &Sample{Case: h.Case}
	s.Image = &volume.Volume{Dims: h.Dims, Affine: h.Affine, Data: make([]float32, h.Dims.Len())}
	buf := make([]byte, 4<<10)
	for i := 0; i < len(s.Image.Data); {
		m := min(len(buf)/4, len(s.Image.Data)-i)
		if _, err := io.ReadFull(r, buf[:4*m]); err != nil {
			return nil, err
		}
		for j := range m {
			s.Image.Data[i+j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
		}
		i += m
	}
	if h.HasMask {
		s.Mask = &volume.Label{Dims: h.Dims, Affine: h.Affine, Data: make([]uint8, h.Dims.Len())}
		if _, err := io.ReadFull(r, s.Mask.Data); err != nil {
			return nil, err
		}
	}
	if h.Lesions > 0 {
		s.Lesion = make([]int32, h.Lesions)
		if err := binary.Read(r, binary.LittleEndian, s.Lesion); err != nil {
			return nil, err
		}
		for _, x := range s.Lesion {
			if x < 0 || int(x) >= h.Dims.Len() {
				return nil, errors.New("lesion index out of range")
			}
		}
	}
	var one [1]byte
	if _, err := r.Read(one[:]); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return s, nil
}
