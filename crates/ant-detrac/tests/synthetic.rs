//! The synthetic generator writes a release that the real loader reads: layout, split list,
//! v3 XML, JPEGs, Dataset, Batcher and COCO export, and `synth.json`'s counts match the files.

use std::path::PathBuf;

use ant_detrac::dataset::{ClipDataset, ClipDatasetConfig, FrameDataset, FrameDatasetConfig};
use ant_detrac::{
    DetracBatcher, IgnoredRegionsAs, InputTransform, ReleaseLayout, SequenceStats, Split,
    SynthConfig, load_split, to_coco, to_coco_with, write_dataset,
};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;

#[test]
fn should_write_a_release_that_the_loader_reads() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synthetic-release");
    let _ = std::fs::remove_dir_all(&root);
    let config = SynthConfig {
        seed: 11,
        sequences: 3,
        frames: 12,
        ..SynthConfig::default()
    };
    let summary = write_dataset(&config, &root).unwrap();
    assert_eq!(summary.sequences.len(), 3);
    assert!(
        root.join("Insight-MVT_Annotation_Train/MVI_90001/img00001.jpg")
            .is_file()
    );
    assert!(
        root.join("Insight-MVT_Annotation_Test/MVI_90002/img00012.jpg")
            .is_file()
    );
    assert!(
        root.join("DETRAC-Train-Annotations-XML-v3/MVI_90001_v3.xml")
            .is_file()
    );
    assert!(
        root.join("DETRAC-Test-Annotations-XML-v3/MVI_90002_v3.xml")
            .is_file()
    );
    assert!(root.join("splits.tsv").is_file() && root.join("synth.json").is_file());

    let layout = ReleaseLayout::new(&root);
    let splits = layout.split_list().unwrap();
    assert_eq!(splits.sequences(Split::Test), ["MVI_90002"]);
    let train = load_split(&layout, Split::Train).unwrap();
    let test = load_split(&layout, Split::Test).unwrap();
    assert_eq!(train.len(), 2);
    assert_eq!(test.len(), 1);
    for sequence in train.iter().chain(&test) {
        let info = summary
            .sequences
            .iter()
            .find(|info| info.name == sequence.annotation.name)
            .unwrap();
        let stats = SequenceStats::of(&sequence.annotation);
        assert_eq!(stats.annotated_frames, info.annotated_frames);
        assert_eq!(stats.targets, info.targets);
        assert!(stats.ignored_regions >= 1);
    }

    let frames = FrameDataset::new(&train, FrameDatasetConfig::default()).unwrap();
    frames.check_images().unwrap();
    let batcher = DetracBatcher::new(InputTransform::new(320, 320));
    let items = (0..4).map(|index| frames.get(index).unwrap()).collect();
    let batch = batcher.batch(items, &Device::flex()).unwrap();
    assert_eq!(batch.images.dims(), [4, 3, 320, 320]);
    assert!(
        batch
            .targets
            .iter()
            .any(|targets| !targets.boxes.is_empty())
    );

    let clips = ClipDataset::new(&train, ClipDatasetConfig::consecutive(3)).unwrap();
    // MVI_90003 has frames 7..=9 unannotated: clips 1-3, 4-6, 10-12; MVI_90001 has four.
    assert_eq!(clips.len(), 7);

    // Streaming over the video: every image, the unannotated run of MVI_90003 included.
    let gappy = train
        .iter()
        .find(|sequence| sequence.annotation.name == "MVI_90003")
        .unwrap();
    let video = gappy.video_frames().unwrap();
    assert_eq!(video.len(), 12);
    assert_eq!(video.iter().filter(|frame| frame.annotated).count(), 9);
    assert!(video[7].targets.is_empty() && !video[7].annotated);
    let sample = ant_detrac::load_frame(&video[7], &InputTransform::new(64, 64)).unwrap();
    assert!(!sample.targets.annotated);

    let coco = to_coco(&test, &root, 1).unwrap();
    assert_eq!(coco.images.len(), 12);
    assert_eq!(
        coco.images[0].file_name,
        "Insight-MVT_Annotation_Test/MVI_90002/img00001.jpg"
    );
    assert_eq!((coco.images[0].width, coco.images[0].height), (480, 270));
    // Every frame carries its sequence's regions in the key.
    let regions = test[0].annotation.ignored_regions.len();
    assert!(regions > 0);
    let keyed = coco.ignored_regions.as_ref().unwrap();
    assert_eq!(keyed.len(), regions * coco.images.len());
    assert!(coco.annotations.iter().all(|a| a.iscrowd == 0));
    let text = coco.to_json_string();
    assert!(text.contains("\"ignored_regions\""));

    // As crowd: the same boxes, then each region once per category on each frame, no key.
    let crowd = to_coco_with(&test, &root, 1, IgnoredRegionsAs::Crowd).unwrap();
    assert!(crowd.ignored_regions.is_none());
    assert!(!crowd.to_json_string().contains("ignored_regions"));
    assert_eq!(crowd.images, coco.images);
    let (plain, crowd_boxes): (Vec<_>, Vec<_>) =
        crowd.annotations.iter().partition(|a| a.iscrowd == 0);
    assert_eq!(plain.len(), coco.annotations.len());
    assert_eq!(crowd_boxes.len(), regions * 4 * coco.images.len());
    let first_image: Vec<_> = crowd_boxes.iter().filter(|a| a.image_id == 1).collect();
    assert_eq!(first_image[0].bbox, keyed[0].bbox);
    let categories: Vec<u32> = first_image[..4].iter().map(|a| a.category_id).collect();
    assert_eq!(categories, [1, 2, 3, 4]);
    // Annotation ids stay 1..=N.
    assert!(
        crowd
            .annotations
            .iter()
            .enumerate()
            .all(|(index, a)| a.id == index as u64 + 1)
    );
}

