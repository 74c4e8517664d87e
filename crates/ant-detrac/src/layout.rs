//! The on-disk layout of a UA-DETRAC release, and of the flat layout of small samples.
//!
//! Release layout (as downloaded from the benchmark site):
//!
//! ```text
//! ROOT/Insight-MVT_Annotation_Train/MVI_20011/img00001.jpg
//! ROOT/Insight-MVT_Annotation_Test/MVI_39031/img00001.jpg
//! ROOT/DETRAC-Train-Annotations-XML/MVI_20011.xml          (v1 schema)
//! ROOT/DETRAC-Train-Annotations-XML-v3/MVI_20011_v3.xml    (v3 schema)
//! ROOT/DETRAC-Test-Annotations-XML[-v3]/...
//! ROOT/splits.tsv                                           (optional: overrides the official split)
//! ```
//!
//! Flat layout (the shared test sample): `ROOT/MVI_20011/img00001.jpg` next to
//! `ROOT/MVI_20011_v3.xml` or `ROOT/MVI_20011.xml`. v3 annotations are preferred over v1
//! unless asked otherwise.

use std::path::PathBuf;

use crate::annotation::Schema;
use crate::error::DetracError;
use crate::split::{Split, SplitList};

/// The image directory name of a split in a release.
pub fn image_dir_name(split: Split) -> &'static str {
    match split {
        Split::Train => "Insight-MVT_Annotation_Train",
        Split::Test => "Insight-MVT_Annotation_Test",
    }
}

/// The annotation directory name of a split and schema in a release.
pub fn annotation_dir_name(split: Split, schema: Schema) -> &'static str {
    match (split, schema) {
        (Split::Train, Schema::V1) => "DETRAC-Train-Annotations-XML",
        (Split::Train, Schema::V3) => "DETRAC-Train-Annotations-XML-v3",
        (Split::Test, Schema::V1) => "DETRAC-Test-Annotations-XML",
        (Split::Test, Schema::V3) => "DETRAC-Test-Annotations-XML-v3",
    }
}

/// The annotation file name of a sequence in a schema (`MVI_20011.xml`, `MVI_20011_v3.xml`).
pub fn annotation_file_name(sequence: &str, schema: Schema) -> String {
    match schema {
        Schema::V1 => format!("{sequence}.xml"),
        Schema::V3 => format!("{sequence}_v3.xml"),
    }
}

/// The image file name of a frame: `img%05d.jpg`, `num` 1-based.
pub fn image_file_name(num: u32) -> String {
    format!("img{num:05}.jpg")
}

/// Where the files of one sequence are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencePaths {
    /// The sequence name.
    pub name: String,
    /// The annotation file found.
    pub annotation: PathBuf,
    /// The directory of its `img%05d.jpg` frames.
    pub image_dir: PathBuf,
}

impl SequencePaths {
    /// The image of frame `num`.
    pub fn image_path(&self, num: u32) -> PathBuf {
        self.image_dir.join(image_file_name(num))
    }
}

/// A release (or flat sample) directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseLayout {
    /// The root directory.
    pub root: PathBuf,
    /// The schema to prefer when both annotation files exist.
    pub prefer: Schema,
}

