"""Times effdet's tf_efficientdet_d0 (PyTorch, CPU) on the shapes of `benches/d0_forward.rs`.

Backbone and whole detector (raw head outputs), 512x512, batch 1, at the given thread count,
median of N runs after warm-up. Usage:
    python benches/effdet_pytorch.py [--threads 1] [--runs 20]
Needs `pip install torch effdet timm`. Prints one JSON object as the last line.
"""
import argparse, json, statistics, time, warnings
warnings.filterwarnings("ignore")
import torch
from effdet import create_model

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--runs", type=int, default=20)
args = parser.parse_args()
torch.set_num_threads(args.threads)
model = create_model("tf_efficientdet_d0", pretrained=False, pretrained_backbone=False,
                     num_classes=4, bench_task="").eval()
x = torch.randn(1, 3, 512, 512)

def median_ms(fn):
    with torch.inference_mode():
        for _ in range(3):
            fn()
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)

result = {
    "torch": torch.__version__,
    "threads": args.threads,
    "backbone_ms": median_ms(lambda: model.backbone(x)),
    "detector_ms": median_ms(lambda: model(x)),
}
print(json.dumps(result))
