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
    let modes: [&[&str]; 8] = [
        &["--static", "6,6,6,6,6,6"],
        &["--static", "1,2,3,4,5,6"],
        &["--non-temporal"],
        &["--interval", "3"],
        &["--threshold", "0"],
        &["--interval", "2", "--static", "1,1,1,1,1,1"],
        &["--skipconv", "0.01"],
        &["--skipconv", "0", "--skipconv-kernel", "dense"],
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
            "--skipconv" => {
                // The first frame computes everything; the others what moved.
                assert_eq!(keys, [true, false, false, false], "{mode:?}");
                for line in &lines[1..] {
                    assert!(
                        line["gmac"].as_f64() < lines[0]["gmac"].as_f64(),
                        "{mode:?}"
                    );
                }
            }
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

#[test]
fn infer_should_name_a_truncated_frame_and_skip_it_when_asked() {
    let Some(clip) = shared("data/detrac-clip/clip252") else {
        return;
    };
    // Five real frames, the third cut to its first 3,000 bytes (a partial copy, a failed
    // upload): decoders fill the missing part in with grey unless told otherwise.
    let dir = std::env::temp_dir().join(format!("ant-infer-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for index in 1..=5 {
        let name = format!("img{index:05}.jpg");
        let bytes = std::fs::read(clip.join(&name)).unwrap();
        let bytes = if index == 3 {
            &bytes[..3000]
        } else {
            &bytes[..]
        };
        std::fs::write(dir.join(&name), bytes).unwrap();
    }
    let out = dir.join("out.jsonl");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--frames",
            dir.to_str().unwrap(),
            "--random-init",
            "--config",
            "tiny",
            "--image-size",
            "128",
            "--interval",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(&args)
            .output()
            .expect("xtask runs")
    };

    // The default: stop, naming the frame and the way on.
    let failed = run(&[]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "a truncated frame must not pass");
    assert!(
        stderr.contains("img00003.jpg") && stderr.contains("--on-bad-frame skip"),
        "{stderr}"
    );

    // Skipping: every other frame is processed, the bad one has its own line, the summary
    // counts it.
    let skipped = run(&["--on-bad-frame", "skip"]);
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{stderr}");
    assert!(stderr.contains("1 bad frame(s): img00003.jpg"), "{stderr}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[2]["frame"], "img00003.jpg");
    assert_eq!(lines[2]["skipped"], true);
    assert!(
        lines[2]["error"].as_str().unwrap().contains("img00003.jpg"),
        "{}",
        lines[2]
    );
    for line in [&lines[0], &lines[1], &lines[3], &lines[4]] {
        assert!(line.get("detections").is_some(), "{line}");
        assert!(line.get("skipped").is_none(), "{line}");
    }
    // The stream goes on around the gap: frames 1, 2, 4, 5 with a key frame every second.
    let keys: Vec<bool> = [0, 1, 3, 4]
        .iter()
        .map(|&i| lines[i]["key"].as_bool().unwrap())
        .collect();
    assert_eq!(keys, [true, false, true, false]);
    let _ = std::fs::remove_dir_all(&dir);
}
