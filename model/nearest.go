package model

import "math"

// NearestIndices returns, for each of the out positions of a nearest-neighbour
// resize of an axis of size in, the source position, computed exactly as
// PyTorch's F.interpolate(mode="nearest") computes it on the CPU:
// src = min(⌊float32(dst) · (float32(in) / float32(out))⌋, in − 1), in float32
// arithmetic (out == in and out == 2·in are exact). That is ⌊dst·in/out⌋ in
// most cases, but not all: for in = 2, out = 82, dst = 41 PyTorch takes 0, not
// 1. Engines that must agree with PyTorch (and with each other) to the last
// voxel use these indices rather than their own rounding.
func NearestIndices(in, out int) []int {
	idx := make([]int, out)
	switch {
	case out == in:
		for i := range idx {
			idx[i] = i
		}
	case out == 2*in:
		for i := range idx {
			idx[i] = i >> 1
		}
	default:
		scale := float32(in) / float32(out)
		for i := range idx {
			p := float32(float32(i) * scale) // the conversion forces float32 rounding (no FMA)
			s := int(math.Floor(float64(p)))
			idx[i] = min(s, in-1)
		}
	}
	return idx
}
