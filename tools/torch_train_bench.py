"""Time training steps of the paper's network in PyTorch, the same steps `covseg bench train` times.

    /usr/bin/python3 tools/torch_train_bench.py [--shape D H W] [--steps N] [--device cpu|cuda]
        [--dtype f32|bf16] [--threads N] [--bench DIR]

Builds torch_unet3d.PaperUNet3D (../shared/bench/torch_unet3d.py) in training mode and runs N
steps on one random 1x1xDxHxW case: forward (under bfloat16 autocast with --dtype bf16), the
recipe's loss in float32 (1 - soft Dice of class 1 over the batch + cross-entropy), backward and
an AdamW update (lr 1e-3, betas (0.95, 0.99), eps 1e-5, weight decay 1e-4 on convolution
weights only). Prints JSON lines like covseg's: one "step" line per step, then a "summary" with
the first step's time (cuDNN autotuning and allocator warm-up included) and the median, mean and
minimum of the others, the peak resident memory of the process (VmHWM), and on CUDA the peak memory
PyTorch allocated (torch.cuda.max_memory_allocated) and reserved.
"""
import argparse, json, os, resource, statistics, sys, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--shape", type=int, nargs=3, default=[20, 224, 224])
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
ap.add_argument("--bench", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
a = ap.parse_args()
if a.steps < 2:
    sys.exit("--steps must be at least 2 (the first warms up)")
sys.path.insert(0, a.bench)
from torch_unet3d import PaperUNet3D

if a.threads > 0:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)
cuda = dev.type == "cuda"
if cuda:
    torch.backends.cudnn.benchmark = True
m = PaperUNet3D().to(dev).train()
decay = [p for p in m.parameters() if p.ndim == 5]
no_decay = [p for p in m.parameters() if p.ndim != 5]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.95, 0.99), eps=1e-5)
x = torch.rand(1, 1, *a.shape, device=dev)
y = (torch.rand(1, *a.shape, device=dev) > 0.8).long()


def loss_fn(logits, y):
    logits = logits.float()
    p1 = logits.softmax(1)[:, 1]
    t1 = (y == 1).float()
    dice = 2 * (p1 * t1).sum() / (p1.sum() + t1.sum())
    return 1 - dice + F.cross_entropy(logits, y)


times, cpus = [], []
for i in range(a.steps):
    if cuda:
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
        logits = m(x)
    loss = loss_fn(logits, y)
    loss.backward()
    opt.step()
    if cuda:
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
    cpus.append(time.process_time() - c)
    print(json.dumps({"event": "step", "step": i + 1, "seconds": times[-1], "loss": loss.item()}), flush=True)

def peak_rss_mb():
    # VmHWM belongs to this process's memory map; ru_maxrss would also count the RSS of a large
    # parent at fork time (Linux keeps it across exec), e.g. of the Go benchmark that runs this.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


rest = times[1:]
summary = {
    "event": "summary", "engine": f"pytorch {torch.__version__}", "device": str(dev),
    "device_name": torch.cuda.get_device_name(dev) if cuda else "cpu",
    "dtype": {"f32": "float32", "bf16": "bfloat16"}[a.dtype], "shape": [1, 1, *a.shape],
    "threads": torch.get_num_threads(), "params": sum(p.numel() for p in m.parameters()), "steps": a.steps,
    "first_step_s": times[0], "step_median_s": statistics.median(rest), "step_mean_s": statistics.mean(rest),
    "step_min_s": min(rest), "step_cpu_median_s": statistics.median(cpus[1:]), "peak_rss_mb": peak_rss_mb(),
    "peak_device_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None,
    "peak_reserved_mb": torch.cuda.max_memory_reserved(dev) / 2**20 if cuda else None,
}
print(json.dumps(summary), flush=True)
