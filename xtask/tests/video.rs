//! Video input through the system's ffmpeg (`ant_detrac::frames`, `cargo xtask infer --video`),
//! on videos the tests encode from the real clip (`../shared/data/detrac-clip/clip252`): an
//! MP4, two MPEG-TS segments of different sizes joined into one stream, a corrupt and a
//! truncated MP4, and a machine without ffmpeg.
//!
//! ffmpeg is Debian's package, which `.ci/run` installs; without it these tests fail under
//! `CI=true` and skip with a note elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ant_detrac::frames::{FrameSource, SourceItem, VideoOptions};
use ant_detrac::{DetracError, decode_image};
use common::shared;

/// Whether ffmpeg runs here; under `CI=true` its absence fails the test.
fn have_ffmpeg() -> bool {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "ffmpeg is missing in CI (.ci/run installs it)"
        );
        eprintln!("note: ffmpeg missing, test skipped outside CI");
    }
    found
}

/// The clip and a fresh scratch directory, when the clip and ffmpeg are here.
fn setup(name: &str) -> Option<(PathBuf, PathBuf)> {
    let clip = shared("data/detrac-clip/clip252")?;
    if !have_ffmpeg() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("ant-video-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Some((clip, dir))
}

/// Encodes `frames` frames of the clip from frame `start` (1-based) as H.264 (MPEG-4 part 2
/// where this ffmpeg lacks libx264), scaled to `size` if given, into `out`.
fn encode(clip: &Path, start: usize, frames: usize, size: Option<(u32, u32)>, out: &Path) {
    let pattern = clip.join("img%05d.jpg");
    let try_codec = |codec: &[&str]| {
        let mut command = Command::new("ffmpeg");
        command
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-framerate",
                "30",
            ])
            .args(["-start_number", &start.to_string(), "-i"])
            .arg(&pattern)
            .args(["-frames:v", &frames.to_string()]);
        if let Some((w, h)) = size {
            command.args(["-vf", &format!("scale={w}:{h}")]);
        }
        command
            .args(codec)
            .args(["-pix_fmt", "yuv420p"])
            .arg(out)
            .output()
            .unwrap()
    };
    let output = try_codec(&["-c:v", "libx264", "-preset", "ultrafast"]);
    if !output.status.success() {
        let output = try_codec(&["-c:v", "mpeg4", "-q:v", "2"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every item of a source: frames and bad frames, or the fatal error.
fn read_all(source: FrameSource) -> (Vec<SourceItem>, Option<DetracError>) {
    let mut items = Vec::new();
    for item in source {
        match item {
            Ok(item) => items.push(item),
            Err(error) => return (items, Some(error)),
        }
    }
    (items, None)
}

fn infer(args: &[&str], path: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("infer").args([
        "--random-init",
        "--config",
        "tiny",
        "--image-size",
        "128",
        "--interval",
        "3",
    ]);
    command.args(args);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    command.output().expect("xtask runs")
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_video_should_decode_to_the_frames_it_was_made_from() {
    let Some((clip, dir)) = setup("mp4") else {
        return;
    };
    let video = dir.join("clip.mp4");
    encode(&clip, 1, 12, None, &video);
    let (items, error) = read_all(FrameSource::video(&video).unwrap());
    assert!(error.is_none(), "{error:?}");
    assert_eq!(items.len(), 12);
    for (position, item) in items.iter().enumerate() {
        let SourceItem::Frame(frame) = item else {
            panic!("frame {} did not decode: {item:?}", position + 1);
        };
        assert_eq!(frame.index, position + 1);
        assert_eq!(frame.name, format!("{:06}", position + 1));
        let original = decode_image(&clip.join(format!("img{:05}.jpg", position + 1))).unwrap();
        assert_eq!(frame.image.dimensions(), original.dimensions());
        // Lossy coding moves pixels by a few levels; a channel, row or frame mix-up by tens.
        let difference = frame
            .image
            .as_raw()
            .iter()
            .zip(original.as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / original.as_raw().len() as f64;
        assert!(
            difference < 6.0,
            "frame {}: mean |diff| {difference}",
            position + 1
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn infer_should_stream_a_video_and_report_decoding_apart() {
    let Some((clip, dir)) = setup("infer") else {
        return;
    };
    let video = dir.join("clip.mp4");
    encode(&clip, 1, 10, None, &video);
    let out = dir.join("out.jsonl");
    let drawn = dir.join("drawn");
    let output = infer(
        &[
            "--video",
            video.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--draw",
            drawn.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("detector median") && stderr.contains("decoding median"),
        "{stderr}"
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 10);
    for (position, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], position + 1);
        assert_eq!(line["size"], serde_json::json!([960, 540]));
        assert_eq!(line["key"], position % 3 == 0, "{line}");
        assert!(line["decode_ms"].as_f64().unwrap() >= 0.0);
        for detection in line["detections"].as_array().unwrap() {
            let bbox = detection["bbox"].as_array().unwrap();
            let [x, y, w, h] = [0, 1, 2, 3].map(|i| bbox[i].as_f64().unwrap());
            assert!(x >= 0.0 && y >= 0.0 && x + w <= 960.01 && y + h <= 540.01);
        }
    }
    let image = image::open(drawn.join("000010.jpg")).unwrap();
    assert_eq!((image.width(), image.height()), (960, 540));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_stream_whose_frame_size_changes_should_keep_each_frames_size() {
    let Some((clip, dir)) = setup("resize") else {
        return;
    };
    // Two MPEG-TS segments joined byte by byte, as a camera switching resolution sends them.
    let (large, small) = (dir.join("a.ts"), dir.join("b.ts"));
    encode(&clip, 1, 6, None, &large);
    encode(&clip, 7, 5, Some((480, 270)), &small);
    let joined = dir.join("joined.ts");
    let mut bytes = std::fs::read(&large).unwrap();
    bytes.extend(std::fs::read(&small).unwrap());
    std::fs::write(&joined, bytes).unwrap();

    let (items, error) = read_all(FrameSource::video(&joined).unwrap());
    assert!(error.is_none(), "{error:?}");
    let sizes: Vec<(u32, u32)> = items
        .iter()
        .map(|item| match item {
            SourceItem::Frame(frame) => frame.image.dimensions(),
            SourceItem::Bad(bad) => panic!("{bad:?}"),
        })
        .collect();
    let mut expected = vec![(960, 540); 6];
    expected.extend([(480, 270); 5]);
    assert_eq!(sizes, expected);

    // infer letterboxes each frame at its own size, maps boxes back to it, and starts a key
    // frame at the change.
    let out = dir.join("out.jsonl");
    let output = infer(
        &[
            "--video",
            joined.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("frame size changed 1 time(s)"), "{stderr}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 11);
    let keys: Vec<bool> = lines.iter().map(|l| l["key"].as_bool().unwrap()).collect();
    // Interval 3 from the first frame, then anew from the first small frame.
    assert_eq!(
        keys,
        [
            true, false, false, true, false, false, true, false, false, true, false
        ]
    );
    for line in &lines[6..] {
        assert_eq!(line["size"], serde_json::json!([480, 270]));
        for detection in line["detections"].as_array().unwrap() {
            let bbox = detection["bbox"].as_array().unwrap();
            let [x, y, w, h] = [0, 1, 2, 3].map(|i| bbox[i].as_f64().unwrap());
            assert!(x >= 0.0 && y >= 0.0 && x + w <= 480.01 && y + h <= 270.01);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_corrupt_video_frame_should_be_named_and_skipped_when_asked() {
    let Some((clip, dir)) = setup("corrupt") else {
        return;
    };
    let video = dir.join("clip.mp4");
    encode(&clip, 1, 24, None, &video);
    // Zeros over a stretch in the middle of the coded frames (a damaged copy).
    let mut bytes = std::fs::read(&video).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 3000].fill(0);
    let corrupt = dir.join("corrupt.mp4");
    std::fs::write(&corrupt, bytes).unwrap();

    let (items, error) = read_all(FrameSource::video(&corrupt).unwrap());
    assert!(error.is_none(), "{error:?}");
    assert_eq!(items.len(), 24, "every frame is counted, decoded or not");
    let bad: Vec<usize> = items
        .iter()
        .filter_map(|item| match item {
            SourceItem::Bad(bad) => Some(bad.index),
            SourceItem::Frame(_) => None,
        })
        .collect();
    assert!(!bad.is_empty(), "the damage must be reported");
    let first = bad[0];
    assert!(first > 1 && first < 24, "{bad:?}");

    let out = dir.join("out.jsonl");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--video",
            corrupt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        infer(&args, None)
    };
    // The default stops at the bad frame, naming it, the file and the way on.
    let failed = run(&[]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains(&format!("frame {first} of"))
            && stderr.contains("corrupt.mp4")
            && stderr.contains("--on-bad-frame skip"),
        "{stderr}"
    );
    // Skipping writes a line for each bad frame and counts them.
    let skipped = run(&["--on-bad-frame", "skip"]);
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} bad frame(s)", bad.len())),
        "{stderr}"
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 24);
    for index in &bad {
        let line = &lines[index - 1];
        assert_eq!(line["skipped"], true, "{line}");
        assert_eq!(line["index"], *index);
        assert!(
            line["error"].as_str().unwrap().contains("corrupt.mp4"),
            "{line}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_truncated_or_missing_video_should_fail_naming_it() {
    let Some((clip, dir)) = setup("truncated") else {
        return;
    };
    let video = dir.join("clip.mp4");
    encode(&clip, 1, 8, None, &video);
    let bytes = std::fs::read(&video).unwrap();
    let truncated = dir.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let out = dir.join("out.jsonl");

    let output = infer(
        &[
            "--video",
            truncated.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("truncated.mp4") && stderr.contains("ffmpeg could not read the video"),
        "{stderr}"
    );

    let missing = dir.join("nowhere.mp4");
    let output = infer(
        &[
            "--video",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("nowhere.mp4"), "{stderr}");

    // Not a video at all: a JPEG's bytes under a video's name.
    let fake = dir.join("fake.mp4");
    std::fs::write(&fake, b"this is not a video").unwrap();
    let (items, error) = read_all(FrameSource::video(&fake).unwrap());
    assert!(items.is_empty());
    let message = error.expect("an error").to_string();
    assert!(message.contains("fake.mp4"), "{message}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_machine_without_ffmpeg_should_be_told_what_to_install() {
    let Some((clip, dir)) = setup("noffmpeg") else {
        return;
    };
    let video = dir.join("clip.mp4");
    encode(&clip, 1, 2, None, &video);
    let options = VideoOptions {
        program: dir.join("no-such-ffmpeg"),
    };
    let error = FrameSource::video_with(&video, &options).unwrap_err();
    assert!(
        matches!(error, DetracError::MissingProgram { .. }),
        "{error}"
    );

    // The CLI with an empty PATH, as on a machine without the package.
    let out = dir.join("out.jsonl");
    let output = infer(
        &[
            "--video",
            video.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Some(""),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("ffmpeg")
            && stderr.contains("was not found")
            && stderr.contains("apt-get install ffmpeg")
            && stderr.contains("clip.mp4"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
