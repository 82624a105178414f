"""Make a whole-network cross-check fixture from ../shared/bench/torch_unet3d.py.

    /usr/bin/python3 tools/make_unet_fixture.py OUTDIR SEED D H W [--classes N] [--bench DIR]

Builds torch_unet3d.PaperUNet3D (the paper's network in PyTorch: r3d_18 encoder with
a 1-channel stem, bridge, three U-Net blocks, head), randomises every BatchNorm's
running statistics and affine parameters and the head's bias (so that a loader that
skips or mixes them up fails), runs it in eval mode on a N(0,1) input of shape
1x1xDxHxW, and writes to OUTDIR:

  unet.pth     torch.save of the state_dict, with the encoder's modules renamed from
               torch_unet3d.py's l1..l4 to torchvision's layer1..layer4 (covseg's names)
  input.npy    the input, float32 NCDHW
  output.npy   the logits, float32 [1, N, D, H, W]
  meta.json    seed, shapes, classes, torch version

covseg's model tests compare against it when COVSEG_UNET_FIXTURE=OUTDIR is set
(go test -run TestUNetTorch ./model). --bench defaults to ../shared/bench beside the
repository.
"""
import argparse, json, os, sys
import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("seed", type=int)
ap.add_argument("shape", type=int, nargs=3)
ap.add_argument("--classes", type=int, default=2)
ap.add_argument("--bench", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
a = ap.parse_args()
sys.path.insert(0, a.bench)
from torch_unet3d import PaperUNet3D

torch.manual_seed(a.seed)
m = PaperUNet3D(n_classes=a.classes)
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.uniform_(0.5, 1.5)
            mod.bias.uniform_(-0.2, 0.2)
            mod.num_batches_tracked.fill_(a.seed + 1000)
    m.head_up.bias.uniform_(-0.2, 0.2)
m.eval()
x = torch.randn(1, 1, *a.shape, generator=torch.Generator().manual_seed(a.seed + 1))
with torch.no_grad():
    y = m(x)
rename = {"l1": "layer1", "l2": "layer2", "l3": "layer3", "l4": "layer4"}
sd = {}
for k, v in m.state_dict().items():
    head, _, rest = k.partition(".")
    sd[rename.get(head, head) + "." + rest] = v
os.makedirs(a.out, exist_ok=True)
torch.save(sd, os.path.join(a.out, "unet.pth"))
np.save(os.path.join(a.out, "input.npy"), x.numpy().astype(np.float32))
np.save(os.path.join(a.out, "output.npy"), y.numpy().astype(np.float32))
meta = {"torch": torch.__version__, "seed": a.seed, "classes": a.classes,
        "input": list(x.shape), "output": list(y.shape),
        "params": sum(p.numel() for p in m.parameters())}
json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1)
print(json.dumps(meta))
