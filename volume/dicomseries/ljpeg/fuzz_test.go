package ljpeg

import (
	"os"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode and DecodeConfig: they must
// return an error or a consistent image, never panic or read out of range.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"crop_u8_p4.jpg", "crop_p5_pt3.jpg"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	rng := newRand(9)
	for i, o := range []encOptions{
		{predictor: 1},
		{predictor: 7, restartRows: 1, fillBytes: true},
		{predictor: 4, pt: 1, longCodes: true},
		{predictor: 5, multiScan: true, extras: true},
	} {
		nf := 1 + i%4
		o.seed = uint64(i)
		f.Add(testEncode(testImage(rng, 5, 4, nf, 2+4*i, i), 5, 4, nf, 2+4*i, o))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, cerr := DecodeConfig(data)
		img, err := Decode(data)
		if err != nil {
			return
		}
		if len(img.Pix) != img.Width*img.Height*img.Components {
			t.Fatalf("%dx%dx%d image with %d samples", img.Width, img.Height, img.Components, len(img.Pix))
		}
		want := Config{img.Width, img.Height, img.Components, img.Precision}
		if cerr != nil || cfg != want {
			t.Fatalf("DecodeConfig = %+v, %v; Decode gives %+v", cfg, cerr, want)
		}
	})
}
