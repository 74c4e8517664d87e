//! Every kind of bad input gives a `DetracError` naming the file (and line or frame), never a
//! panic: malformed or truncated XML, a missing attribute, a missing or corrupt JPEG, an empty
//! sequence, a missing annotation file.

use std::path::{Path, PathBuf};

use ant_detrac::dataset::{FrameDataset, FrameDatasetConfig};
use ant_detrac::{
    DetracBatcher, DetracError, InputTransform, LoadedSequence, ReleaseLayout, SequenceAnnotation,
    SynthConfig, write_dataset,
};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;

/// A fresh one-sequence synthetic release under the test's temporary directory.
fn release(name: &str) -> (PathBuf, LoadedSequence) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bad-input-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let config = SynthConfig {
        seed: 3,
        sequences: 1,
        frames: 4,
        ..SynthConfig::default()
    };
    write_dataset(&config, &root).unwrap();
    let sequence = LoadedSequence::load(&ReleaseLayout::new(&root), "MVI_90001").unwrap();
    (root, sequence)
}

fn first_batch(sequence: &LoadedSequence) -> Result<ant_detrac::DetectionBatch, DetracError> {
    let dataset = FrameDataset::new(
        std::slice::from_ref(sequence),
        FrameDatasetConfig::default(),
    )
    .unwrap();
    let items = (0..dataset.len())
        .map(|index| dataset.get(index).unwrap())
        .collect();
    DetracBatcher::new(InputTransform::new(128, 128)).batch(items, &Device::flex())
}

#[test]
fn should_name_file_and_frame_of_a_missing_jpeg() {
    let (_root, sequence) = release("missing-jpeg");
    let image = sequence.paths.image_path(3);
    std::fs::remove_file(&image).unwrap();
    let error = first_batch(&sequence).unwrap_err();
    match &error {
        DetracError::MissingImage {
            path,
            frame,
            sequence,
        } => {
            assert_eq!(path, &image);
            assert_eq!(*frame, 3);
            assert_eq!(sequence, "MVI_90001");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(error.to_string().contains("img00003.jpg"), "{error}");
    let dataset = FrameDataset::new(
        std::slice::from_ref(&sequence),
        FrameDatasetConfig::default(),
    )
    .unwrap();
    assert!(matches!(
        dataset.check_images(),
        Err(DetracError::MissingImage { frame: 3, .. })
    ));
}

#[test]
fn should_name_the_file_of_a_corrupt_or_truncated_jpeg() {
    let (_root, sequence) = release("corrupt-jpeg");
    let garbage = sequence.paths.image_path(2);
    std::fs::write(&garbage, b"this is not a jpeg").unwrap();
    let error = first_batch(&sequence).unwrap_err();
    assert!(
        matches!(&error, DetracError::Image { path, .. } if path == &garbage),
        "{error}"
    );
    assert!(error.to_string().contains("img00002.jpg"), "{error}");

    let (_root, sequence) = release("truncated-jpeg");
    let truncated = sequence.paths.image_path(4);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let error = first_batch(&sequence).unwrap_err();
    assert!(
        matches!(&error, DetracError::TruncatedJpeg { path } if path == &truncated),
        "{error}"
    );
    assert!(error.to_string().contains("img00004.jpg"), "{error}");
}

fn rewrite(path: &Path, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, edit(&text)).unwrap();
}

#[test]
fn should_name_file_and_line_of_truncated_xml() {
    let (_root, sequence) = release("truncated-xml");
    let xml = sequence.paths.annotation.clone();
    rewrite(&xml, |text| text[..text.len() * 2 / 3].to_string());
    let error = SequenceAnnotation::from_file(&xml).unwrap_err();
    assert!(
        matches!(&error, DetracError::MalformedXml { path, line, .. } if path == &xml && *line > 1),
        "{error}"
    );
    assert!(error.to_string().contains("MVI_90001_v3.xml:"), "{error}");
}

#[test]
fn should_name_file_line_and_frame_of_a_missing_attribute() {
    let (_root, sequence) = release("missing-attribute");
    let xml = sequence.paths.annotation.clone();
    // Drop the first truncation_ratio of frame 2.
    rewrite(&xml, |text| {
        let frame_two = text.find("num=\"2\"").unwrap();
        let (head, tail) = text.split_at(frame_two);
        let at = tail.find(" truncation_ratio=\"").unwrap();
        let end = at + tail[at + 1..].find("\" ").unwrap() + 2;
        format!("{head}{}{}", &tail[..at], &tail[end..])
    });
    let error = SequenceAnnotation::from_file(&xml).unwrap_err();
    match &error {
        DetracError::MissingAttribute {
            path,
            frame,
            name,
            line,
            ..
        } => {
            assert_eq!(path, &xml);
            assert_eq!(*frame, Some(2));
            assert_eq!(*name, "truncation_ratio");
            assert!(*line > 2);
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn should_reject_an_empty_sequence_naming_the_file() {
    let (_root, sequence) = release("empty-sequence");
    let xml = sequence.paths.annotation.clone();
    rewrite(&xml, |text| {
        let first_frame = text.find("   <frame ").unwrap();
        format!("{}</sequence>", &text[..first_frame])
    });
    let error = SequenceAnnotation::from_file(&xml).unwrap_err();
    assert!(
        matches!(&error, DetracError::EmptySequence { path, sequence } if path == &xml && sequence == "MVI_90001"),
        "{error}"
    );
}

#[test]
fn should_name_the_candidates_of_a_missing_annotation_file() {
    let (root, _sequence) = release("missing-annotation");
    let error = LoadedSequence::load(&ReleaseLayout::new(&root), "MVI_12345").unwrap_err();
    assert!(matches!(error, DetracError::MissingAnnotation { .. }));
    assert!(error.to_string().contains("MVI_12345_v3.xml"), "{error}");
}

#[test]
fn should_reject_an_empty_directory_of_xml_as_malformed_not_panic() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-input-empty-file");
    std::fs::create_dir_all(&root).unwrap();
    let xml = root.join("MVI_1_v3.xml");
    std::fs::write(&xml, "").unwrap();
    let error = SequenceAnnotation::from_file(&xml).unwrap_err();
    assert!(matches!(error, DetracError::MalformedXml { .. }), "{error}");
}
