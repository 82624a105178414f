package dicomweb

import (
	"bytes"
	"testing"
)

// FuzzDecodeDatasets feeds arbitrary QIDO-RS answers to the decoder and
// the attribute readers: errors are fine, panics are not.
func FuzzDecodeDatasets(f *testing.F) {
	f.Add([]byte(`[{"0020000E":{"vr":"UI","Value":["1.2"]},"00201209":{"vr":"IS","Value":[3]}}]`))
	f.Add([]byte(`[{"00200037":{"vr":"DS","Value":[1,0,0,0,1,0]}}]`))
	f.Add([]byte(`[{"00200037":{"vr":"DS","Value":["1","0","0","0","0","-1"]}}]`))
	f.Add([]byte(`[{"00200037":{"vr":"DS","Value":[null,{},[],"x",1e999,0]}}]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := decodeDatasets(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, d := range items {
			for _, tg := range []string{"0020000E", "00080060", "00201209", "0008103E"} {
				_ = d.str(tg)
			}
			if iop := d.orientation(); iop != nil {
				if len(iop) != 6 {
					t.Fatalf("orientation %v", iop)
				}
				_ = isAxial(iop)
			}
		}
	})
}
