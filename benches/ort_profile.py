"""Where ONNX Runtime spends a D0 frame: its own profiler, time per operator kind.

The anchors' model (effdet's tf_efficientdet_d0, 4 classes, raw head outputs, exported with
torch.onnx.export at opset 17, 512x512, batch 1) run by ONNX Runtime's CPU provider with
profiling on; the per-node kernel times are summed per operator type after ORT's graph
optimisations (convolutions split into dense and depthwise by their `group`), averaged over
the profiled runs. Beside `perf` of our `profile_frame`, this says which of our kernels is
furthest behind (docs/performance.md). `--nodes` prints every node instead, in execution
order, with its input and output shapes and the running total: the per-layer numbers to set
beside `ant-kernels`' `pointwise_shapes` and `depthwise_shapes`, and the stage totals beside
`profile_frame`'s parts. Usage, in the venv of benches/anchors.py:

    python benches/ort_profile.py [--threads 1] [--runs 15] [--nodes]
"""
import argparse
import collections
import json
import os
import tempfile
import warnings

warnings.filterwarnings("ignore")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from effdet import create_model  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--runs", type=int, default=15)
parser.add_argument("--nodes", action="store_true", help="every node, in order, with shapes")
args = parser.parse_args()

work = tempfile.mkdtemp()
model = create_model("tf_efficientdet_d0", pretrained=False, pretrained_backbone=False,
                     num_classes=4, bench_task="").eval()
x = torch.randn(1, 3, 512, 512)
onnx_path = os.path.join(work, "d0.onnx")
with torch.inference_mode():
    torch.onnx.export(model, (x,), onnx_path, opset_version=17, dynamo=False,
                      input_names=["image"])


def options(**extra):
    o = ort.SessionOptions()
    o.intra_op_num_threads = args.threads
    o.inter_op_num_threads = 1
    for key, value in extra.items():
        setattr(o, key, value)
    return o


# The optimised graph, to read each node's op type and attributes (ORT renames and fuses).
optimised_path = os.path.join(work, "d0-optimised.onnx")
ort.InferenceSession(onnx_path, options(optimized_model_filepath=optimised_path),
                     providers=["CPUExecutionProvider"])
nodes = {node.name: node for node in onnx.load(optimised_path).graph.node}

session = ort.InferenceSession(onnx_path, options(enable_profiling=True,
                                                  profile_file_prefix=os.path.join(work, "p")),
                               providers=["CPUExecutionProvider"])
feed = {"image": x.numpy()}
for _ in range(args.runs):
    session.run(None, feed)
with open(session.end_profiling()) as trace:
    events = json.load(trace)

if args.nodes:
    per_node = collections.defaultdict(float)
    shapes = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        per_node[name] += event["dur"]
        shapes[name] = (event["args"].get("op_name", "?"),
                        [list(d.values())[0] for d in event["args"].get("input_type_shape", [])],
                        [list(d.values())[0] for d in event["args"].get("output_type_shape", [])])
    running = 0.0
    print("| ms | running total | operator | inputs | outputs |")
    print("|---|---|---|---|---|")
    for name, micros in per_node.items():
        running += micros / args.runs / 1000
        kind, inputs, outputs = shapes[name]
        print(f"| {micros / args.runs / 1000:.3f} | {running:.2f} | {kind} | {inputs} | {outputs} |")
    raise SystemExit

total = collections.defaultdict(float)
count = collections.Counter()
for event in events:
    if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
        continue
    name = event["name"][: -len("_kernel_time")]
    kind = event["args"].get("op_name", "?")
    node = nodes.get(name)
    if node is not None and kind in ("Conv", "FusedConv"):
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kind = f"{kind} ({'depthwise' if group > 1 else 'dense'})"
    total[kind] += event["dur"]
    count[kind] += 1

frame = sum(total.values())
print(f"ONNX Runtime {ort.__version__}, {args.threads} thread(s), {args.runs} runs: "
      f"{frame / args.runs / 1000:.1f} ms a frame under profiling")
print("| operator | ms a frame | nodes | share |")
print("|---|---|---|---|")
for kind, micros in sorted(total.items(), key=lambda item: -item[1]):
    print(f"| {kind} | {micros / args.runs / 1000:.2f} | {count[kind] // args.runs} | "
          f"{100 * micros / frame:.1f}% |")
