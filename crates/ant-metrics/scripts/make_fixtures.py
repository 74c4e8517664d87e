"""Make the committed edge-case fixtures of ant-metrics with pycocotools.

Each case folder under tests/fixtures/ holds gt.json (COCO instances), dets.json (COCO
results), expected.json with pycocotools' COCOeval('bbox') `stats` (12 numbers) and
`per_class_ap` (precision averaged over IoU thresholds and recall points at area 'all' and
maxDets 100, per category id; null when absent), and for DETRAC cases regions.json
({image_id: [[x1, y1, x2, y2], ...]}) plus a `policy` entry: the ground truth and detections
are transformed in Python by the DETRAC rule (drop boxes at least half inside the ignored
regions) or by adding the regions as crowd boxes of every category, then evaluated.

Usage (pycocotools 2.0.11, numpy): python make_fixtures.py ../tests/fixtures
"""
import contextlib
import io
import json
import os
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def evaluate(gt_dict, dets):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(gt_dict))
        gt.createIndex()
        if dets:
            dt = gt.loadRes(json.loads(json.dumps(dets)))
        else:  # loadRes cannot take an empty list; build the empty result set by hand.
            dt = COCO()
            dt.dataset = {"images": gt_dict["images"], "categories": gt_dict["categories"],
                          "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        s = precision[:, :, k, 0, -1]
        s = s[s > -1]
        per_class[str(cat)] = float(np.mean(s)) if s.size else None
    return [float(s) for s in ev.stats], per_class


def images(n, w=640, h=480):
    return [{"id": i, "width": w, "height": h, "file_name": f"{i:06d}.jpg"} for i in range(1, n + 1)]


def cats(n):
    return [{"id": c, "name": f"class{c}"} for c in range(1, n + 1)]


def ann(ann_id, img, cat, box, crowd=0, area=None):
    return {"id": ann_id, "image_id": img, "category_id": cat, "bbox": box,
            "area": box[2] * box[3] if area is None else area, "iscrowd": crowd}


def det(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": box, "score": score}


def case_perfect():
    anns, dets = [], []
    boxes = [[10, 10, 20, 20], [100, 50, 60, 40], [300, 200, 150, 120]]
    for img in range(1, 4):
        for j, b in enumerate(boxes):
            anns.append(ann(len(anns) + 1, img, 1 + j % 2, b))
            dets.append(det(img, 1 + j % 2, b, 0.5 + 0.1 * j))
    return {"images": images(3), "annotations": anns, "categories": cats(2)}, dets


def case_no_detections():
    gt, _ = case_perfect()
    return gt, []


def case_crowd():
    anns = [
        ann(1, 1, 1, [0, 0, 200, 200], crowd=1),
        ann(2, 1, 1, [10, 10, 50, 50]),
        ann(3, 1, 1, [300, 300, 40, 40]),
        ann(4, 2, 1, [100, 100, 300, 200], crowd=1),
        ann(5, 2, 2, [120, 120, 30, 30]),
    ]
    dets = [
        det(1, 1, [10, 10, 50, 50], 0.9),     # matches the regular box inside the crowd
        det(1, 1, [12, 12, 50, 50], 0.8),     # duplicate: falls to the crowd region
        det(1, 1, [100, 100, 20, 20], 0.95),  # inside the crowd only
        det(1, 1, [150, 150, 100, 100], 0.7), # a quarter inside the crowd
        det(1, 1, [301, 300, 40, 40], 0.6),
        det(2, 1, [150, 150, 50, 50], 0.99),  # inside the crowd of image 2
        det(2, 2, [120, 120, 30, 30], 0.5),
        det(2, 2, [110, 110, 30, 30], 0.55),
    ]
    return {"images": images(2), "annotations": anns, "categories": cats(2)}, dets


def case_exact_thresholds():
    # IoU exactly 0.5 and 0.75, areas exactly at 32^2 and 96^2, many tied scores.
    anns = [
        ann(1, 1, 1, [0, 0, 100, 100]),
        ann(2, 1, 1, [200, 0, 32, 32]),
        ann(3, 1, 1, [300, 0, 96, 96]),
        ann(4, 2, 1, [0, 0, 40, 40]),
        ann(5, 2, 1, [100, 100, 64, 48], area=1024.0),  # area field differs from the box
        ann(6, 3, 1, [0, 0, 10, 10]),
    ]
    dets = [
        det(1, 1, [0, 0, 100, 50], 0.5),    # IoU 0.5 with gt 1
        det(1, 1, [0, 0, 100, 75], 0.5),    # IoU 0.75 with gt 1
        det(1, 1, [200, 0, 32, 32], 0.5),   # exact, area 1024
        det(1, 1, [300, 0, 96, 96], 0.5),   # exact, area 9216
        det(2, 1, [0, 0, 40, 20], 0.5),     # IoU 0.5
        det(2, 1, [100, 100, 64, 48], 0.5),
        det(2, 1, [400, 400, 32, 32], 0.5), # false positive of area exactly 1024
        det(3, 1, [0, 0, 10, 10], 0.5),
        det(3, 1, [500, 300, 96, 96], 0.5),
    ]
    return {"images": images(3), "annotations": anns, "categories": cats(1)}, dets


def case_gt_id_zero():
    anns = [ann(0, 1, 1, [0, 0, 50, 50]), ann(1, 1, 1, [100, 100, 50, 50])]
    dets = [det(1, 1, [0, 0, 50, 50], 0.9), det(1, 1, [100, 100, 50, 50], 0.8)]
    return {"images": images(1), "annotations": anns, "categories": cats(1)}, dets


def case_many_detections(rng):
    anns, dets = [], []
    for img in range(1, 4):
        for j in range(30):
            b = [float(20 * (j % 10)), float(100 * (j // 10)), 18.0, 40.0]
            anns.append(ann(len(anns) + 1, img, 1, b))
        for j in range(150):  # more than maxDets=100; true positives also past rank 100
            b = [float(20 * (j % 10)), float(100 * ((j // 10) % 3)), 18.0, 40.0]
            dets.append(det(img, 1, b, round(float(rng.random()), 2)))
    return {"images": images(3), "annotations": anns, "categories": cats(1)}, dets


def case_random_ties(rng):
    """Integer boxes and one-decimal scores: exact IoU ties and score ties everywhere."""
    n_images, n_cats = 15, 3
    anns, dets = [], []
    for img in range(1, n_images + 1):
        for _ in range(int(rng.integers(0, 12))):
            w, h = int(rng.choice([8, 20, 32, 50, 96, 120])), int(rng.choice([8, 16, 32, 64, 96]))
            x, y = int(rng.integers(0, 500)), int(rng.integers(0, 400))
            cat = int(rng.integers(1, n_cats + 1))
            crowd = int(rng.random() < 0.1)
            anns.append(ann(len(anns) + 1, img, cat, [x, y, w, h], crowd=crowd))
            for _ in range(int(rng.integers(0, 3))):
                dx, dy = int(rng.integers(-4, 5)), int(rng.integers(-4, 5))
                dets.append(det(img, cat, [x + dx, y + dy, w, h], round(float(rng.random()), 1)))
        for _ in range(int(rng.integers(0, 8))):
            dets.append(det(img, int(rng.integers(1, n_cats + 1)),
                            [int(rng.integers(0, 500)), int(rng.integers(0, 400)),
                             int(rng.integers(4, 100)), int(rng.integers(4, 100))],
                            round(float(rng.random()), 1)))
    order = rng.permutation(len(dets))
    dets = [dets[i] for i in order]
    return {"images": images(n_images), "annotations": anns, "categories": cats(n_cats)}, dets


def detrac_scene():
    """Two frames of one sequence sharing two ignored regions (non-overlapping)."""
    regions = {"1": [[400, 0, 640, 200], [0, 400, 100, 480]],
               "2": [[400, 0, 640, 200], [0, 400, 100, 480]]}
    anns = [
        ann(1, 1, 1, [50, 50, 60, 40]),
        ann(2, 1, 1, [450, 50, 60, 40]),    # inside a region
        ann(3, 1, 2, [370, 100, 60, 40]),   # exactly half inside
        ann(4, 2, 1, [20, 380, 100, 60]),   # a third inside the lower region
        ann(5, 2, 2, [200, 200, 80, 60]),
    ]
    dets = [
        det(1, 1, [52, 50, 60, 40], 0.9),
        det(1, 1, [455, 55, 60, 40], 0.95),
        det(1, 1, [500, 100, 30, 30], 0.99),  # false positive inside a region
        det(1, 2, [372, 100, 60, 40], 0.6),
        det(2, 1, [20, 382, 100, 60], 0.8),
        det(2, 1, [10, 420, 40, 40], 0.85),   # false positive inside the lower region
        det(2, 2, [200, 200, 80, 60], 0.7),
        det(2, 2, [150, 300, 40, 40], 0.75),  # false positive outside
    ]
    return {"images": images(2), "annotations": anns, "categories": cats(2)}, dets, regions


def fraction_inside(box, regions):
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return 0.0
    covered = 0.0  # the regions of these scenes do not overlap, so the union is the sum
    for rx1, ry1, rx2, ry2 in regions:
        iw = min(x + w, rx2) - max(x, rx1)
        ih = min(y + h, ry2) - max(y, ry1)
        if iw > 0 and ih > 0:
            covered += iw * ih
    return covered / (w * h)


def apply_drop(gt, dets, regions):
    gt = json.loads(json.dumps(gt))
    gt["annotations"] = [a for a in gt["annotations"]
                         if fraction_inside(a["bbox"], regions.get(str(a["image_id"]), [])) < 0.5]
    dets = [d for d in dets if fraction_inside(d["bbox"], regions.get(str(d["image_id"]), [])) < 0.5]
    return gt, dets


def apply_crowd(gt, dets, regions):
    gt = json.loads(json.dumps(gt))
    next_id = max(a["id"] for a in gt["annotations"]) + 1
    for img in sorted(regions, key=int):
        for x1, y1, x2, y2 in regions[img]:
            for c in gt["categories"]:
                gt["annotations"].append(ann(next_id, int(img), c["id"], [x1, y1, x2 - x1, y2 - y1], crowd=1))
                next_id += 1
    return gt, dets


def write_case(out, name, gt, dets, extra=None, eval_gt=None, eval_dets=None):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    stats, per_class = evaluate(eval_gt or gt, dets if eval_dets is None else eval_dets)
    json.dump(gt, open(os.path.join(d, "gt.json"), "w"))
    json.dump(dets, open(os.path.join(d, "dets.json"), "w"))
    expected = {"stats": stats, "per_class_ap": per_class}
    if extra:
        expected.update(extra)
    json.dump(expected, open(os.path.join(d, "expected.json"), "w"), indent=1)
    print(name, [round(s, 4) for s in stats])


if __name__ == "__main__":
    out = sys.argv[1]
    rng = np.random.default_rng(3)
    write_case(out, "perfect", *case_perfect())
    write_case(out, "no_detections", *case_no_detections())
    write_case(out, "crowd", *case_crowd())
    write_case(out, "exact_thresholds", *case_exact_thresholds())
    write_case(out, "gt_id_zero", *case_gt_id_zero())
    write_case(out, "many_detections", *case_many_detections(rng))
    write_case(out, "random_ties", *case_random_ties(rng))
    gt, dets, regions = detrac_scene()
    for policy, apply in (("drop_half_inside", apply_drop), ("as_crowd", apply_crowd)):
        eval_gt, eval_dets = apply(gt, dets, regions)
        write_case(out, f"detrac_{policy}", gt, dets, {"policy": policy}, eval_gt, eval_dets)
        json.dump(regions, open(os.path.join(out, f"detrac_{policy}", "regions.json"), "w"))
