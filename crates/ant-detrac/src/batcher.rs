//! The Burn `Batcher`: decodes the JPEGs of a batch in parallel (rayon), letterboxes and
//! normalises them, and stacks them into one `[B, 3, H, W]` tensor on the requested device.
//!
//! Decoding can fail (a missing or corrupt JPEG), and Burn's `Batcher::batch` has no error
//! channel, so the batch type is `Result<_, DetracError>`: the training loop decides. Through
//! Burn's `DataLoader` (whose iterator yields `Result<O, DatasetError>`) an item is therefore
//! `Result<Result<DetectionBatch, DetracError>, DatasetError>`; our datasets never fail `get`.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::dataset::{ClipRef, FrameRef, FrameSample, FrameTargets, load_frame};
use crate::error::DetracError;
use crate::transform::InputTransform;

/// A batch of frames.
#[derive(Debug, Clone)]
pub struct DetectionBatch {
    /// The normalised images.
    ///
    /// # Shapes
    /// `[batch_size, 3, input_height, input_width]`
    pub images: Tensor<4>,
    /// The ground truth of each image, in input pixels, in batch order.
    pub targets: Vec<FrameTargets>,
}

/// A batch of clips, one [`DetectionBatch`] per time step.
#[derive(Debug, Clone)]
pub struct ClipBatch {
    /// `steps[0]` holds the key frames of the clips, `steps[t]` the `t`-th non-key frames;
    /// every step has the same `batch_size` (the number of clips).
    pub steps: Vec<DetectionBatch>,
}

/// Decodes and stacks UA-DETRAC frames for a model input size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetracBatcher {
    /// The resize/normalisation applied to every frame.
    pub transform: InputTransform,
}

impl DetracBatcher {
    /// A batcher for the given input transform.
    pub fn new(transform: InputTransform) -> Self {
        Self { transform }
    }

    /// Decodes frames in parallel, keeping their order.
    pub fn load_all(&self, items: &[FrameRef]) -> Result<Vec<FrameSample>, DetracError> {
        items
            .par_iter()
            .map(|item| load_frame(item, &self.transform))
            .collect()
    }

    /// Stacks decoded samples into a batch tensor.
    pub fn stack(&self, samples: Vec<FrameSample>, device: &Device) -> DetectionBatch {
        let batch_size = samples.len();
        let (height, width) = (
            self.transform.input_height as usize,
            self.transform.input_width as usize,
        );
        let mut values = Vec::with_capacity(batch_size * 3 * height * width);
        let mut targets = Vec::with_capacity(batch_size);
        for sample in samples {
            assert_eq!(
                sample.image.len(),
                3 * height * width,
                "every sample of a batch has the batcher's input size"
            );
            values.extend_from_slice(&sample.image);
            targets.push(sample.targets);
        }
        let data = TensorData::new(values, [batch_size, 3, height, width]);
        DetectionBatch {
            images: Tensor::<4>::from_data(data, device),
            targets,
        }
    }
}

impl Batcher<FrameRef, Result<DetectionBatch, DetracError>> for DetracBatcher {
    fn batch(&self, items: Vec<FrameRef>, device: &Device) -> Result<DetectionBatch, DetracError> {
        let samples = self.load_all(&items)?;
        Ok(self.stack(samples, device))
    }
}

impl Batcher<ClipRef, Result<ClipBatch, DetracError>> for DetracBatcher {
    fn batch(&self, items: Vec<ClipRef>, device: &Device) -> Result<ClipBatch, DetracError> {
        let clip_len = items.first().map_or(0, |clip| clip.frames.len());
        assert!(
            items.iter().all(|clip| clip.frames.len() == clip_len),
            "every clip of a batch has the same length"
        );
        // Decode all frames of all clips at once, then regroup by time step.
        let flat: Vec<FrameRef> = (0..clip_len)
            .flat_map(|step| items.iter().map(move |clip| clip.frames[step].clone()))
            .collect();
        let mut samples = self.load_all(&flat)?.into_iter();
        let steps = (0..clip_len)
            .map(|_| {
                let step: Vec<FrameSample> = samples.by_ref().take(items.len()).collect();
                self.stack(step, device)
            })
            .collect();
        Ok(ClipBatch { steps })
    }
}
