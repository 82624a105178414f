package dicomseries

import (
	"fmt"
	"os"

	"github.com/covseg/covseg/volume/dicomseries/ljpeg"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// readPixels reads one slice's pixel data into dst (columns fastest, as
// DICOM stores them) as HU. The header was checked by the header pass;
// here the file is read whole, walked again (it may have changed since) and
// the library hands over the PixelData value undecoded, which is converted
// here: pixels are decoded once.
func readPixels(h *header, pf pixelFormat, dst []float32) error {
	b, err := os.ReadFile(h.path)
	if err != nil {
		return err
	}
	return decodePixels(b, h, pf, dst)
}

// decodePixels decodes the pixel data of the file held in b.
func decodePixels(b []byte, h *header, pf pixelFormat, dst []float32) error {
	l, err := readLayout(b, int64(len(b)), false)
	if err != nil {
		return err
	}
	if l.ts != h.ts || l.pixelAt < 0 {
		return fmt.Errorf("file changed while the series was read")
	}
	ds, err := parse(l, l.pixelEnd, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		return err
	}
	el := ds.Elements[len(ds.Elements)-1]
	pd, ok := el.Value.GetValue().(dicom.PixelDataInfo)
	if el.Tag != tag.PixelData || !ok {
		return fmt.Errorf("malformed DICOM: pixel data not where the header pass found it")
	}
	compressed := h.ts == tsJPEGLossless || h.ts == tsJPEGLosslessSV1
	switch {
	case compressed && !pd.IsEncapsulated:
		return fmt.Errorf("transfer syntax %s needs encapsulated pixel data, the file holds native pixel data", h.ts)
	case !compressed && pd.IsEncapsulated:
		return fmt.Errorf("transfer syntax %s needs native pixel data, the file holds encapsulated (compressed) pixel data", h.ts)
	case compressed:
		return decodeJPEG(pd, h, pf, dst)
	}
	raw := pd.UnprocessedValueData
	if pf.bigEndian && pf.bitsAlloc == 8 && el.RawValueRepresentation == "OW" {
		// 8-bit samples in an OW value: big endian swaps each byte pair.
		raw = append([]byte(nil), raw...)
		for i := 0; i+1 < len(raw); i += 2 {
			raw[i], raw[i+1] = raw[i+1], raw[i]
		}
	}
	return convertNative(dst, raw, pf)
}

// decodeJPEG decodes the single frame of encapsulated JPEG Lossless pixel
// data: the fragments after the basic offset table (which the library
// skips), concatenated.
func decodeJPEG(pd dicom.PixelDataInfo, h *header, pf pixelFormat, dst []float32) error {
	n := 0
	for _, f := range pd.Frames {
		n += len(f.EncapsulatedData.Data)
	}
	if n == 0 {
		return fmt.Errorf("encapsulated pixel data holds no fragments")
	}
	data := make([]byte, 0, n)
	for _, f := range pd.Frames {
		data = append(data, f.EncapsulatedData.Data...)
	}
	// The frame header is checked against the DICOM header before the
	// decoder allocates what it claims.
	cfg, err := ljpeg.DecodeConfig(data)
	if err != nil {
		return fmt.Errorf("JPEG Lossless pixel data: %w", err)
	}
	if cfg.Width != h.cols || cfg.Height != h.rows || cfg.Components != 1 {
		return fmt.Errorf("JPEG Lossless stream is %dx%d with %d component(s), the header says %dx%d (columns x rows) greyscale", cfg.Width, cfg.Height, cfg.Components, h.cols, h.rows)
	}
	img, err := ljpeg.Decode(data)
	if err != nil {
		return fmt.Errorf("JPEG Lossless pixel data: %w", err)
	}
	if len(img.Pix) != len(dst) {
		return fmt.Errorf("JPEG Lossless stream decoded to %d samples, want %d", len(img.Pix), len(dst))
	}
	convertSamples(dst, img.Pix, pf)
	return nil
}
