//! Frame sources for streaming inference: a directory of images in name order, or a video
//! decoded by the system's `ffmpeg`, one frame at a time with bounded memory.
//!
//! ```no_run
//! use ant_detrac::frames::{FrameSource, SourceItem};
//!
//! # fn main() -> Result<(), ant_detrac::DetracError> {
//! for item in FrameSource::video("traffic.mp4")? {
//!     match item? {
//!         SourceItem::Frame(frame) => println!("{} {}x{}", frame.name, frame.image.width(), frame.image.height()),
//!         SourceItem::Bad(bad) => eprintln!("skipping: {}", bad.error),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Each item is either a decoded [`Frame`] or a [`BadFrame`] (a frame that did not decode,
//! named by its file or its index in the video): the caller decides whether to stop or go on.
//! An `Err` item is fatal (ffmpeg missing, not a video, ffmpeg stopped) and ends the stream.
//!
//! # Videos
//! `ffmpeg` (from `PATH`, or [`VideoOptions::program`]) decodes every frame to RGB at its own
//! size (`-autoscale 0`: a stream whose resolution changes is not rescaled to its first size);
//! a `showinfo` filter reports each frame's size on ffmpeg's log before its pixels reach the
//! pipe, so frames of any size follow each other. At most one frame is held here, plus the
//! pipe's buffer. ffmpeg's own decoder threads run beside the caller's.
//!
//! A frame that ffmpeg decodes with errors (it logs `corrupt decoded frame`: the decoder
//! concealed damaged data) comes back as a [`BadFrame`] with the decoder's messages; a frame the
//! decoder could not produce at all (`Error while decoding stream`) is a [`BadFrame`] at its
//! place in the count. Frames predicted from a damaged frame carry its damage until the
//! video's next intra frame, and ffmpeg does not flag them: only the frame where the error was
//! found is reported.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::Instant;

use image::RgbImage;

use crate::DetracError;
use crate::dataset::decode_image;

/// A decoded frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// 1-based position in the stream (bad frames count).
    pub index: usize,
    /// The file name (directory) or the zero-padded index (video).
    pub name: String,
    /// The pixels, at the frame's own size.
    pub image: RgbImage,
    /// Time spent obtaining it: reading and decoding the file, or waiting for ffmpeg's frame
    /// and reading it from the pipe.
    pub decode_ms: f64,
}

/// A frame that did not decode.
#[derive(Clone, Debug)]
pub struct BadFrame {
    /// 1-based position in the stream.
    pub index: usize,
    /// The file name (directory) or the zero-padded index (video).
    pub name: String,
    /// What went wrong, naming the file.
    pub error: DetracError,
}

/// One step of a [`FrameSource`].
#[derive(Clone, Debug)]
pub enum SourceItem {
    /// A decoded frame.
    Frame(Frame),
    /// A frame that did not decode; the stream goes on after it.
    Bad(BadFrame),
}

/// How a video is decoded.
#[derive(Clone, Debug)]
pub struct VideoOptions {
    /// The ffmpeg program (default `ffmpeg`, looked up on `PATH`).
    pub program: PathBuf,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            program: PathBuf::from("ffmpeg"),
        }
    }
}

/// Frames from a directory or a video, in stream order. See the module documentation.
#[derive(Debug)]
pub struct FrameSource {
    inner: Inner,
    next_index: usize,
}

#[derive(Debug)]
enum Inner {
    Directory { paths: VecDeque<PathBuf> },
    Video(Box<VideoReader>),
}

