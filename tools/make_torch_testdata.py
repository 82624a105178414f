"""Make the small PyTorch files that model/torchpth/torchpth_test.go reads (model/torchpth/testdata/).

    /usr/bin/python3 tools/make_torch_testdata.py model/torchpth/testdata

Writes state_dicts with torch.save in both formats PyTorch has used (zip since 1.6,
and the older single-stream format: _use_new_zipfile_serialization=False), with the
element types and layouts a reader must handle: float32/float64/float16/bfloat16,
int64/int32/uint8/bool, a 0-d tensor, a non-contiguous (transposed) view sharing its
storage with another entry, and a view at a storage offset. expected.json holds every
tensor's dtype, shape and values (row major) for the test to compare.
"""
import collections, json, sys
import torch

out = sys.argv[1]
g = torch.Generator().manual_seed(3)
base = torch.randn(3, 4, generator=g)
sd = collections.OrderedDict()
sd["conv.weight"] = torch.randn(2, 3, 1, 2, 2, generator=g)
sd["f64"] = torch.randn(5, generator=g, dtype=torch.float64)
sd["f16"] = torch.randn(2, 3, generator=g).half()
sd["bf16"] = torch.randn(4, generator=g).bfloat16()
sd["i64"] = torch.tensor([1, -2, 3000000000], dtype=torch.int64)
sd["i32"] = torch.tensor([[7, -8]], dtype=torch.int32)
sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
sd["flag"] = torch.tensor([True, False])
sd["bn.num_batches_tracked"] = torch.tensor(1234)
sd["base"] = base
sd["base_t"] = base.t()          # same storage, strides (1, 4)
sd["base_row"] = base[1, 1:]     # same storage, offset 5
torch.save(sd, f"{out}/small_zip.pth")
torch.save(sd, f"{out}/small_legacy.pth", _use_new_zipfile_serialization=False)
exp = collections.OrderedDict()
for k, v in sd.items():
    exp[k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
              "values": v.float().flatten().tolist() if v.is_floating_point() else v.long().flatten().tolist()}
json.dump(exp, open(f"{out}/expected.json", "w"), indent=0)
print("torch", torch.__version__, "->", out)
