//! The test pass: decoded frames stream through every method, interleaved chunk by chunk, so
//! a change of machine load hits all of them alike.

use std::time::Instant;

use ant_detrac::{InputTransform, LoadedSequence, load_frame};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::Result;
use crate::methods::MethodRun;
use crate::subnet::EvalGroundTruth;

/// Frames decoded at a time before every method runs on them.
const CHUNK_FRAMES: usize = 16;

/// Streams `sequences` through every method, interleaved chunk by chunk; returns the
/// per-frame decoding milliseconds. With `scored_only`, only the frames that are scored run
/// (for static subnets, which keep no state between frames).
pub(crate) fn stream_pass(
    runs: &mut [MethodRun],
    sequences: &[LoadedSequence],
    ground_truth: &EvalGroundTruth,
    image_size: usize,
    warmup_frames: usize,
    scored_only: bool,
    device: &Device,
) -> Result<Vec<f64>> {
    let transform = InputTransform::new(image_size as u32, image_size as u32);
    let to_tensor = |image: Vec<f32>| {
        Tensor::<4>::from_data(
            TensorData::new(image, [1, 3, image_size, image_size]),
            device,
        )
    };
    if warmup_frames > 0
        && let Some(first) = sequences.first()
    {
        for frame in first.video_frames()?.iter().take(warmup_frames) {
            let image = to_tensor(load_frame(frame, &transform)?.image);
            for run in runs.iter_mut() {
                run.detector.process(image.clone())?;
            }
        }
    }
    let mut decode_ms = Vec::new();
    let mut rotation = 0;
    for sequence in sequences {
        for run in runs.iter_mut() {
            run.detector.reset();
        }
        let mut frames = sequence.video_frames()?;
        let image_id = |frame: &ant_detrac::FrameRef| {
            ground_truth
                .image_ids
                .get(&(frame.sequence.to_string(), frame.frame))
                .copied()
        };
        if scored_only {
            frames.retain(|frame| image_id(frame).is_some());
        }
        for chunk in frames.chunks(CHUNK_FRAMES) {
            let mut decoded = Vec::with_capacity(chunk.len());
            for frame in chunk {
                let started = Instant::now();
                let sample = load_frame(frame, &transform)?;
                decode_ms.push(started.elapsed().as_secs_f64() * 1e3);
                decoded.push((
                    image_id(frame),
                    sample.targets.letterbox,
                    to_tensor(sample.image),
                ));
            }
            // Each chunk starts with the next method: the first method after decoding meets
            // caches the decoder filled, and always putting static-full (the speedups'
            // denominator) there measured it 0.3-0.4 ms slower than the same network with
            // the supernet's weights.
            let count = runs.len();
            for offset in 0..count {
                let run = &mut runs[(offset + rotation) % count];
                for (image_id, letterbox, image) in &decoded {
                    let result = run.detector.process(image.clone())?;
                    run.record(result, *image_id, letterbox);
                }
            }
            rotation += 1;
        }
    }
    Ok(decode_ms)
}
