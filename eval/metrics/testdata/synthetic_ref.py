"""Reference figures for metrics' synthetic test pairs (run once; tests do not need Python).

    /usr/bin/python3 synthetic_ref.py ../../../shared/tools/metrics_ref.py

Builds the masks of synthetic_test.go's cases with the same integer recipes (an LCG and integer
ellipsoids, so both languages make identical masks) and prints metrics_ref.metrics for each case
and tolerance as Go source to paste into synthetic_test.go.
"""
import importlib.util, sys
import numpy as np

spec = importlib.util.spec_from_file_location("metrics_ref", sys.argv[1])
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

M64 = (1 << 64) - 1


class LCG:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & M64
        return self.s >> 33


def ellipsoid(m, c, w, r2):
    """Voxels with sum_a w[a]*(x_a - c[a])^2 <= r2 (integers), OR-ed into m (indexed [i, j, k])."""
    d = m.shape
    i, j, k = np.meshgrid(np.arange(d[0]), np.arange(d[1]), np.arange(d[2]), indexing="ij")
    m |= (w[0] * (i - c[0]) ** 2 + w[1] * (j - c[1]) ** 2 + w[2] * (k - c[2]) ** 2) <= r2


def blobs(m, seed, n, rmin, rmax, w):
    g = LCG(seed)
    d = m.shape
    for _ in range(n):
        c = (g.next() % d[0], g.next() % d[1], g.next() % d[2])
        r = rmin + g.next() % (rmax - rmin + 1)
        ellipsoid(m, c, w, r * r)


def noise(m, seed, per_mille):
    """Flips voxels in i-fastest order where the LCG draws < per_mille (of 1000)."""
    g = LCG(seed)
    d = m.shape
    for k in range(d[2]):
        for j in range(d[1]):
            for i in range(d[0]):
                if g.next() % 1000 < per_mille:
                    m[i, j, k] = not m[i, j, k]


def case(name):
    if name == "blobs_aniso":
        d, sp = (48, 40, 16), (0.8, 0.7, 5.0)
        t = np.zeros(d, bool); blobs(t, 1, 5, 3, 8, (1, 1, 36))
        p = np.zeros(d, bool); blobs(p, 1, 5, 4, 9, (1, 1, 36)); blobs(p, 2, 2, 2, 5, (1, 1, 36)); noise(p, 7, 20)
    elif name == "shifted_ellipsoid":
        d, sp = (37, 29, 11), (0.6, 0.95, 3.0)
        t = np.zeros(d, bool); ellipsoid(t, (18, 14, 5), (4, 9, 100), 900)
        p = np.zeros(d, bool); ellipsoid(p, (20, 13, 6), (5, 8, 90), 1000)
    elif name == "border_full":
        d, sp = (10, 9, 7), (1.5, 0.5, 2.0)
        t = np.ones(d, bool)
        p = np.zeros(d, bool); p[1:9, 0:9, 2:7] = True
    elif name == "single_voxels":
        d, sp = (9, 8, 6), (0.3, 0.4, 1.2)
        t = np.zeros(d, bool); t[1, 2, 3] = True
        p = np.zeros(d, bool); p[7, 5, 0] = True
    elif name == "noise_iso":
        d, sp = (30, 30, 8), (1.0, 1.0, 1.0)
        t = np.zeros(d, bool); noise(t, 3, 300)
        p = np.zeros(d, bool); noise(p, 4, 300)
    elif name == "one_slice":
        d, sp = (25, 20, 1), (0.5, 0.6, 3.0)
        t = np.zeros(d, bool); blobs(t, 11, 3, 2, 6, (1, 1, 1))
        p = np.zeros(d, bool); blobs(p, 12, 3, 2, 6, (1, 1, 1))
    elif name == "thin_line":
        d, sp = (1, 17, 23), (2.0, 0.9, 1.1)
        t = np.zeros(d, bool); blobs(t, 21, 2, 3, 7, (1, 1, 1))
        p = np.zeros(d, bool); blobs(p, 22, 2, 3, 7, (1, 1, 1)); noise(p, 23, 50)
    else:
        raise KeyError(name)
    return t, p, sp


NAMES = ["blobs_aniso", "shifted_ellipsoid", "border_full", "single_voxels", "noise_iso", "one_slice", "thin_line"]
TAUS = [0.0, 1.0, 2.5, 3.0]

for name in NAMES:
    t, p, sp = case(name)
    nsd = []
    for tau in TAUS:
        r = ref.metrics(t, p, sp, tau)
        nsd.append(r["nsd"])
    print(f'\t{{name: "{name}", truthVoxels: {r["truth_voxels"]}, predVoxels: {r["pred_voxels"]}, '
          f'inter: {int((t & p).sum())}, truthML: {r["truth_ml"]!r}, predML: {r["pred_ml"]!r}, '
          f'dice: {r["dice"]!r}, iou: {r["iou"]!r}, hd95: {r["hd95"]!r}, hd: {r["hd"]!r}, '
          f'nsd: []float64{{{", ".join(repr(x) for x in nsd)}}}}},')
