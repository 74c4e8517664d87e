//! Says where the tests look for the shared data and which of its sets are there:
//! `cargo run -p ant-fixtures --example locate`. Run it when a test skips or fails for a
//! missing file.

fn main() {
    let dir = ant_fixtures::shared_dir();
    println!("shared data directory: {}", dir.display());
    for (set, what) in [
        ("paper/ANT.md", "the paper"),
        (
            "data/detrac-sample",
            "real UA-DETRAC frames with ground truth",
        ),
        ("data/detrac-clip/clip252", "a real 252-frame clip"),
        (
            "fixtures/effdet-d0",
            "effdet checkpoint and reference outputs",
        ),
        ("fixtures/coco-eval", "pycocotools' answers"),
    ] {
        let present = dir.join(set).exists();
        println!(
            "  {:<28} {:<8} {what}",
            set,
            if present { "present" } else { "MISSING" }
        );
    }
}