/// Whether `path` names a frame file (`.jpg`, `.jpeg`, `.png`, any case).
fn is_frame_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["jpg", "jpeg", "png"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

impl FrameSource {
    /// The JPEG and PNG files of `dir`, in name order.
    ///
    /// # Errors
    /// [`DetracError::Io`] when the directory cannot be listed, [`DetracError::NoFrames`] when
    /// it holds no frame file.
    pub fn directory(dir: impl AsRef<Path>) -> Result<Self, DetracError> {
        let dir = dir.as_ref();
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| DetracError::io(dir, e))? {
            let path = entry.map_err(|e| DetracError::io(dir, e))?.path();
            if is_frame_file(&path) {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(DetracError::NoFrames {
                path: dir.to_path_buf(),
                what: "no JPEG or PNG files".into(),
            });
        }
        paths.sort();
        Ok(Self {
            inner: Inner::Directory {
                paths: paths.into(),
            },
            next_index: 1,
        })
    }

    /// A video file (any container and codec ffmpeg reads), or a stream URL ffmpeg opens
    /// (`rtsp://...`), decoded by `ffmpeg` from `PATH`.
    ///
    /// # Errors
    /// [`DetracError::Io`] when the file does not exist, [`DetracError::MissingProgram`]
    /// when ffmpeg is not installed. A file ffmpeg cannot read fails at the first item.
    pub fn video(path: impl AsRef<Path>) -> Result<Self, DetracError> {
        Self::video_with(path, &VideoOptions::default())
    }

    /// [`FrameSource::video`] with options.
    ///
    /// # Errors
    /// As [`FrameSource::video`].
    pub fn video_with(path: impl AsRef<Path>, options: &VideoOptions) -> Result<Self, DetracError> {
        let reader = VideoReader::spawn(path.as_ref(), options)?;
        Ok(Self {
            inner: Inner::Video(Box::new(reader)),
            next_index: 1,
        })
    }

    /// The number of frames still to come, where known (directories).
    pub fn remaining(&self) -> Option<usize> {
        match &self.inner {
            Inner::Directory { paths } => Some(paths.len()),
            Inner::Video(_) => None,
        }
    }
}

impl Iterator for FrameSource {
    type Item = Result<SourceItem, DetracError>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.next_index;
        let item = match &mut self.inner {
            Inner::Directory { paths } => {
                let path = paths.pop_front()?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let started = Instant::now();
                Ok(match decode_image(&path) {
                    Ok(image) => SourceItem::Frame(Frame {
                        index,
                        name,
                        image,
                        decode_ms: started.elapsed().as_secs_f64() * 1e3,
                    }),
                    Err(error) => SourceItem::Bad(BadFrame { index, name, error }),
                })
            }
            Inner::Video(reader) => reader.next_item(index)?,
        };
        self.next_index += 1;
        Some(item)
    }
}

/// What the log reader thread saw on ffmpeg's standard error.
#[derive(Debug)]
enum LogEvent {
    /// A frame of this size goes to the pipe next.
    Frame { width: u32, height: u32 },
    /// The next frame was decoded with concealed errors.
    Corrupt,
    /// A frame could not be decoded at all.
    Lost,
    /// An error line (kept for messages).
    Error(String),
}

/// Parses one line of ffmpeg's log (`-loglevel level+info`).
fn parse_log_line(line: &str) -> Option<LogEvent> {
    if line.starts_with("[Parsed_showinfo") && line.contains("] [info] n:") {
        // `s:WxH` is the frame's size; `n:` restarts when a size change rebuilds the filters.
        let size = line.split_whitespace().find_map(|w| w.strip_prefix("s:"))?;
        let (width, height) = size.split_once('x')?;
        return Some(LogEvent::Frame {
            width: width.parse().ok()?,
            height: height.parse().ok()?,
        });
    }
    if line.contains("corrupt decoded frame") {
        return Some(LogEvent::Corrupt);
    }
    // ffmpeg 5/6 and 7 word the failed decode differently.
    if line.contains("Error while decoding stream") || line.contains("Decoding error:") {
        return Some(LogEvent::Lost);
    }
    if line.contains("[error]") || line.contains("[fatal]") {
        return Some(LogEvent::Error(line.to_string()));
    }
    None
}

/// Frames above this many pixels are refused rather than allocated (a 16K x 16K frame).
const MAX_PIXELS: u64 = 1 << 28;

