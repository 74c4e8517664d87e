//! Typed UA-DETRAC annotations: parsing both XML schemas (original v1 and v3) and writing v3.
//!
//! The format (see `datasets/README.md`): the root `<sequence name>` holds one
//! `<sequence_attribute camera_state sence_weather>` (the misspelling "sence" is official), one
//! `<ignored_region>` with 0..n `<box left top width height>`, then `<frame density num>`
//! elements, each with a `<target_list>` of `<target id>`; a target has a `<box>`, an
//! `<attribute orientation speed trajectory_length truncation_ratio vehicle_type [color]>` and,
//! in v3, an optional `<occlusion>` with `<region_overlap left top width height occlusion_id
//! occlusion_status>` children. `num` is 1-based and names `img%05d.jpg`.
//!
//! Frames that have no `<frame>` element are *unannotated* (UA-DETRAC annotates a subset of the
//! frames of some sequences): they are absent from [`SequenceAnnotation::frames`] and must never
//! be used as empty negatives. Every attribute of the files is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ant_geom::BoxXyxy;
use roxmltree::{Document, Node};

use crate::classes::{VehicleClass, VehicleType};
use crate::error::DetracError;

/// Which of the two annotation schemas a file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The original release: lowercase `vehicle_type` in {car, bus, van, others}, no colour.
    V1,
    /// The v3 release: fine-grained `vehicle_type`, a `color` attribute.
    V3,
}

/// A rectangle as UA-DETRAC writes it: top-left corner and size, floats, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetracBox {
    /// Left edge (x of the top-left corner).
    pub left: f32,
    /// Top edge (y of the top-left corner).
    pub top: f32,
    /// Width in pixels.
    pub width: f32,
    /// Height in pixels.
    pub height: f32,
}

impl DetracBox {
    /// The same rectangle as corners, `x2 = left + width`, with no `+1`.
    pub fn to_xyxy(self) -> BoxXyxy {
        BoxXyxy {
            x1: self.left,
            y1: self.top,
            x2: self.left + self.width,
            y2: self.top + self.height,
        }
    }

    /// The rectangle of corner coordinates.
    pub fn from_xyxy(rect: BoxXyxy) -> Self {
        Self {
            left: rect.x1,
            top: rect.y1,
            width: rect.x2 - rect.x1,
            height: rect.y2 - rect.y1,
        }
    }
}

/// One `<region_overlap>`: the part of a target hidden by something else.
#[derive(Debug, Clone, PartialEq)]
pub struct Occlusion {
    /// The occluded part of the target, in image pixels.
    pub region: DetracBox,
    /// The id of the occluding target (`occlusion_id`).
    pub occluder_id: i64,
    /// `occlusion_status` as written: 1 when the occluder is another annotated vehicle,
    /// -1 when it is part of the background or unannotated (DETRAC convention).
    pub status: i32,
}

/// One annotated vehicle in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The track id (`<target id>`), constant over the trajectory.
    pub id: u32,
    /// The box, as in the file.
    pub bbox: DetracBox,
    /// `orientation` in degrees.
    pub orientation: f32,
    /// `speed` (pixels per frame as the toolkit measures it).
    pub speed: f32,
    /// `trajectory_length` in frames.
    pub trajectory_length: u32,
    /// `truncation_ratio`: the fraction of the vehicle outside the image, 0..1.
    pub truncation_ratio: f32,
    /// `vehicle_type` (v1 class or v3 fine-grained type).
    pub vehicle_type: VehicleType,
    /// `color` (v3 only).
    pub color: Option<String>,
    /// The occluded parts (v3 `<occlusion>`), empty when not occluded.
    pub occlusions: Vec<Occlusion>,
}

impl Target {
    /// The benchmark class of this target.
    pub fn class(&self) -> VehicleClass {
        self.vehicle_type.class()
    }
}

/// One `<frame>`: an annotated frame and its targets (possibly none).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameAnnotation {
    /// The 1-based frame number, naming `img%05d.jpg`.
    pub num: u32,
    /// `density`: the number of targets the toolkit counted.
    pub density: u32,
    /// The annotated vehicles.
    pub targets: Vec<Target>,
}