#[test]
fn should_plug_into_burns_data_loader_for_frames_and_clips() {
    use burn::data::dataloader::DataLoaderBuilder;
    use std::sync::Arc;

    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synthetic-loader");
    let _ = std::fs::remove_dir_all(&root);
    let config = SynthConfig {
        seed: 5,
        sequences: 2,
        frames: 9,
        ..SynthConfig::default()
    };
    write_dataset(&config, &root).unwrap();
    let train = load_split(&ReleaseLayout::new(&root), Split::Train).unwrap();
    let batcher = DetracBatcher::new(InputTransform::new(128, 128));

    let frames = FrameDataset::new(&train, FrameDatasetConfig::default()).unwrap();
    let loader = DataLoaderBuilder::new(batcher)
        .batch_size(4)
        .shuffle(1)
        .set_device(Device::flex())
        .build(frames);
    let mut seen = 0;
    for batch in loader.iter() {
        // The loader's own `Result` (dataset errors), then the batcher's (decoding errors).
        let batch = batch.unwrap().unwrap();
        assert_eq!(batch.images.dims()[1..], [3, 128, 128]);
        seen += batch.targets.len();
    }
    assert_eq!(seen, 9);

    let clips = Arc::new(
        ClipDataset::new(&train, ClipDatasetConfig::consecutive(3))
            .unwrap()
            .with_color_jitter(0.3),
    );
    clips.set_epoch(1);
    // One jitter per clip: the key frame and its non-key frames look alike, as in a video.
    for index in 0..clips.len() {
        let clip = clips.get(index).unwrap();
        assert!(!clip.frames[0].jitter.is_identity());
        assert!(
            clip.frames
                .iter()
                .all(|frame| frame.jitter == clip.frames[0].jitter)
        );
    }
    let loader = DataLoaderBuilder::new(batcher)
        .batch_size(2)
        .set_device(Device::flex())
        .build(clips);
    let batches: Vec<_> = loader.iter().map(|batch| batch.unwrap().unwrap()).collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].steps.len(), 3);
    assert_eq!(batches[0].steps[0].images.dims(), [2, 3, 128, 128]);
}
