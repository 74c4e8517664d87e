//! The one error type of `ant-detrac`: every failure names the file it came from and, where it
//! can, the line and the frame number, so a broken release can be fixed by hand.
//!
//! Bad input (malformed or truncated XML, a missing attribute, a missing or corrupt JPEG, an
//! empty sequence) always ends here and never in a panic.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong while reading, writing or transforming UA-DETRAC data.
///
/// It is `Clone` (sources behind `Arc`) because Burn's data loader requires its batch type,
/// here `Result<_, DetracError>`, to be `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DetracError {
    /// A file could not be read, written or listed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        source: Arc<std::io::Error>,
    },
    /// The annotation file is not well-formed XML (for example, truncated).
    #[error("{path}:{line}:{column}: malformed XML: {message}")]
    MalformedXml {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the error.
        line: u32,
        /// 1-based column of the error.
        column: u32,
        /// What the XML parser reported.
        message: String,
    },
    /// The root element is not `<sequence>`.
    #[error("{path}:{line}: expected root element <sequence>, found <{found}>")]
    UnexpectedRoot {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the root element.
        line: u32,
        /// The name of the root element found.
        found: String,
    },
    /// A required child element is absent.
    #[error("{path}:{line}: <{parent}>{} has no <{element}>", frame_suffix(*.frame))]
    MissingElement {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the parent element.
        line: u32,
        /// The frame number (`num`) the parent belongs to, if any.
        frame: Option<u32>,
        /// The parent element name.
        parent: String,
        /// The missing child element name.
        element: &'static str,
    },
    /// A required attribute is absent.
    #[error("{path}:{line}: <{element}>{} is missing attribute `{name}`", frame_suffix(*.frame))]
    MissingAttribute {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the element.
        line: u32,
        /// The frame number (`num`) the element belongs to, if any.
        frame: Option<u32>,
        /// The element name.
        element: String,
        /// The missing attribute name.
        name: &'static str,
    },
    /// An attribute is present but its value cannot be used (not a number, negative size, ...).
    #[error(
        "{path}:{line}: <{element}>{} has invalid `{name}`=\"{value}\": {reason}",
        frame_suffix(*.frame)
    )]
    InvalidAttribute {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the element.
        line: u32,
        /// The frame number (`num`) the element belongs to, if any.
        frame: Option<u32>,
        /// The element name.
        element: String,
        /// The attribute name.
        name: &'static str,
        /// The raw attribute value.
        value: String,
        /// Why the value was rejected.
        reason: &'static str,
    },
    /// A `vehicle_type` that is in neither the v1 nor the v3 vocabulary.
    #[error("{path}:{line}: frame {frame}: unknown vehicle_type \"{value}\"")]
    UnknownVehicleType {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the `<attribute>` element.
        line: u32,
        /// The frame number.
        frame: u32,
        /// The raw value.
        value: String,
    },
    /// The same frame number appears twice.
    #[error("{path}:{line}: frame {frame} is annotated twice")]
    DuplicateFrame {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the second `<frame>`.
        line: u32,
        /// The frame number.
        frame: u32,
    },
    /// The annotation file has no `<frame>` at all.
    #[error("{path}: sequence {sequence} has no annotated frame")]
    EmptySequence {
        /// The annotation file.
        path: PathBuf,
        /// The sequence name.
        sequence: String,
    },
    /// The image of an annotated frame is not on disk.
    #[error("{path}: image of frame {frame} of sequence {sequence} is missing")]
    MissingImage {
        /// The expected image path.
        path: PathBuf,
        /// The sequence name.
        sequence: String,
        /// The frame number.
        frame: u32,
    },
    /// An image exists but cannot be decoded (corrupt or truncated JPEG) or encoded.
    #[error("{path}: cannot decode or encode image: {source}")]
    Image {
        /// The image path.
        path: PathBuf,
        /// What the image codec reported.
        source: Arc<image::ImageError>,
    },
    /// A JPEG that does not end with the end-of-image marker: cut short on disk (decoders would
    /// silently fill the missing part with grey).
    #[error("{path}: truncated JPEG (no end-of-image marker)")]
    TruncatedJpeg {
        /// The image path.
        path: PathBuf,
    },
    /// A directory or video without a single frame.
    #[error("{path}: {what}")]
    NoFrames {
        /// The directory or video.
        path: PathBuf,
        /// What was looked for.
        what: String,
    },
    /// An external program a source needs is not installed.
    #[error(
        "{path}: reading it needs `{program}`, which was not found; install it (Debian and \
         Ubuntu: apt-get install ffmpeg) or give its path (`infer --ffmpeg PATH`)",
        program = program.display()
    )]
    MissingProgram {
        /// The program looked for.
        program: PathBuf,
        /// The file that needs it.
        path: PathBuf,
    },
    /// ffmpeg could not read a video, or stopped before its end.
    #[error("{path}: ffmpeg could not read the video after {frames} frame(s): {message}")]
    Video {
        /// The video.
        path: PathBuf,
        /// Frames read before the failure.
        frames: usize,
        /// ffmpeg's last error lines.
        message: String,
    },
    /// A frame of a video that decoded with errors, or not at all.
    #[error("{path}: frame {index} did not decode cleanly: {message}")]
    BadVideoFrame {
        /// The video.
        path: PathBuf,
        /// 1-based position of the frame in the stream.
        index: usize,
        /// The decoder's messages.
        message: String,
    },
    /// No annotation file for a sequence in a release directory.
    #[error("{root}: no annotation file for sequence {sequence} (looked for {looked_for})")]
    MissingAnnotation {
        /// The release root.
        root: PathBuf,
        /// The sequence name.
        sequence: String,
        /// The file names tried.
        looked_for: String,
    },
    /// A line of a split list cannot be parsed.
    #[error("{source_name}:{line}: bad split line: {reason}")]
    BadSplitLine {
        /// Where the split list came from (a path or `built-in`).
        source_name: String,
        /// 1-based line number.
        line: u32,
        /// What is wrong with it.
        reason: String,
    },
    /// A dataset or clip configuration cannot produce any sample.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
}

/// Formats `" (frame N)"` for messages about elements inside a frame.
fn frame_suffix(frame: Option<u32>) -> String {
    match frame {
        Some(frame) => format!(" (frame {frame})"),
        None => String::new(),
    }
}

impl DetracError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Wraps an image codec error with the path it concerns.
    pub fn image(path: impl Into<PathBuf>, source: image::ImageError) -> Self {
        Self::Image {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
