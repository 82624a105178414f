package ljpeg_test

import (
	"fmt"
	"log"
	"os"

	"github.com/covseg/covseg/volume/dicomseries/ljpeg"
)

// Decode a JPEG Lossless frame of a signed 16-bit CT image, as found in a
// DICOM PixelData fragment. Sign extension is up to the caller, who knows
// PixelRepresentation and BitsStored.
func ExampleDecode() {
	data, err := os.ReadFile("testdata/crop_s16_sv1.jpg")
	if err != nil {
		log.Fatal(err)
	}
	img, err := ljpeg.Decode(data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Width, img.Height, img.Components, img.Precision)
	fmt.Println(img.Pix[0], int16(img.Pix[0]))
	// Output:
	// 131 97 1 16
	// 64693 -843
}
