"""The CPU anchors beside our engine, in one run: effdet on PyTorch and on ONNX Runtime, and a
training step of the main job's model on PyTorch, with our numbers measured in the same run.

Inference: effdet's tf_efficientdet_d0 (4 classes, 512x512, batch 1, raw head outputs, no
NMS) on PyTorch eager and on ONNX Runtime (the same model exported with torch.onnx.export,
opset 17, outputs checked against PyTorch's), at each thread count; ours: the prepared CPU
engine (`profile_frame --raw`), the same input size and classes, random weights (speed does
not depend on them).

Training: the main job's model (configs/default.json: tiny preset, B0 at width 0.5 / depth
0.5, BiFPN 32 x 2, 2 head repeats, 256 px, 4 classes) rebuilt in effdet, one SGD step of
batch 4 with effdet's anchor labelling and focal/Huber losses (`DetBenchTrain`); ours: the
stage-0 step of `cargo xtask train` (its images/s over a short capped epoch).

Usage (from the repository root, with `pip install torch effdet timm onnx onnxruntime
onnxscript` and a release build of the workspace):
    python benches/anchors.py [--threads 1,2] [--runs 30] [--skip-training]
Prints a markdown table and, as the last line, one JSON object with every number.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

parser = argparse.ArgumentParser()
parser.add_argument("--threads", default="1,2")
parser.add_argument("--runs", type=int, default=30)
parser.add_argument("--train-steps", type=int, default=24)
parser.add_argument("--skip-training", action="store_true")
parser.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
args = parser.parse_args()
threads = [int(t) for t in args.threads.split(",")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from effdet import DetBenchTrain, EfficientDet, create_model  # noqa: E402
from effdet.config import get_efficientdet_config  # noqa: E402


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def median_ms(fn, runs, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def ours_raw_ms(thread_count):
    """Our CPU engine on D0 at 512 px, raw head outputs (no NMS), median ms."""
    binary = os.path.join(args.target_dir, "release", "examples", "profile_frame")
    env = dict(os.environ, RAYON_NUM_THREADS=str(thread_count))
    out = subprocess.run(
        [binary, "--preset", "d0", "--size", "512", "--width", "1", "--depth", "1",
         "--iterations", str(args.runs), "--raw"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    found = dict(re.findall(r"^\s*(raw [a-z ,0-9]+?)\s+([0-9.]+)$", out, re.M))
    return {name: float(ms) for name, ms in found.items()}


result = {"cpu": cpu_model(), "torch": torch.__version__, "inference": {}, "training": {}}

# Inference anchors.
model = create_model("tf_efficientdet_d0", pretrained=False, pretrained_backbone=False,
                     num_classes=4, bench_task="").eval()
x = torch.randn(1, 3, 512, 512)
import onnxruntime as ort  # noqa: E402

onnx_path = os.path.join(tempfile.mkdtemp(), "d0.onnx")
with torch.inference_mode():
    reference = model(x)
    torch.onnx.export(model, (x,), onnx_path, opset_version=17, dynamo=False,
                      input_names=["image"])
result["onnxruntime"] = ort.__version__
for t in threads:
    torch.set_num_threads(t)
    with torch.inference_mode():
        torch_ms = median_ms(lambda: model(x), args.runs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = t
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy()}
    outputs = session.run(None, feed)
    flat_ref = [o.numpy() for level in reference for o in level]
    error = max(float(np.abs(a - b).max()) for a, b in zip(outputs, flat_ref))
    ort_ms = median_ms(lambda: session.run(None, feed), args.runs)
    ours = ours_raw_ms(t)
    result["inference"][t] = {
        "pytorch_ms": torch_ms, "onnxruntime_ms": ort_ms, "onnx_max_abs_error": error,
        **{name.replace(" ", "_"): ms for name, ms in ours.items()},
    }

# Training anchor: the main job's model in effdet, one SGD step of batch 4.
if not args.skip_training:
    config = get_efficientdet_config("tf_efficientdet_d0")
    config.update(dict(
        num_classes=4, image_size=(256, 256), fpn_channels=32, fpn_cell_repeats=2,
        box_class_repeats=2, anchor_scale=2.0,
        backbone_args=dict(channel_multiplier=0.5, depth_multiplier=0.5),
        backbone_name="efficientnet_b0",
    ))
    import timm  # noqa: E402
    from timm.models.efficientnet import _gen_efficientnet  # noqa: E402,F401

    net = EfficientDet(config, pretrained_backbone=False)
    params = sum(p.numel() for p in net.parameters())
    bench = DetBenchTrain(net).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=4e-5)
    images = torch.randn(4, 3, 256, 256)
    target = {
        "bbox": torch.tensor([[[40.0, 30.0, 120.0, 90.0], [150.0, 60.0, 220.0, 140.0]]] * 4),
        "cls": torch.tensor([[1.0, 2.0]] * 4),
    }

    def step():
        optimizer.zero_grad()
        loss = bench(images, target)["loss"]
        loss.backward()
        optimizer.step()

    for t in threads:
        torch.set_num_threads(t)
        ms = median_ms(step, args.train_steps, warmup=3)
        result["training"][t] = {"pytorch_img_s": 4000.0 / ms, "params": params}

print(f"CPU: {result['cpu']}; torch {result['torch']}, onnxruntime {result['onnxruntime']}\n")
print("| threads | PyTorch ms | ONNX Runtime ms | ours ms (engine, raw) | ours / ORT |")
print("|---|---|---|---|---|")
for t, row in result["inference"].items():
    ours = row.get("raw_d0")
    ratio = f"{ours / row['onnxruntime_ms']:.2f}" if ours else "n/a"
    print(f"| {t} | {row['pytorch_ms']:.1f} | {row['onnxruntime_ms']:.1f} | {ours} | {ratio} |")
for t, row in result["training"].items():
    print(f"training, {t} thread(s): PyTorch {row['pytorch_img_s']:.1f} img/s "
          f"({row['params']} parameters)")
print(json.dumps(result))
