"""Time one training step of the paper's network in PyTorch, for covseg's benchmarks.

    /usr/bin/python3 tools/torch_train_step.py [--shape D H W] [--threads N] [--runs R] [--bench DIR]

Builds torch_unet3d.PaperUNet3D (../shared/bench/torch_unet3d.py) in training mode
and times R steps of forward + cross-entropy loss + backward (no optimiser update) on a
1x1xDxHxW input. Prints one JSON line: the median seconds and the peak resident memory
of the process (getrusage ru_maxrss) in MB.
"""
import argparse, json, os, resource, statistics, sys, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--shape", type=int, nargs=3, default=[16, 64, 64])
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--bench", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
a = ap.parse_args()
sys.path.insert(0, a.bench)
from torch_unet3d import PaperUNet3D

torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = PaperUNet3D().train()
x = torch.randn(1, 1, *a.shape)
y = (torch.rand(1, *a.shape) > 0.5).long()
times = []
for i in range(a.runs + 1):
    t = time.perf_counter()
    m.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    if i > 0:  # the first run warms up
        times.append(time.perf_counter() - t)
print(json.dumps({"engine": f"pytorch {torch.__version__}", "threads": a.threads, "shape": a.shape,
                  "train_step_median_s": round(statistics.median(times), 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
