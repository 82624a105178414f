"""References for the nifti package's tests, made with nibabel (run with /usr/bin/python3).

    nibabel_refs.py make OUTDIR   writes small NIfTI files with nibabel into OUTDIR and prints
                                  what nibabel reads from them (JSON) on stdout
    nibabel_refs.py read FILE...  prints what nibabel reads from files covseg wrote (JSON)

For every file: shape, dtype (on disk), affine (nibabel's get_best_affine, as img.affine),
qform and sform (the header's, whatever their codes), qform_code, sform_code, pixdim,
quatern (b, c, d), sha256 of the scaled voxels as little-endian float32 with the first index
fastest (scaled in float64 by nibabel, then rounded to float32), nonfinite (count), and min/max
of the finite values. "read" adds sha256_nii: the sha256 of the uncompressed file bytes, so a
test can check it rewrites exactly the file nibabel read, and nearest_qform: the qform nibabel's
set_qform makes from the file's sform (the nearest rotation+zoom form, in float64).
"""
import gzip, hashlib, json, os, sys
import numpy as np
import nibabel as nib


def describe(path):
    img = nib.load(path)
    h = img.header
    a = np.asarray(img.dataobj, dtype=np.float64)
    fin = np.isfinite(a)
    v = a[fin]
    return {
        "shape": list(img.shape),
        "dtype": str(img.get_data_dtype().newbyteorder("=")),
        "byteorder": h.endianness,
        "affine": img.affine.tolist(),
        "qform": h.get_qform().tolist() if int(h["qform_code"]) else None,
        "sform": h.get_sform().tolist(),
        "qform_code": int(h["qform_code"]),
        "sform_code": int(h["sform_code"]),
        "pixdim": [float(x) for x in h["pixdim"]],
        "quatern": [float(h["quatern_b"]), float(h["quatern_c"]), float(h["quatern_d"])],
        "sha256_f32": hashlib.sha256(a.astype("<f4").tobytes(order="F")).hexdigest(),
        "nonfinite": int((~fin).sum()),
        "min": float(v.min()) if v.size else None,
        "max": float(v.max()) if v.size else None,
        "reference": f"nibabel {nib.__version__}",
    }


def rot(ax, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    i, j = [k for k in range(3) if k != ax]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def affine(R, zooms, origin):
    a = np.eye(4)
    a[:3, :3] = R @ np.diag(zooms)
    a[:3, 3] = origin
    return a


def make(out):
    rng = np.random.default_rng(7)
    shape = (5, 4, 3)
    files = {}

    # int16 with a slope and intercept that nibabel chose to fit float data; sform and qform.
    data = rng.normal(-300, 400, shape)
    A = affine(rot(2, 20) @ rot(0, 8), (0.7, 0.8, 2.5), (-90.5, 30.25, -400))
    img = nib.Nifti1Image(data, A)
    img.set_data_dtype(np.int16)
    img.header.set_qform(A, code=1)
    img.header.set_sform(A, code=1)
    files["int16_scaled.nii.gz"] = img

    # Only a qform, with a negative determinant (qfac -1), oblique.
    A = affine(rot(1, -15) @ np.diag([-1, 1, 1]), (0.9, 0.9, 3), (100, -120.5, 50))
    img = nib.Nifti1Image(rng.normal(0, 1, shape).astype(np.float32), None)
    img.header.set_qform(A, code=1)
    img.header.set_sform(None, code=0)
    files["float32_qform_only.nii"] = img

    # Neither transform: nibabel's fallback affine.
    img = nib.Nifti1Image(rng.integers(0, 255, shape).astype(np.uint8), None)
    img.header.set_zooms((2, 3, 4))
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    files["uint8_no_transform.nii"] = img

    # Big-endian uint16.
    A = np.diag([-0.75, -0.75, 1.25, 1])
    A[:3, 3] = (190, 150, -300)
    img = nib.Nifti1Image(rng.integers(0, 65535, shape).astype(">u2"), A,
                          header=nib.Nifti1Header(endianness=">"), dtype=np.uint16)
    files["uint16_bigendian.nii"] = img

    # NIfTI-2, 4D int32.
    A = np.diag([1.5, 1.5, 1.5, 1])
    img = nib.Nifti2Image(rng.integers(-2**31, 2**31 - 1, shape + (2,)).astype(np.int32), A)
    files["nifti2_int32_4d.nii"] = img

    # NIfTI-2, big-endian, sheared sform only (code 2), float32.
    A = affine(rot(0, 30), (1, 1, 2), (1, 2, 3))
    A[0, 1] += 0.3
    img = nib.Nifti2Image(rng.normal(0, 1, shape).astype(">f4"), None,
                          header=nib.Nifti2Header(endianness=">"))
    img.header.set_sform(A, code=2)
    img.header.set_qform(None, code=0)
    files["nifti2_bigendian_shear.nii.gz"] = img

    # float64 with non-finite values.
    d = rng.normal(0, 1e3, shape)
    d[0, 0, 0], d[1, 0, 0], d[2, 0, 0] = np.nan, np.inf, -np.inf
    files["float64_nonfinite.nii.gz"] = nib.Nifti1Image(d, np.eye(4))

    # The other integer types.
    for dt, lo, hi in [(np.int8, -128, 127), (np.uint32, 0, 2**32 - 1),
                       (np.int64, -2**62, 2**62), (np.uint64, 0, 2**63)]:
        d = rng.integers(lo, hi, shape, dtype=dt)
        img = nib.Nifti1Image(d, np.eye(4), dtype=dt)
        files[f"{np.dtype(dt).name}.nii"] = img

    # An extension between header and voxels (vox_offset > 352).
    img = nib.Nifti1Image(rng.normal(0, 1, shape).astype(np.float32), np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"covseg test extension " * 5))
    files["extension.nii"] = img

    os.makedirs(out, exist_ok=True)
    ref = {}
    for name, img in files.items():
        p = os.path.join(out, name)
        nib.save(img, p)
        ref[name] = describe(p)
    return ref


def read(paths):
    ref = {}
    for p in paths:
        d = describe(p)
        raw = open(p, "rb").read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        d["sha256_nii"] = hashlib.sha256(raw).hexdigest()
        h = nib.Nifti2Header()
        h.set_qform(nib.load(p).header.get_sform(), code=1)
        d["nearest_qform"] = h.get_qform().tolist()
        ref[os.path.basename(p)] = d
    return ref


if __name__ == "__main__":
    if sys.argv[1] == "make":
        ref = make(sys.argv[2])
    else:
        ref = read(sys.argv[2:])
    json.dump(ref, sys.stdout, indent=1, sort_keys=True)
    print()