/// How many of ffmpeg's error lines a message quotes.
const QUOTED_ERRORS: usize = 3;

/// The ffmpeg process, its log reader and the frame accounting.
#[derive(Debug)]
struct VideoReader {
    path: PathBuf,
    child: Child,
    stdout: BufReader<ChildStdout>,
    events: Receiver<LogEvent>,
    log_thread: Option<JoinHandle<()>>,
    /// Decoder errors since the last frame, quoted in bad frames' messages.
    recent_errors: VecDeque<String>,
    /// Frames the decoder lost, to be reported before the next frame.
    pending_lost: usize,
    /// Whether the next frame was flagged corrupt.
    pending_corrupt: bool,
    frames: usize,
    done: bool,
}

impl VideoReader {
    fn spawn(path: &Path, options: &VideoOptions) -> Result<Self, DetracError> {
        // A URL (`rtsp://...`, `http://...`) goes to ffmpeg as it is; a path through its
        // `file:` protocol, so that a name with a colon is not taken for a protocol.
        let is_url = path.to_str().is_some_and(|p| p.contains("://"));
        let input = if is_url {
            path.as_os_str().to_owned()
        } else {
            if !path.is_file() {
                return Err(DetracError::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                ));
            }
            let mut input = OsString::from("file:");
            input.push(path.as_os_str());
            input
        };
        let mut child = Command::new(&options.program)
            .args([
                "-hide_banner",
                "-nostdin",
                "-nostats",
                "-loglevel",
                "level+info",
                "-i",
            ])
            .arg(input)
            .args([
                "-map",
                "0:v:0",
                "-autoscale",
                "0",
                "-vf",
                "format=rgb24,showinfo",
            ])
            .args(["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    DetracError::MissingProgram {
                        program: options.program.clone(),
                        path: path.to_path_buf(),
                    }
                } else {
                    DetracError::io(&options.program, source)
                }
            })?;
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("piped stdout"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, events) = channel();
        let log_thread = std::thread::Builder::new()
            .name("ffmpeg-log".into())
            .spawn(move || {
                // Every byte is read until ffmpeg closes its end: a reader that stopped early
                // would leave ffmpeg blocked on a full pipe. Lines end in `\n` or, for
                // progress lines, `\r`; they need not be UTF-8.
                let mut stderr = BufReader::new(stderr);
                let mut line = Vec::new();
                let mut listening = true;
                while stderr.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    for part in line.split(|&b| b == b'\r') {
                        let part = String::from_utf8_lossy(part);
                        if let Some(event) = parse_log_line(part.trim_end())
                            && listening
                        {
                            listening = sender.send(event).is_ok();
                        }
                    }
                    line.clear();
                }
            })
            .map_err(|e| DetracError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            child,
            stdout,
            events,
            log_thread: Some(log_thread),
            recent_errors: VecDeque::new(),
            pending_lost: 0,
            pending_corrupt: false,
            frames: 0,
            done: false,
        })
    }

    /// The decoder's recent error lines, or `fallback`.
    fn quote_errors(&mut self, fallback: &str) -> String {
        if self.recent_errors.is_empty() {
            fallback.to_string()
        } else {
            self.recent_errors.drain(..).collect::<Vec<_>>().join("; ")
        }
    }

    fn remember_error(&mut self, line: String) {
        if self.recent_errors.len() == QUOTED_ERRORS {
            self.recent_errors.pop_front();
        }
        self.recent_errors.push_back(line);
    }

    fn bad(&mut self, index: usize, fallback: &str) -> SourceItem {
        let message = self.quote_errors(fallback);
        SourceItem::Bad(BadFrame {
            index,
            name: format!("{index:06}"),
            error: DetracError::BadVideoFrame {
                path: self.path.clone(),
                index,
                message,
            },
        })
    }

    /// Ends the stream: the process's status decides between the end and an error.
    fn finish(&mut self) -> Option<Result<SourceItem, DetracError>> {
        self.done = true;
        let status = self.child.wait();
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
        // Errors logged after the last frame.
        while let Ok(event) = self.events.try_recv() {
            if let LogEvent::Error(line) = event {
                self.remember_error(line);
            }
        }
        let failed = match status {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!("ffmpeg exited with {status}")),
            Err(error) => Some(format!("waiting for ffmpeg: {error}")),
        };
        match failed {
            Some(fallback) => {
                let message = self.quote_errors(&fallback);
                Some(Err(DetracError::Video {
                    path: self.path.clone(),
                    frames: self.frames,
                    message,
                }))
            }
            None if self.frames == 0 => Some(Err(DetracError::NoFrames {
                path: self.path.clone(),
                what: "no video frames".into(),
            })),
            None => None,
        }
    }

    fn next_item(&mut self, index: usize) -> Option<Result<SourceItem, DetracError>> {
        if self.done {
            return None;
        }
        let started = Instant::now();
        loop {
            if self.pending_lost > 0 {
                self.pending_lost -= 1;
                return Some(Ok(self.bad(index, "the decoder lost this frame")));
            }
            let Ok(event) = self.events.recv() else {
                return self.finish();
            };
            match event {
                LogEvent::Error(line) => self.remember_error(line),
                LogEvent::Corrupt => self.pending_corrupt = true,
                LogEvent::Lost => self.pending_lost += 1,
                LogEvent::Frame { width, height } => {
                    let pixels = u64::from(width) * u64::from(height);
                    if pixels == 0 || pixels > MAX_PIXELS {
                        self.done = true;
                        return Some(Err(DetracError::Video {
                            path: self.path.clone(),
                            frames: self.frames,
                            message: format!("unsupported frame size {width}x{height}"),
                        }));
                    }
                    let mut buffer = vec![0u8; pixels as usize * 3];
                    if let Err(error) = self.stdout.read_exact(&mut buffer) {
                        // The pipe ended inside a frame: ffmpeg stopped.
                        self.remember_error(format!("reading its output: {error}"));
                        let _ = self.child.kill();
                        return self.finish();
                    }
                    self.frames += 1;
                    if std::mem::take(&mut self.pending_corrupt) {
                        return Some(Ok(self.bad(index, "corrupt decoded frame")));
                    }
                    self.recent_errors.clear();
                    let image = RgbImage::from_raw(width, height, buffer)
                        .expect("buffer sized for the frame");
                    return Some(Ok(SourceItem::Frame(Frame {
                        index,
                        name: format!("{index:06}"),
                        image,
                        decode_ms: started.elapsed().as_secs_f64() * 1e3,
                    })));
                }
            }
        }
    }
}

