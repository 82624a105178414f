package dicomseries

import (
	"errors"
	"fmt"
	"os"

	"github.com/suyashkumar/dicom"
)

// ReadDataset reads the header of one DICOM file (every element before the
// pixel data; the pixel data itself is left out) after checking its element
// structure as Read does. Writers of derived objects use it to copy the
// patient, study and frame-of-reference attributes of a source image.
func ReadDataset(path string) (dicom.Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("dicomseries: %w", err)
	}
	l, err := readLayout(b, int64(len(b)), true)
	if errors.Is(err, errNotDICOM) {
		return dicom.Dataset{}, fmt.Errorf("dicomseries: %s: not a DICOM file", path)
	}
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("dicomseries: %s: %w", path, err)
	}
	end := len(l.ds)
	if l.pixelAt >= 0 {
		end = l.pixelAt
	}
	ds, err := parse(l, end, dicom.SkipPixelData())
	if err != nil {
		return dicom.Dataset{}, fmt.Errorf("dicomseries: %s: %w", path, err)
	}
	return ds, nil
}
