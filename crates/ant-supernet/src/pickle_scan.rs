//! A check of a `.pth` file's pickle before its weights are read: the pickle may name only the
//! globals a state dict needs (tensor rebuilding, storages, ordered dicts, sets), as
//! `torch.load(weights_only=True)` allows.
//!
//! A pickle is a program: `GLOBAL os system` followed by `REDUCE` is a call of `os.system`
//! when Python loads it. Our reader (Burn's `pytorch-reader`) executes nothing, but it reads
//! an unknown call as an opaque value and goes on, so a crafted file would load without a
//! word. This scan walks the opcodes (every argument format of protocols 0-5) and refuses the
//! file at the first global outside the allowlist, naming it.

use std::io::Read;
use std::path::Path;

/// `module.name` pairs a state dict's pickle may name.
const ALLOWED: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("_codecs", "encode"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Tensor"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "dtype"),
];

/// Whether `module.name` may appear: the allowlist, or a typed storage class of `torch`.
fn allowed(module: &str, name: &str) -> bool {
    ALLOWED.contains(&(module, name)) || (module == "torch" && name.ends_with("Storage"))
}

/// Why a file was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// A pickle names this global (`module.name`), outside the allowlist.
    Global(String),
    /// A pickle the scan cannot walk, or an archive it cannot open.
    Unreadable(String),
}

/// Pickles at the start of a non-ZIP file that may be read: the legacy format
/// (`torch.save(..., _use_new_zipfile_serialization=False)`) is five pickles (magic number,
/// protocol, system info, the object, the storage keys) and then raw storage bytes; a plain
/// pickle file is one.
const LEGACY_PICKLES: usize = 5;

/// Checks every pickle of the `.pth` file at `path`: the `*/data.pkl` entries of the ZIP
/// format, the pickles of the legacy format, or a plain pickle. A file that is none of these
/// passes, and the reader then refuses it as not a checkpoint, with its own message.
pub(crate) fn check_file(path: &Path) -> Result<(), Refusal> {
    let unreadable = |error: &dyn std::fmt::Display| Refusal::Unreadable(error.to_string());
    let mut file = std::fs::File::open(path).map_err(|error| unreadable(&error))?;
    let mut magic = [0u8; 2];
    let is_zip = file.read_exact(&mut magic).is_ok() && magic == *b"PK";
    if !is_zip {
        let bytes = std::fs::read(path).map_err(|error| unreadable(&error))?;
        return check_pickles(&bytes);
    }
    // The archive reads its directory and the entries asked for, not the tensor data.
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|error| Refusal::Unreadable(format!("not a readable ZIP: {error}")))?;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| Refusal::Unreadable(format!("ZIP entry {index}: {error}")))?;
        let name = entry
            .name()
            .map_err(|error| Refusal::Unreadable(format!("ZIP entry {index}: {error}")))?
            .into_owned();
        if name.ends_with(".pkl") {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|error| Refusal::Unreadable(format!("ZIP entry {name}: {error}")))?;
            if let (Some(global), _) = forbidden_global(&data).map_err(Refusal::Unreadable)? {
                return Err(Refusal::Global(global));
            }
        }
    }
    Ok(())
}

/// [`check_file`] for a non-ZIP file's bytes: the first pickle, and the ones after it while
/// they continue the legacy format's sequence (protocol 2 and up, at most
/// [`LEGACY_PICKLES`]).
fn check_pickles(bytes: &[u8]) -> Result<(), Refusal> {
    // The first bytes the reader takes for a pickle (or the legacy format, which opens with
    // one); anything else it refuses itself.
    if !matches!(bytes.first(), Some(0x80 | b'(' | b'}' | b']' | b'c')) {
        return Ok(());
    }
    let mut at = 0;
    for index in 0..LEGACY_PICKLES {
        if index > 0 && bytes.get(at) != Some(&0x80) {
            break;
        }
        let (found, length) = forbidden_global(&bytes[at..]).map_err(Refusal::Unreadable)?;
        if let Some(global) = found {
            return Err(Refusal::Global(global));
        }
        at += length;
    }
    Ok(())
}