impl Drop for VideoReader {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showinfo_lines_give_the_frame_size() {
        let line = "[Parsed_showinfo_1 @ 0x55] [info] n:   9 pts:  27000 pts_time:0.3 pos: \
                    169012 fmt:rgb24 sar:1/1 s:480x270 i:P iskey:0 type:P checksum:F1C0FBB9";
        assert!(matches!(
            parse_log_line(line),
            Some(LogEvent::Frame {
                width: 480,
                height: 270
            })
        ));
        let config = "[Parsed_showinfo_1 @ 0x55] [info] config in time_base: 1/90000";
        assert!(parse_log_line(config).is_none());
    }

    #[test]
    fn decoder_trouble_is_classified() {
        assert!(matches!(
            parse_log_line("[warning] a.mp4: corrupt decoded frame in stream 0"),
            Some(LogEvent::Corrupt)
        ));
        assert!(matches!(
            parse_log_line("[error] Error while decoding stream #0:0: Invalid data found"),
            Some(LogEvent::Lost)
        ));
        assert!(matches!(
            parse_log_line("[h264 @ 0x1] [error] error while decoding MB 5 4"),
            Some(LogEvent::Error(_))
        ));
        // Demuxer warnings at a segment boundary are not bad frames.
        assert!(parse_log_line("[mpegts @ 0x1] [warning] Packet corrupt (stream = 0)").is_none());
    }
}
