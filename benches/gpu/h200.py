"""The GPU bench of the GPU issue, in one run on one GPU, under 10 minutes, offline.

Measures, on the same GPU:
  1. training throughput of stage 0 of configs/detrac-paper.json (D0, 512 px, batch 16, the
     paper's recipe) on a synthetic DETRAC-format set, in images/s after warm-up (the second
     of two capped epochs): ours on wgpu and on cuda, and PyTorch effdet (DetBenchTrain,
     tf_efficientdet_d0, 4 classes, SGD) at the same batch and size;
  2. inference of D0 at 512 px: ours at batch 1 (`xtask infer --static 6,6,6,6,6,6`, median
     detector ms per frame after warm-up, decoding timed apart), PyTorch effdet at batch 1 and
     16 (raw head outputs, CUDA-synchronised).
Batch-16 inference of ours is not measured: no command runs a batched forward yet.

It needs no Rust toolchain and no network: prebuilt xtask binaries (built here with
`cargo build --release -p xtask --features wgpu` and `--features cuda`, copied to the GPU
machine as xtask-wgpu and xtask-cuda), the repository's configs/, and PyTorch with effdet and
timm installed from wheels prepared beforehand. Usage, from the repository root:

    python benches/gpu/h200.py --xtask-wgpu ./xtask-wgpu --xtask-cuda ./xtask-cuda \
        [--steps 20] [--out gpu-bench] [--skip-torch]

Prints a markdown table and, as the last line, one JSON object with every number. Each
measurement has its own time limit, so a slow or failing backend is reported and the rest
still run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--xtask-wgpu", default=None)
parser.add_argument("--xtask-cuda", default=None)
parser.add_argument("--steps", type=int, default=8, help="steps per capped epoch (ours)")
parser.add_argument("--torch-steps", type=int, default=20)
parser.add_argument("--batch", type=int, default=16)
parser.add_argument("--size", type=int, default=512)
parser.add_argument("--out", default="gpu-bench")
parser.add_argument("--limit-s", type=int, default=200, help="time limit of each training run of ours")
parser.add_argument("--skip-torch", action="store_true")
args = parser.parse_args()
# The xtask binaries run directly, not through cargo: give them the allocator setting that
# .cargo/config.toml gives every command cargo runs (mimalloc keeps its pages).
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")

os.makedirs(args.out, exist_ok=True)
results = {"batch": args.batch, "size": args.size, "ours": {}, "torch": {}, "errors": []}


def run(command, limit):
    started = time.time()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {limit} s: {' '.join(command)}"
    if done.returncode != 0:
        return None, f"exit {done.returncode}: {' '.join(command)}\n{done.stderr[-2000:]}"
    return time.time() - started, None


def synthetic_set(xtask):
    root = os.path.join(args.out, "synth")
    if not os.path.isdir(root):
        _, error = run([xtask, "dataset", "synth", "--out", root, "--sequences", "8",
                        "--frames", "60"], 120)
        if error:
            results["errors"].append(error)
    return root


def ours_training(backend, xtask):
    root = synthetic_set(xtask)
    run_dir = os.path.join(args.out, f"train-{backend}")
    command = [
        xtask, "train", "--config", "configs/detrac-paper.json", "--device", backend,
        "--quiet", "--run-dir", run_dir,
        "--set", f"data.root={json.dumps(root)}",
        "--set", "standalone.epochs=2",
        "--set", f"standalone.max_steps_per_epoch={args.steps}",
        "--set", f"standalone.batch_size={args.batch}",
        "--set", f"model.image_size={args.size}",
        "--set", "supernet.enabled=false",
        "--set", "joint.enabled=false",
        "--set", "eval.recalibration_batches=0",
    ]
    seconds, error = run(command, args.limit_s)
    if error:
        results["errors"].append(error)
        return None
    epochs = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as lines:
        for line in lines:
            record = json.loads(line)
            if "images_per_s" in record:
                epochs.append(record["images_per_s"])
    # The first epoch pays for kernel compilation and autotuning: the second is the rate.
    return {"img_per_s": epochs[-1], "epochs": epochs, "wall_s": seconds}


def ours_inference(backend, xtask):
    root = synthetic_set(xtask)
    frames = os.path.join(root, "Insight-MVT_Annotation_Test")
    sequence = sorted(os.listdir(frames))[0]
    out = os.path.join(args.out, f"infer-{backend}.jsonl")
    command = [
        xtask, "infer", "--device", backend, "--random-init", "--config", "d0",
        "--image-size", str(args.size), "--static", "6,6,6,6,6,6",
        "--frames", os.path.join(frames, sequence), "--limit", "60", "--out", out,
    ]
    _, error = run(command, args.limit_s // 2)
    if error:
        results["errors"].append(error)
        return None
    ms = [json.loads(line)["ms"] for line in open(out)][10:]
    return {"batch1_ms": statistics.median(ms), "frames": len(ms)}


def torch_bench():
    import torch
    from effdet import DetBenchTrain, create_model

    device = torch.device("cuda")
    results["torch"]["device"] = torch.cuda.get_device_name(0)
    results["torch"]["version"] = torch.__version__
    model = create_model("tf_efficientdet_d0", pretrained=False, num_classes=4,
                         image_size=(args.size, args.size))
    bench = DetBenchTrain(model).to(device).train()
    optimizer = torch.optim.SGD(bench.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    boxes = torch.tensor([[40.0, 60.0, 200.0, 180.0], [250.0, 200.0, 400.0, 330.0]],
                         device=device).repeat(args.batch, 1, 1)
    target = {
        "bbox": boxes,
        "cls": torch.ones(args.batch, 2, device=device),
        "img_scale": torch.ones(args.batch, device=device),
        "img_size": torch.full((args.batch, 2), float(args.size), device=device),
    }

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = bench(images, target)["loss"]
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    started = time.time()
    for _ in range(args.torch_steps):
        step()
    torch.cuda.synchronize()
    results["torch"]["train_img_per_s"] = args.batch * args.torch_steps / (time.time() - started)

    model.eval()
    for batch in (1, args.batch):
        x = torch.randn(batch, 3, args.size, args.size, device=device)
        times = []
        with torch.no_grad():
            for index in range(60):
                torch.cuda.synchronize()
                started = time.time()
                model(x)
                torch.cuda.synchronize()
                if index >= 10:
                    times.append((time.time() - started) * 1e3)
        results["torch"][f"batch{batch}_ms"] = statistics.median(times)


for backend, xtask in (("wgpu", args.xtask_wgpu), ("cuda", args.xtask_cuda)):
    if xtask is None:
        results["errors"].append(f"no --xtask-{backend}: {backend} not measured")
        continue
    results["ours"][backend] = {
        "train": ours_training(backend, xtask),
        "inference": ours_inference(backend, xtask),
    }
if not args.skip_torch:
    try:
        torch_bench()
    except Exception as error:  # report and go on: the table still prints ours
        results["errors"].append(f"PyTorch: {error!r}")

torch_train = results["torch"].get("train_img_per_s")
print(f"| engine | train img/s (batch {args.batch}, {args.size} px) | ratio to PyTorch "
      f"| inference batch 1 ms |")
print("|---|---|---|---|")
for backend, numbers in results["ours"].items():
    train = (numbers.get("train") or {}).get("img_per_s")
    infer = (numbers.get("inference") or {}).get("batch1_ms")
    ratio = f"{train / torch_train:.2f}" if train and torch_train else "-"
    print(f"| ours, {backend} | {train or '-'} | {ratio} | {infer or '-'} |")
if torch_train:
    print(f"| PyTorch effdet | {torch_train:.1f} | 1.00 | {results['torch']['batch1_ms']:.2f} "
          f"(batch {args.batch}: {results['torch'][f'batch{args.batch}_ms']:.1f}) |")
for error in results["errors"]:
    print("error:", error, file=sys.stderr)
print(json.dumps(results))