/// The first global of the pickle at the start of `pickle` that is not allowed, as
/// `module.name`, and the pickle's length in bytes (through its STOP; the whole slice if it
/// has none); `Err` for a pickle the scan cannot walk (an unknown opcode, an argument
/// running past the end).
fn forbidden_global(pickle: &[u8]) -> Result<(Option<String>, usize), String> {
    let mut at = 0usize;
    // The values most recently pushed, as far as globals need them: strings (literal or
    // fetched from the memo) are known, anything else is `None`.
    let mut recent: Vec<Option<String>> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Option<String>> = Default::default();
    let take = |at: &mut usize, count: usize| -> Result<&[u8], String> {
        let end = at
            .checked_add(count)
            .filter(|end| *end <= pickle.len())
            .ok_or_else(|| format!("argument past the end at byte {at}"))?;
        let slice = &pickle[*at..end];
        *at = end;
        Ok(slice)
    };
    let line = |at: &mut usize| -> Result<String, String> {
        let rest = &pickle[*at..];
        let length = rest
            .iter()
            .position(|byte| *byte == b'\n')
            .ok_or_else(|| format!("unterminated line at byte {at}"))?;
        *at += length + 1;
        Ok(String::from_utf8_lossy(&rest[..length]).into_owned())
    };
    let uint = |bytes: &[u8]| {
        bytes
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b))
    };
    let check =
        |module: &str, name: &str| (!allowed(module, name)).then(|| format!("{module}.{name}"));
    while at < pickle.len() {
        let op = pickle[at];
        at += 1;
        match op {
            // STOP
            b'.' => break,
            // GLOBAL and INST: module and name on two lines.
            b'c' | b'i' => {
                let module = line(&mut at)?;
                let name = line(&mut at)?;
                if let Some(global) = check(&module, &name) {
                    return Ok((Some(global), at));
                }
                recent.push(None);
            }
            // STACK_GLOBAL: module and name are the two values pushed before it.
            0x93 => {
                let name = recent.pop().flatten();
                let module = recent.pop().flatten();
                match (module, name) {
                    (Some(module), Some(name)) => {
                        if let Some(global) = check(&module, &name) {
                            return Ok((Some(global), at));
                        }
                    }
                    _ => return Ok((Some("a STACK_GLOBAL of computed names".to_string()), at)),
                }
                recent.push(None);
            }
            // Strings: SHORT_BINUNICODE, BINUNICODE, BINUNICODE8, SHORT_BINSTRING, BINSTRING.
            0x8c | b'X' | 0x8d | b'U' | b'T' => {
                let width = match op {
                    0x8c | b'U' => 1,
                    0x8d => 8,
                    _ => 4,
                };
                let length = uint(take(&mut at, width)?) as usize;
                let text = take(&mut at, length)?;
                recent.push(Some(String::from_utf8_lossy(text).into_owned()));
            }
            // UNICODE and STRING: a line.
            b'V' | b'S' => {
                let text = line(&mut at)?;
                recent.push(Some(text.trim_matches(['\'', '"']).to_string()));
            }
            // Memo: MEMOIZE, BINPUT, LONG_BINPUT, PUT; BINGET, LONG_BINGET, GET.
            0x94 => {
                let index = memo.len() as u64;
                memo.insert(index, recent.last().cloned().flatten());
            }
            b'q' | b'r' => {
                let index = uint(take(&mut at, if op == b'q' { 1 } else { 4 })?);
                memo.insert(index, recent.last().cloned().flatten());
            }
            b'p' => {
                let index = line(&mut at)?.parse().unwrap_or(u64::MAX);
                memo.insert(index, recent.last().cloned().flatten());
            }
            b'h' | b'j' => {
                let index = uint(take(&mut at, if op == b'h' { 1 } else { 4 })?);
                recent.push(memo.get(&index).cloned().flatten());
            }
            b'g' => {
                let index = line(&mut at)?.parse().unwrap_or(u64::MAX);
                recent.push(memo.get(&index).cloned().flatten());
            }
            // Fixed-size arguments: PROTO, BININT1, BINPERSID-free ints, floats, EXT, FRAME.
            0x80 | b'K' => drop(take(&mut at, 1)?),
            b'M' | 0x83 => drop(take(&mut at, 2)?),
            b'J' | 0x84 => drop(take(&mut at, 4)?),
            0x82 => drop(take(&mut at, 1)?),
            b'G' | 0x95 => drop(take(&mut at, 8)?),
            // Length-prefixed data: LONG1, LONG4, SHORT_BINBYTES, BINBYTES, BINBYTES8,
            // BYTEARRAY8.
            0x8a | b'C' => {
                let length = uint(take(&mut at, 1)?) as usize;
                take(&mut at, length)?;
                recent.push(None);
            }
            0x8b | b'B' => {
                let length = uint(take(&mut at, 4)?) as usize;
                take(&mut at, length)?;
                recent.push(None);
            }
            0x8e | 0x96 => {
                let length = uint(take(&mut at, 8)?) as usize;
                take(&mut at, length)?;
                recent.push(None);
            }
            // Line arguments: INT, LONG, FLOAT, PERSID.
            b'I' | b'L' | b'F' | b'P' => {
                line(&mut at)?;
                recent.push(None);
            }
            // No argument.
            b'(' | b'0' | b'1' | b'2' | b'N' | 0x88 | 0x89 | b't' | 0x85 | 0x86 | 0x87 | b')'
            | b'l' | b']' | b'a' | b'e' | b'd' | b'}' | b's' | b'u' | b'b' | b'R' | 0x81 | 0x92
            | b'o' | b'Q' | 0x8f | 0x90 | 0x91 | 0x97 | 0x98 => recent.push(None),
            other => {
                return Err(format!(
                    "unknown pickle opcode 0x{other:02x} at byte {}",
                    at - 1
                ));
            }
        }
    }
    Ok((None, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }

    #[test]
    fn should_refuse_a_call_of_os_system_in_either_global_form() {
        // protocol 2: GLOBAL os system, the argument, TUPLE1, REDUCE, STOP.
        let mut pickle = vec![0x80, 2];
        pickle.extend(global("os", "system"));
        pickle.extend([0x8c, 4]);
        pickle.extend(b"echo");
        pickle.extend([0x85, b'R', b'.']);
        assert_eq!(
            check_pickles(&pickle),
            Err(Refusal::Global("os.system".into()))
        );

        // protocol 4: the names as memoised strings, STACK_GLOBAL.
        let mut pickle = vec![0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0];
        pickle.extend([0x8c, 5]);
        pickle.extend(b"posix");
        pickle.push(0x94);
        pickle.extend([0x8c, 6]);
        pickle.extend(b"system");
        pickle.push(0x94);
        pickle.extend([0x93, 0x94, 0x8c, 2]);
        pickle.extend(b"id");
        pickle.extend([0x85, b'R', b'.']);
        assert_eq!(
            check_pickles(&pickle),
            Err(Refusal::Global("posix.system".into()))
        );
    }

    #[test]
    fn should_pass_what_a_state_dict_names_and_refuse_what_it_cannot_walk() {
        let mut pickle = vec![0x80, 2];
        pickle.extend(global("collections", "OrderedDict"));
        pickle.extend([b')', b'R']);
        pickle.extend(global("torch._utils", "_rebuild_tensor_v2"));
        pickle.extend(global("torch", "FloatStorage"));
        pickle.extend([b'K', 3, b'J', 1, 0, 0, 0, b'.']);
        assert_eq!(check_pickles(&pickle), Ok(()));
        assert!(matches!(
            check_pickles(&[0x80, 2, 0xff]),
            Err(Refusal::Unreadable(_))
        ));
        assert!(matches!(
            check_pickles(&[0x80, 2, 0x8c, 40, b'a']),
            Err(Refusal::Unreadable(_))
        ));
    }

    #[test]
    fn should_scan_the_object_pickle_of_the_legacy_format_not_only_the_first() {
        // Magic number, protocol and system info pickles, benign, then the object pickle,
        // which calls os.system, then raw storage bytes.
        let mut prefix = vec![0x80, 2, 0x8a, 10];
        prefix.extend([
            0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
        ]);
        prefix.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
        prefix.extend([0x80, 2, b'}', b'.']);
        let mut file = prefix.clone();
        file.extend([0x80, 2]);
        file.extend(global("os", "system"));
        file.extend([0x8c, 2]);
        file.extend(b"id");
        file.extend([0x85, b'R', b'.']);
        file.extend([0xff; 16]);
        assert_eq!(
            check_pickles(&file),
            Err(Refusal::Global("os.system".into()))
        );
        // The same file with a benign object pickle passes, its raw data unscanned.
        let mut good = prefix;
        good.extend([0x80, 2, b'}', b'.']);
        good.extend([0xff; 16]);
        assert_eq!(check_pickles(&good), Ok(()));
    }
}
