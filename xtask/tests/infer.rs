//! `cargo xtask infer` on real footage (`../shared/data/detrac-clip/clip252`), every mode, as a
//! user runs it: one JSON object per frame with the documented keys, boxes in source pixels,
//! and drawings when asked.

mod common;

use common::shared;
use std::path::PathBuf;
use std::process::Command;

/// Runs `infer` on the first `limit` frames with `mode` flags; returns the JSON lines.
fn infer(
    frames: &std::path::Path,
    mode: &[&str],
    limit: usize,
    draw: Option<&PathBuf>,
) -> Vec<serde_json::Value> {
    let out = std::env::temp_dir().join(format!(
        "ant-infer-{}-{}.jsonl",
        std::process::id(),
        mode.join("_").replace([',', '.'], "")
    ));
    let limit = limit.to_string();
    let mut args = vec![
        "infer",
        "--frames",
        frames.to_str().unwrap(),
        "--random-init",
        "--config",
        "tiny",
        "--image-size",
        "128",
        "--limit",
        &limit,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(mode);
    let draw_arg;
    if let Some(dir) = draw {
        draw_arg = dir.to_str().unwrap().to_string();
        args.extend_from_slice(&["--draw", &draw_arg]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(&args)
        .output()
        .expect("xtask runs");
    assert!(
        output.status.success(),
        "{mode:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).ok();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn infer_should_run_every_mode_on_the_real_clip() {
    let Some(frames) = shared("data/detrac-clip/clip252") else {
        return;
    };
    let modes: [&[&str]; 6] = [
        &["--static", "6,6,6,6,6,6"],
        &["--static", "1,2,3,4,5,6"],
        &["--non-temporal"],
        &["--interval", "3"],
        &["--threshold", "0"],
        &["--interval", "2", "--static", "1,1,1,1,1,1"],
    ];
    for mode in modes {
        let lines = infer(&frames, mode, 4, None);
        assert_eq!(lines.len(), 4, "{mode:?}");
        assert_eq!(lines[0]["frame"], "img00001.jpg");
        assert_eq!(lines[3]["frame"], "img00004.jpg");
        for line in &lines {
            for key in ["frame", "key", "arch", "gmac", "ms", "detections"] {
                assert!(line.get(key).is_some(), "{mode:?}: no {key} in {line}");
            }
            assert_eq!(line["arch"].as_array().unwrap().len(), 6);
            for detection in line["detections"].as_array().unwrap() {
                let bbox = detection["bbox"].as_array().unwrap();
                let [x, y, w, h] = [0, 1, 2, 3].map(|i| bbox[i].as_f64().unwrap());
                // UA-DETRAC frames are 960 x 540; boxes are clipped to them.
                assert!(x >= 0.0 && y >= 0.0 && x + w <= 960.01 && y + h <= 540.01);
                assert!(detection["score"].is_number() && detection["class"].is_number());
            }
        }
        let keys: Vec<bool> = lines.iter().map(|l| l["key"].as_bool().unwrap()).collect();
        match mode[0] {
            "--static" | "--non-temporal" => assert_eq!(keys, [false; 4], "{mode:?}"),
            "--threshold" => assert_eq!(keys, [true; 4], "{mode:?}"),
            _ if mode[1] == "3" => assert_eq!(keys, [true, false, false, true]),
            _ => {
                assert_eq!(keys, [true, false, true, false]);
                assert_eq!(lines[1]["arch"], serde_json::json!([1, 1, 1, 1, 1, 1]));
                assert!(lines[1]["gmac"].as_f64() < lines[0]["gmac"].as_f64());
            }
        }
    }
}

#[test]
fn infer_should_draw_every_frame_when_asked() {
    let Some(frames) = shared("data/detrac-clip/clip252") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ant-infer-draw-{}", std::process::id()));
    let lines = infer(&frames, &["--interval", "2"], 2, Some(&dir));
    assert_eq!(lines.len(), 2);
    for name in ["img00001.jpg", "img00002.jpg"] {
        let image = image::open(dir.join(name)).unwrap();
        assert_eq!((image.width(), image.height()), (960, 540));
    }
    std::fs::remove_dir_all(&dir).ok();
}
