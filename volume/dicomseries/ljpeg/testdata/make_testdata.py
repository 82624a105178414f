#!/usr/bin/python3
"""Make ljpeg's test bitstreams with dcmtk (dcmcjpeg/dcmdjpeg) and pydicom.

Run from this folder: /usr/bin/python3 make_testdata.py
Needs Debian's dcmtk (3.6.7) and python3-pydicom, and ../../../shared/fixtures/io.

Each *.jpg is the single JPEG fragment of a frame that dcmcjpeg encapsulated
(the bytes of the PixelData item, including any even-length padding byte).
expected.txt lists, per file, the sha256 of the decoded samples written as
little-endian uint16 (row-major, components interleaved) as dcmdjpeg decodes
them, with width, height and components. For point transform 0 the script
also checks that dcmdjpeg returns exactly the uncompressed source.
"""
import hashlib
import os
import subprocess
import tempfile

import numpy as np
import pydicom
from pydicom.encaps import generate_pixel_data_frame

SRC = "../../../shared/fixtures/io/ibsi_chest_ct/dicom/DCM_IMG_00030.dcm"


def write_variant(ds, arr, path, bits, signed, rgb=False):
    """Store arr (rows x cols [x 3]) in a copy of ds as uncompressed DICOM."""
    ds = ds.copy()
    ds.Rows, ds.Columns = arr.shape[0], arr.shape[1]
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    if rgb:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    data = np.ascontiguousarray(arr).tobytes()
    ds.PixelData = data + b"\0" * (len(data) % 2)  # DICOM values have even length
    ds.save_as(path, write_like_original=False)


def sample_hash(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).astype("<u2").tobytes()).hexdigest()


def main():
    src = pydicom.dcmread(SRC)
    full = src.pixel_array  # uint16, 12 bits stored, 201 x 204
    crop = full[50:147, 37:168]  # 97 rows x 131 columns: odd sizes
    tmp = tempfile.mkdtemp()
    sources = {}

    def source(name, arr, bits, signed=False, rgb=False):
        p = os.path.join(tmp, name + ".dcm")
        write_variant(src, arr, p, bits, signed, rgb)
        sources[name] = (p, arr)

    source("ibsi30", full, 12)
    source("crop", crop, 12)
    # Signed 16-bit like RICORD: HU values with negatives, all 16 bits used.
    source("crop_s16", (crop.astype(np.int32) - 1024).astype("<i2"), 16, signed=True)
    source("crop_u8", (crop >> 4).astype(np.uint8), 8)
    rgb = np.stack([crop >> 4, (crop >> 3) & 0xFF, 255 - (crop >> 4)], axis=-1).astype(np.uint8)
    source("crop_rgb8", rgb, 8, rgb=True)

    jobs = [  # (output name, source, dcmcjpeg options, point transform)
        ("ibsi30_sv1", "ibsi30", ["+e1"], 0),
        *[(f"crop_p{n}", "crop", ["+el", "+sv", str(n)], 0) for n in range(1, 8)],
        ("crop_p1_pt1", "crop", ["+el", "+sv", "1", "+pt", "1"], 1),
        ("crop_p5_pt3", "crop", ["+el", "+sv", "5", "+pt", "3"], 3),
        ("crop_s16_sv1", "crop_s16", ["+e1"], 0),
        ("crop_u8_p4", "crop_u8", ["+el", "+sv", "4"], 0),
        ("crop_rgb8_p1", "crop_rgb8", ["+e1"], 0),
        ("crop_rgb8_p7", "crop_rgb8", ["+el", "+sv", "7"], 0),
    ]
    lines = []
    for name, srcname, opts, pt in jobs:
        path, arr = sources[srcname]
        enc = os.path.join(tmp, name + ".enc.dcm")
        dec = os.path.join(tmp, name + ".dec.dcm")
        subprocess.run(["dcmcjpeg", *opts, path, enc], check=True)
        subprocess.run(["dcmdjpeg", enc, dec], check=True)
        frame = next(generate_pixel_data_frame(pydicom.dcmread(enc).PixelData))
        with open(name + ".jpg", "wb") as f:
            f.write(frame)
        got = pydicom.dcmread(dec).pixel_array
        # The point transform drops the low pt bits; nothing else may change.
        want = (arr >> pt) << pt if pt else arr
        if not np.array_equal(got, want):
            raise SystemExit(f"{name}: dcmdjpeg does not return the source")
        comps = got.shape[2] if got.ndim == 3 else 1
        lines.append(f"{sample_hash(got)} {got.shape[1]} {got.shape[0]} {comps} {name}.jpg")
    with open("expected.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