impl ReleaseLayout {
    /// A release at `root`, preferring v3 annotations.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            prefer: Schema::V3,
        }
    }

    /// The same release preferring the given schema.
    pub fn preferring(mut self, schema: Schema) -> Self {
        self.prefer = schema;
        self
    }

    fn schemas(&self) -> [Schema; 2] {
        match self.prefer {
            Schema::V3 => [Schema::V3, Schema::V1],
            Schema::V1 => [Schema::V1, Schema::V3],
        }
    }

    /// The annotation files tried for a sequence, in order of preference.
    pub fn annotation_candidates(&self, sequence: &str) -> Vec<PathBuf> {
        let mut candidates = Vec::new();
        for schema in self.schemas() {
            for split in [Split::Train, Split::Test] {
                candidates.push(
                    self.root
                        .join(annotation_dir_name(split, schema))
                        .join(annotation_file_name(sequence, schema)),
                );
            }
            candidates.push(self.root.join(annotation_file_name(sequence, schema)));
        }
        candidates
    }

    /// Finds the annotation file and image directory of a sequence.
    pub fn locate(&self, sequence: &str) -> Result<SequencePaths, DetracError> {
        let candidates = self.annotation_candidates(sequence);
        let annotation = candidates
            .iter()
            .find(|candidate| candidate.is_file())
            .cloned()
            .ok_or_else(|| DetracError::MissingAnnotation {
                root: self.root.clone(),
                sequence: sequence.to_string(),
                looked_for: candidates
                    .iter()
                    .map(|candidate| candidate.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(SequencePaths {
            name: sequence.to_string(),
            annotation,
            image_dir: self.image_dir(sequence),
        })
    }

    /// The image directory of a sequence: the release's Train or Test folder where it exists,
    /// otherwise the flat `ROOT/MVI_xxxxx`.
    pub fn image_dir(&self, sequence: &str) -> PathBuf {
        for split in [Split::Train, Split::Test] {
            let dir = self.root.join(image_dir_name(split)).join(sequence);
            if dir.is_dir() {
                return dir;
            }
        }
        self.root.join(sequence)
    }

    /// The split list of this release: `ROOT/splits.tsv` if present, else the official one.
    pub fn split_list(&self) -> Result<SplitList, DetracError> {
        let path = self.root.join("splits.tsv");
        if path.is_file() {
            SplitList::from_file(&path)
        } else {
            Ok(SplitList::official())
        }
    }

    /// Every sequence that has an annotation file in this release, sorted by name.
    pub fn sequences(&self) -> Result<Vec<SequencePaths>, DetracError> {
        let mut names = std::collections::BTreeSet::new();
        let mut dirs = vec![self.root.clone()];
        for schema in [Schema::V3, Schema::V1] {
            for split in [Split::Train, Split::Test] {
                dirs.push(self.root.join(annotation_dir_name(split, schema)));
            }
        }
        for dir in dirs {
            if !dir.is_dir() {
                continue;
            }
            let listing =
                std::fs::read_dir(&dir).map_err(|source| DetracError::io(&dir, source))?;
            for entry in listing {
                let entry = entry.map_err(|source| DetracError::io(&dir, source))?;
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else {
                    continue;
                };
                if let Some(stem) = file_name.strip_suffix(".xml") {
                    let name = stem.strip_suffix("_v3").unwrap_or(stem);
                    if name.starts_with("MVI_") {
                        names.insert(name.to_string());
                    }
                }
            }
        }
        names.iter().map(|name| self.locate(name)).collect()
    }

    /// The sequences of one split that are present in this release, in split-list order.
    pub fn split_sequences(&self, split: Split) -> Result<Vec<SequencePaths>, DetracError> {
        let present = self.sequences()?;
        let list = self.split_list()?;
        Ok(list
            .sequences(split)
            .into_iter()
            .filter_map(|name| present.iter().find(|paths| paths.name == name).cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_name_files_like_the_release() {
        assert_eq!(image_file_name(1), "img00001.jpg");
        assert_eq!(image_file_name(786), "img00786.jpg");
        assert_eq!(
            annotation_file_name("MVI_20011", Schema::V3),
            "MVI_20011_v3.xml"
        );
        assert_eq!(
            annotation_file_name("MVI_20011", Schema::V1),
            "MVI_20011.xml"
        );
        assert_eq!(
            annotation_dir_name(Split::Train, Schema::V3),
            "DETRAC-Train-Annotations-XML-v3"
        );
    }

    #[test]
    fn should_list_every_candidate_when_an_annotation_is_missing() {
        let layout = ReleaseLayout::new("/nonexistent-release");
        let error = layout.locate("MVI_1").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("MVI_1_v3.xml") && message.contains("MVI_1.xml"),
            "{message}"
        );
    }
}
