//! The official UA-DETRAC train/test split (60 training and 40 test sequences, the split of the
//! benchmark and of the ANT paper, Sec. 4), committed as data in `datasets/splits.tsv`.
//!
//! Format: `#` comment lines, a header `split sequence image_frames camera_state
//! sence_weather`, then one tab-separated line per sequence. The synthetic generator writes the
//! same format next to its output, so a synthetic release is split the same way.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::DetracError;

/// The official split list, compiled in.
pub const OFFICIAL_SPLITS_TSV: &str = include_str!("../../../datasets/splits.tsv");

/// The header line of a split list.
pub const SPLITS_HEADER: &str = "split\tsequence\timage_frames\tcamera_state\tsence_weather";

/// Training or test part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The 60 training sequences.
    Train,
    /// The 40 test sequences.
    Test,
}

impl Split {
    /// `train` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }

    /// Parses `train` or `test`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "train" => Some(Self::Train),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One sequence of the split list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitEntry {
    /// Train or test.
    pub split: Split,
    /// Sequence name, e.g. `MVI_20011`.
    pub sequence: String,
    /// Number of images of the sequence (annotated or not).
    pub image_frames: u32,
    /// `stable` or `unstable`.
    pub camera_state: String,
    /// `sunny`, `cloudy`, `rainy` or `night`.
    pub weather: String,
}

/// A parsed split list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitList {
    /// The sequences in file order.
    pub entries: Vec<SplitEntry>,
}

impl SplitList {
    /// The official UA-DETRAC split (60 train / 40 test).
    pub fn official() -> Self {
        Self::parse(OFFICIAL_SPLITS_TSV, "built-in datasets/splits.tsv")
            .expect("the committed datasets/splits.tsv parses")
    }

    /// Reads a split list file.
    pub fn from_file(path: &Path) -> Result<Self, DetracError> {
        let text = std::fs::read_to_string(path).map_err(|source| DetracError::io(path, source))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a split list; `source_name` appears in error messages.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, DetracError> {
        let bad = |line: usize, reason: String| DetracError::BadSplitLine {
            source_name: source_name.to_string(),
            line: line as u32 + 1,
            reason,
        };
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') || line == SPLITS_HEADER {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != 5 {
                return Err(bad(
                    index,
                    format!("expected 5 tab-separated fields, found {}", fields.len()),
                ));
            }
            let split = Split::parse(fields[0])
                .ok_or_else(|| bad(index, format!("split `{}` is not train or test", fields[0])))?;
            let image_frames = fields[2].parse().map_err(|_| {
                bad(
                    index,
                    format!("image_frames `{}` is not a count", fields[2]),
                )
            })?;
            if entries
                .iter()
                .any(|entry: &SplitEntry| entry.sequence == fields[1])
            {
                return Err(bad(index, format!("sequence {} listed twice", fields[1])));
            }
            entries.push(SplitEntry {
                split,
                sequence: fields[1].to_string(),
                image_frames,
                camera_state: fields[3].to_string(),
                weather: fields[4].to_string(),
            });
        }
        Ok(Self { entries })
    }

    /// Writes the list in the official format (header included), with a comment line.
    pub fn to_tsv(&self, comment: &str) -> String {
        let mut out = format!("# {comment}\n{SPLITS_HEADER}\n");
        for entry in &self.entries {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                entry.split, entry.sequence, entry.image_frames, entry.camera_state, entry.weather
            ));
        }
        out
    }

    /// The sequence names of one split, in file order.
    pub fn sequences(&self, split: Split) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|entry| entry.split == split)
            .map(|entry| entry.sequence.as_str())
            .collect()
    }

    /// The split a sequence belongs to.
    pub fn split_of(&self, sequence: &str) -> Option<Split> {
        self.entries
            .iter()
            .find(|entry| entry.sequence == sequence)
            .map(|entry| entry.split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_hold_the_official_60_40_split() {
        let list = SplitList::official();
        assert_eq!(list.entries.len(), 100);
        assert_eq!(list.sequences(Split::Train).len(), 60);
        assert_eq!(list.sequences(Split::Test).len(), 40);
        assert_eq!(list.split_of("MVI_20011"), Some(Split::Train));
        assert_eq!(list.split_of("MVI_39811"), Some(Split::Train));
        assert_eq!(list.split_of("MVI_99999"), None);
    }

    #[test]
    fn should_round_trip_through_tsv() {
        let list = SplitList::official();
        let text = list.to_tsv("copy");
        assert_eq!(SplitList::parse(&text, "copy").unwrap(), list);
    }

    #[test]
    fn should_name_the_line_of_a_bad_entry() {
        let text = format!(
            "{SPLITS_HEADER}\ntrain\tMVI_1\t10\tstable\tsunny\nvalid\tMVI_2\t5\tstable\tsunny\n"
        );
        let error = SplitList::parse(&text, "mine.tsv").unwrap_err();
        assert!(error.to_string().starts_with("mine.tsv:3:"), "{error}");
        let short = "train\tMVI_1\n";
        assert!(SplitList::parse(short, "short.tsv").is_err());
        let count = "train\tMVI_1\tmany\tstable\tsunny\n";
        assert!(SplitList::parse(count, "count.tsv").is_err());
    }
}