/// A parsed annotation file: one sequence of UA-DETRAC.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceAnnotation {
    /// `<sequence name>`, e.g. `MVI_20011`.
    pub name: String,
    /// Which schema the file follows (v3 when any target has a `color` or a fine-grained type).
    pub schema: Schema,
    /// `camera_state` (`stable` / `unstable`).
    pub camera_state: String,
    /// `sence_weather` (`sunny`, `cloudy`, `rainy`, `night`).
    pub weather: String,
    /// The ignored regions of the whole sequence: no loss there in training, and detections
    /// there are discarded in evaluation.
    pub ignored_regions: Vec<DetracBox>,
    /// The annotated frames by frame number. Missing numbers are unannotated.
    pub frames: BTreeMap<u32, FrameAnnotation>,
}

impl SequenceAnnotation {
    /// Reads and parses an annotation file.
    pub fn from_file(path: &Path) -> Result<Self, DetracError> {
        let text = std::fs::read_to_string(path).map_err(|source| DetracError::io(path, source))?;
        Self::parse(&text, path)
    }

    /// Parses annotation XML; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DetracError> {
        let document = Document::parse(text).map_err(|error| {
            let position = error.pos();
            let (line, column, message) = match error {
                // roxmltree puts these at 1:1; the useful place is the end of the file.
                roxmltree::Error::UnclosedRootNode | roxmltree::Error::UnexpectedEndOfStream => {
                    let line = text.lines().count().max(1) as u32;
                    let column = text.lines().last().map_or(0, |last| last.chars().count());
                    (
                        line,
                        column as u32 + 1,
                        format!("{error} (the file is truncated)"),
                    )
                }
                _ => (position.row, position.col, error.to_string()),
            };
            DetracError::MalformedXml {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        Parser {
            document: &document,
            path: path.to_path_buf(),
        }
        .sequence()
    }

    /// The highest annotated frame number (0 when no frame is annotated).
    pub fn max_frame(&self) -> u32 {
        self.frames.keys().next_back().copied().unwrap_or(0)
    }

    /// The number of target boxes over all annotated frames.
    pub fn num_targets(&self) -> usize {
        self.frames.values().map(|frame| frame.targets.len()).sum()
    }

    /// The ignored regions as corner boxes.
    pub fn ignored_boxes(&self) -> Vec<BoxXyxy> {
        self.ignored_regions
            .iter()
            .map(|region| region.to_xyxy())
            .collect()
    }

    /// Whether frame `num` has an annotation (unannotated frames are not empty negatives).
    pub fn is_annotated(&self, num: u32) -> bool {
        self.frames.contains_key(&num)
    }

    /// Writes the sequence in the exact layout of the official v3 files (attribute order,
    /// three-space indentation, no XML declaration), which this parser reads back.
    pub fn to_v3_xml(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "<sequence name=\"{}\">", escape(&self.name));
        let _ = writeln!(
            out,
            "   <sequence_attribute camera_state=\"{}\" sence_weather=\"{}\" />",
            escape(&self.camera_state),
            escape(&self.weather)
        );
        out.push_str("   <ignored_region>\n");
        for region in &self.ignored_regions {
            let _ = writeln!(out, "      <box {} />", box_attributes(region));
        }
        out.push_str("   </ignored_region>\n");
        for frame in self.frames.values() {
            let _ = writeln!(
                out,
                "   <frame density=\"{}\" num=\"{}\">",
                frame.density, frame.num
            );
            out.push_str("      <target_list>\n");
            for target in &frame.targets {
                let _ = writeln!(out, "         <target id=\"{}\">", target.id);
                let _ = writeln!(out, "            <box {} />", box_attributes(&target.bbox));
                let color = target
                    .color
                    .as_deref()
                    .map(|color| format!("color=\"{}\" ", escape(color)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "            <attribute {color}orientation=\"{}\" speed=\"{}\" \
                     trajectory_length=\"{}\" truncation_ratio=\"{}\" vehicle_type=\"{}\" />",
                    target.orientation,
                    target.speed,
                    target.trajectory_length,
                    target.truncation_ratio,
                    target.vehicle_type.as_str()
                );
                if !target.occlusions.is_empty() {
                    out.push_str("            <occlusion>\n");
                    for occlusion in &target.occlusions {
                        let region = &occlusion.region;
                        let _ = writeln!(
                            out,
                            "               <region_overlap height=\"{}\" left=\"{}\" \
                             occlusion_id=\"{}\" occlusion_status=\"{}\" top=\"{}\" \
                             width=\"{}\" />",
                            region.height,
                            region.left,
                            occlusion.occluder_id,
                            occlusion.status,
                            region.top,
                            region.width
                        );
                    }
                    out.push_str("            </occlusion>\n");
                }
                out.push_str("         </target>\n");
            }
            out.push_str("      </target_list>\n");
            out.push_str("   </frame>\n");
        }
        out.push_str("</sequence>");
        out
    }
}

/// `height left top width` in the attribute order of the v3 files.
fn box_attributes(region: &DetracBox) -> String {
    format!(
        "height=\"{}\" left=\"{}\" top=\"{}\" width=\"{}\"",
        region.height, region.left, region.top, region.width
    )
}

/// Escapes the five XML special characters in attribute values.
fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Walks a parsed document, turning every problem into a [`DetracError`] with its line.
struct Parser<'a, 'input> {
    document: &'a Document<'input>,
    path: PathBuf,
}

impl<'a, 'input> Parser<'a, 'input> {
    fn line(&self, node: Node) -> u32 {
        self.document.text_pos_at(node.range().start).row
    }

    fn child<'n>(
        &self,
        node: Node<'n, 'input>,
        name: &'static str,
        frame: Option<u32>,
    ) -> Result<Node<'n, 'input>, DetracError> {
        node.children()
            .find(|child| child.has_tag_name(name))
            .ok_or_else(|| DetracError::MissingElement {
                path: self.path.clone(),
                line: self.line(node),
                frame,
                parent: node.tag_name().name().to_string(),
                element: name,
            })
    }

    fn attribute<'n>(
        &self,
        node: Node<'n, 'input>,
        name: &'static str,
        frame: Option<u32>,
    ) -> Result<&'n str, DetracError> {
        node.attribute(name)
            .ok_or_else(|| DetracError::MissingAttribute {
                path: self.path.clone(),
                line: self.line(node),
                frame,
                element: node.tag_name().name().to_string(),
                name,
            })
    }

    fn invalid(
        &self,
        node: Node,
        name: &'static str,
        value: &str,
        frame: Option<u32>,
        reason: &'static str,
    ) -> DetracError {
        DetracError::InvalidAttribute {
            path: self.path.clone(),
            line: self.line(node),
            frame,
            element: node.tag_name().name().to_string(),
            name,
            value: value.to_string(),
            reason,
        }
    }

    fn float(
        &self,
        node: Node,
        name: &'static str,
        frame: Option<u32>,
    ) -> Result<f32, DetracError> {
        let value = self.attribute(node, name, frame)?;
        match value.trim().parse::<f32>() {
            Ok(number) if number.is_finite() => Ok(number),
            Ok(_) => Err(self.invalid(node, name, value, frame, "not a finite number")),
            Err(_) => Err(self.invalid(node, name, value, frame, "not a number")),
        }
    }

    fn integer<T: std::str::FromStr>(
        &self,
        node: Node,
        name: &'static str,
        frame: Option<u32>,
    ) -> Result<T, DetracError> {
        let value = self.attribute(node, name, frame)?;
        value
            .trim()
            .parse::<T>()
            .map_err(|_| self.invalid(node, name, value, frame, "not an integer in range"))
    }

    fn rect(&self, node: Node, frame: Option<u32>) -> Result<DetracBox, DetracError> {
        let rect = DetracBox {
            left: self.float(node, "left", frame)?,
            top: self.float(node, "top", frame)?,
            width: self.float(node, "width", frame)?,
            height: self.float(node, "height", frame)?,
        };
        for (name, size) in [("width", rect.width), ("height", rect.height)] {
            if size < 0.0 {
                let value = size.to_string();
                return Err(self.invalid(node, name, &value, frame, "negative size"));
            }
        }
        Ok(rect)
    }

    fn sequence(&self) -> Result<SequenceAnnotation, DetracError> {
        let root = self.document.root_element();
        if !root.has_tag_name("sequence") {
            return Err(DetracError::UnexpectedRoot {
                path: self.path.clone(),
                line: self.line(root),
                found: root.tag_name().name().to_string(),
            });
        }
        let name = self.attribute(root, "name", None)?.to_string();
        let attributes = self.child(root, "sequence_attribute", None)?;
        let camera_state = self
            .attribute(attributes, "camera_state", None)?
            .to_string();
        let weather = self
            .attribute(attributes, "sence_weather", None)?
            .to_string();
        let mut ignored_regions = Vec::new();
        if let Some(ignored) = root
            .children()
            .find(|child| child.has_tag_name("ignored_region"))
        {
            for region in ignored.children().filter(|child| child.has_tag_name("box")) {
                ignored_regions.push(self.rect(region, None)?);
            }
        }
        let mut frames = BTreeMap::new();
        let mut any_fine_grained_or_color = false;
        for frame_node in root.children().filter(|child| child.has_tag_name("frame")) {
            let frame = self.frame(frame_node)?;
            any_fine_grained_or_color |= frame
                .targets
                .iter()
                .any(|target| target.color.is_some() || target.vehicle_type.is_fine_grained());
            if frames.contains_key(&frame.num) {
                return Err(DetracError::DuplicateFrame {
                    path: self.path.clone(),
                    line: self.line(frame_node),
                    frame: frame.num,
                });
            }
            frames.insert(frame.num, frame);
        }
        if frames.is_empty() {
            return Err(DetracError::EmptySequence {
                path: self.path.clone(),
                sequence: name,
            });
        }
        Ok(SequenceAnnotation {
            name,
            schema: if any_fine_grained_or_color {
                Schema::V3
            } else {
                Schema::V1
            },
            camera_state,
            weather,
            ignored_regions,
            frames,
        })
    }

    fn frame(&self, node: Node) -> Result<FrameAnnotation, DetracError> {
        let num: u32 = self.integer(node, "num", None)?;
        if num == 0 {
            return Err(self.invalid(node, "num", "0", None, "frame numbers start at 1"));
        }
        let frame = Some(num);
        let density = self.integer(node, "density", frame)?;
        let mut targets = Vec::new();
        // A frame with no <target_list> is annotated and empty (density 0).
        if let Some(list) = node
            .children()
            .find(|child| child.has_tag_name("target_list"))
        {
            for target in list.children().filter(|child| child.has_tag_name("target")) {
                targets.push(self.target(target, num)?);
            }
        }
        Ok(FrameAnnotation {
            num,
            density,
            targets,
        })
    }

    fn target(&self, node: Node, num: u32) -> Result<Target, DetracError> {
        let frame = Some(num);
        let id = self.integer(node, "id", frame)?;
        let bbox = self.rect(self.child(node, "box", frame)?, frame)?;
        let attribute = self.child(node, "attribute", frame)?;
        let type_value = self.attribute(attribute, "vehicle_type", frame)?;
        let vehicle_type =
            VehicleType::parse(type_value).ok_or_else(|| DetracError::UnknownVehicleType {
                path: self.path.clone(),
                line: self.line(attribute),
                frame: num,
                value: type_value.to_string(),
            })?;
        let mut occlusions = Vec::new();
        if let Some(occlusion) = node
            .children()
            .find(|child| child.has_tag_name("occlusion"))
        {
            for overlap in occlusion
                .children()
                .filter(|child| child.has_tag_name("region_overlap"))
            {
                occlusions.push(Occlusion {
                    region: self.rect(overlap, frame)?,
                    occluder_id: self.integer(overlap, "occlusion_id", frame)?,
                    status: self.integer(overlap, "occlusion_status", frame)?,
                });
            }
        }
        Ok(Target {
            id,
            bbox,
            orientation: self.float(attribute, "orientation", frame)?,
            speed: self.float(attribute, "speed", frame)?,
            trajectory_length: self.integer(attribute, "trajectory_length", frame)?,
            truncation_ratio: self.float(attribute, "truncation_ratio", frame)?,
            vehicle_type,
            color: attribute.attribute("color").map(str::to_string),
            occlusions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"<sequence name="MVI_1">
   <sequence_attribute camera_state="stable" sence_weather="sunny" />
   <ignored_region>
      <box height="10" left="1" top="2" width="20" />
   </ignored_region>
   <frame density="1" num="3">
      <target_list>
         <target id="4">
            <box height="40.5" left="10.25" top="20" width="30" />
            <attribute color="Red" orientation="1.5" speed="2" trajectory_length="9" truncation_ratio="0.25" vehicle_type="Truck-Util" />
            <occlusion>
               <region_overlap height="5" left="10.25" occlusion_id="7" occlusion_status="1" top="20" width="6" />
            </occlusion>
         </target>
      </target_list>
   </frame>
</sequence>"#;

    fn parse(text: &str) -> Result<SequenceAnnotation, DetracError> {
        SequenceAnnotation::parse(text, Path::new("bad.xml"))
    }

    #[test]
    fn should_parse_every_attribute_of_a_v3_target() {
        let sequence = parse(GOOD).unwrap();
        assert_eq!(sequence.name, "MVI_1");
        assert_eq!(sequence.schema, Schema::V3);
        assert_eq!(sequence.camera_state, "stable");
        assert_eq!(sequence.weather, "sunny");
        assert_eq!(sequence.ignored_regions.len(), 1);
        let frame = &sequence.frames[&3];
        assert_eq!(frame.density, 1);
        let target = &frame.targets[0];
        assert_eq!(target.id, 4);
        assert_eq!(target.bbox.to_xyxy().x2, 40.25);
        assert_eq!(target.vehicle_type, VehicleType::TruckUtil);
        assert_eq!(target.class(), VehicleClass::Others);
        assert_eq!(target.color.as_deref(), Some("Red"));
        assert_eq!(target.trajectory_length, 9);
        assert_eq!(target.truncation_ratio, 0.25);
        assert_eq!(target.occlusions[0].occluder_id, 7);
        assert_eq!(target.occlusions[0].status, 1);
        assert_eq!(sequence.max_frame(), 3);
        assert!(!sequence.is_annotated(1));
    }

    #[test]
    fn should_round_trip_through_the_v3_writer() {
        let sequence = parse(GOOD).unwrap();
        let written = sequence.to_v3_xml();
        assert_eq!(parse(&written).unwrap(), sequence);
    }

    #[test]
    fn should_report_line_and_column_of_truncated_xml() {
        let truncated = &GOOD[..GOOD.len() / 2];
        let error = parse(truncated).unwrap_err();
        assert!(
            matches!(error, DetracError::MalformedXml { line, .. } if line > 1),
            "{error}"
        );
        assert!(error.to_string().starts_with("bad.xml:"), "{error}");
    }

    #[test]
    fn should_name_the_missing_attribute_with_line_and_frame() {
        let broken = GOOD.replace(" speed=\"2\"", "");
        let error = parse(&broken).unwrap_err();
        match &error {
            DetracError::MissingAttribute {
                line, frame, name, ..
            } => {
                assert_eq!(*line, 10);
                assert_eq!(*frame, Some(3));
                assert_eq!(*name, "speed");
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(
            error.to_string(),
            "bad.xml:10: <attribute> (frame 3) is missing attribute `speed`"
        );
    }

    #[test]
    fn should_reject_a_non_numeric_box_coordinate() {
        let broken = GOOD.replace(
            "left=\"10.25\" top=\"20\" width=\"30\"",
            "left=\"x\" top=\"20\" width=\"30\"",
        );
        let error = parse(&broken).unwrap_err();
        assert!(
            matches!(&error, DetracError::InvalidAttribute { name, line: 9, .. } if *name == "left"),
            "{error}"
        );
    }

    #[test]
    fn should_reject_a_negative_box_size() {
        let broken = GOOD.replace("width=\"30\"", "width=\"-3\"");
        let error = parse(&broken).unwrap_err();
        assert!(matches!(&error, DetracError::InvalidAttribute { name, .. } if *name == "width"));
    }

    #[test]
    fn should_reject_an_unknown_vehicle_type() {
        let broken = GOOD.replace("Truck-Util", "Spaceship");
        let error = parse(&broken).unwrap_err();
        assert!(
            matches!(&error, DetracError::UnknownVehicleType { frame: 3, value, .. } if value == "Spaceship"),
            "{error}"
        );
    }

    #[test]
    fn should_reject_a_sequence_without_frames() {
        let empty = r#"<sequence name="MVI_2"><sequence_attribute camera_state="stable" sence_weather="night"/><ignored_region/></sequence>"#;
        let error = parse(empty).unwrap_err();
        assert!(
            matches!(&error, DetracError::EmptySequence { sequence, .. } if sequence == "MVI_2")
        );
    }

    #[test]
    fn should_reject_a_missing_sequence_attribute_element() {
        let broken = r#"<sequence name="MVI_2"><frame density="0" num="1"/></sequence>"#;
        let error = parse(broken).unwrap_err();
        assert!(
            matches!(&error, DetracError::MissingElement { element, .. } if *element == "sequence_attribute")
        );
    }

    #[test]
    fn should_reject_a_target_without_box() {
        let broken = GOOD.replace(
            "<box height=\"40.5\" left=\"10.25\" top=\"20\" width=\"30\" />",
            "",
        );
        let error = parse(&broken).unwrap_err();
        assert!(
            matches!(&error, DetracError::MissingElement { element, frame: Some(3), .. } if *element == "box"),
            "{error}"
        );
    }

    #[test]
    fn should_reject_duplicate_and_zero_frame_numbers() {
        let frame = GOOD
            .split("<frame")
            .nth(1)
            .unwrap()
            .split("</frame>")
            .next()
            .unwrap();
        let doubled = GOOD.replace("</sequence>", &format!("<frame{frame}</frame></sequence>"));
        assert!(matches!(
            parse(&doubled).unwrap_err(),
            DetracError::DuplicateFrame { frame: 3, .. }
        ));
        let zero = GOOD.replace("num=\"3\"", "num=\"0\"");
        assert!(matches!(
            parse(&zero).unwrap_err(),
            DetracError::InvalidAttribute { .. }
        ));
    }

    #[test]
    fn should_reject_a_wrong_root_element() {
        let error = parse("<frames/>").unwrap_err();
        assert!(matches!(&error, DetracError::UnexpectedRoot { found, .. } if found == "frames"));
    }

    #[test]
    fn should_treat_a_frame_without_target_list_as_annotated_and_empty() {
        let text = GOOD.replace(
            "</sequence>",
            "<frame density=\"0\" num=\"5\" /></sequence>",
        );
        let sequence = parse(&text).unwrap();
        assert!(sequence.frames[&5].targets.is_empty());
        assert!(sequence.is_annotated(5));
        assert!(!sequence.is_annotated(4));
    }

    #[test]
    fn should_name_the_file_when_it_cannot_be_read() {
        let error = SequenceAnnotation::from_file(Path::new("/nonexistent/MVI_9.xml")).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/MVI_9.xml"),
            "{error}"
        );
    }

    #[test]
    fn should_reject_every_truncation_of_a_valid_file_with_an_error() {
        for cut in 0..GOOD.len() {
            if !GOOD.is_char_boundary(cut) {
                continue;
            }
            let error = parse(&GOOD[..cut]).expect_err("a cut file must not parse");
            assert!(
                error.to_string().starts_with("bad.xml:"),
                "cut {cut}: {error}"
            );
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn should_never_panic_on_arbitrary_text(text in ".{0,400}") {
                let _ = parse(&text);
            }

            #[test]
            fn should_never_panic_on_mutated_annotations(
                cut in 0usize..GOOD.len(),
                position in 0usize..GOOD.len(),
                insert in "[<>\"=/a-z0-9 .-]{0,8}",
            ) {
                let mut text = GOOD.to_string();
                let position = position.min(text.len());
                text.insert_str(position, &insert);
                text.truncate(cut.max(position));
                let _ = parse(&text);
            }
        }
    }
}
