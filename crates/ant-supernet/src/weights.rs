//! Named tensors read from PyTorch (`.pth`) and SafeTensors files, handed to the layers that
//! load them with shape checks, and an account of what was used.
//!
//! effdet's checkpoints are plain PyTorch state dicts; the layers know their own keys (the
//! effdet layout, e.g. `backbone.blocks.1.0.conv_pw.weight`) and take them from a
//! [`WeightMap`]. Errors name the file and the key.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;

use crate::error::{Result, SupernetError};

/// A file's tensors as `f32`, by name.
#[derive(Debug)]
pub struct WeightMap {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    used: BTreeSet<String>,
}

fn read_error(path: &Path, reason: impl ToString) -> SupernetError {
    SupernetError::Read {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl WeightMap {
    /// Reads a PyTorch state dict (`torch.save(model.state_dict())`); a nested
    /// `state_dict` / `model` entry is looked into as well.
    pub fn from_pytorch(path: &Path) -> Result<Self> {
        use crate::pickle_scan::Refusal;
        use burn::store::pytorch_reader::{DType, PytorchReader};
        if !path.is_file() {
            return Err(read_error(path, "no such file"));
        }
        // Before any of it is read: a pickle that names globals a state dict never needs is
        // refused (see `pickle_scan`).
        match crate::pickle_scan::check_file(path) {
            Ok(()) => {}
            Err(Refusal::Global(global)) => {
                return Err(read_error(
                    path,
                    format!(
                        "refused: its pickle calls {global}, which a state dict never needs \
                         (a crafted file?); nothing was run"
                    ),
                ));
            }
            Err(Refusal::Unreadable(reason)) => {
                return Err(read_error(
                    path,
                    format!("refused: its pickle does not scan ({reason})"),
                ));
            }
        }
        let reader = PytorchReader::new(path)
            .or_else(|_| PytorchReader::with_top_level_key(path, "state_dict"))
            .or_else(|_| PytorchReader::with_top_level_key(path, "model"))
            .map_err(|error| read_error(path, format!("not a PyTorch checkpoint: {error}")))?;
        let mut tensors = HashMap::new();
        for (name, tensor) in reader.into_tensors() {
            let bytes = tensor.read().map_err(|error| read_error(path, error))?;
            let values: Vec<f32> = match tensor.dtype() {
                DType::F32 => bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                DType::F64 => bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32)
                    .collect(),
                // Integer bookkeeping such as `num_batches_tracked` carries no weights.
                DType::I64 | DType::I32 => Vec::new(),
                other => {
                    return Err(SupernetError::UnsupportedDtype {
                        path: path.to_path_buf(),
                        key: name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            tensors.insert(name, (tensor.shape().to_vec(), values));
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            used: BTreeSet::new(),
        })
    }

    /// Reads every `f32` tensor of a SafeTensors file.
    pub fn from_safetensors(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| SupernetError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|error| read_error(path, format!("not a SafeTensors file: {error}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(SupernetError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    key: name,
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            used: BTreeSet::new(),
        })
    }

    /// The file these tensors came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a tensor is present.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|(shape, _)| shape.as_slice())
    }

    /// The values of a tensor (row-major), if present; does not mark it used.
    pub fn values(&self, key: &str) -> Option<&[f32]> {
        self.tensors.get(key).map(|(_, values)| values.as_slice())
    }

    fn get(&mut self, key: &str) -> Result<&(Vec<usize>, Vec<f32>)> {
        self.used.insert(key.to_string());
        self.tensors
            .get(key)
            .ok_or_else(|| SupernetError::MissingTensor {
                path: self.path.clone(),
                key: key.to_string(),
            })
    }

    /// A tensor of exactly `expected` shape.
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<TensorData> {
        let path = self.path.clone();
        let (shape, values) = self.get(key)?;
        if shape.as_slice() != expected {
            return Err(SupernetError::ShapeMismatch {
                path,
                key: key.to_string(),
                found: shape.clone(),
                expected: expected.to_vec(),
            });
        }
        Ok(TensorData::new(values.clone(), shape.clone()))
    }

    /// The first `len` values of a 1-D tensor that has at least `len` (a private batch norm
    /// of a narrower subnet initialised from the full network's).
    pub fn take_prefix(&mut self, key: &str, len: usize) -> Result<TensorData> {
        let path = self.path.clone();
        let (shape, values) = self.get(key)?;
        if shape.len() != 1 || shape[0] < len {
            return Err(SupernetError::ShapeMismatch {
                path,
                key: key.to_string(),
                found: shape.clone(),
                expected: vec![len],
            });
        }
        Ok(TensorData::new(values[..len].to_vec(), [len]))
    }

    /// Records a key as consumed without reading it.
    pub fn mark_used(&mut self, key: &str) {
        if self.tensors.contains_key(key) {
            self.used.insert(key.to_string());
        }
    }

    /// Fails when the file holds tensors nobody took: it belongs to another model.
    pub fn finish(&self) -> Result<()> {
        let mut unused = self.tensors.keys().filter(|key| !self.used.contains(*key));
        if let Some(example) = unused.next() {
            return Err(SupernetError::UnexpectedTensors {
                path: self.path.clone(),
                count: 1 + unused.count(),
                example: example.clone(),
            });
        }
        Ok(())
    }
}
