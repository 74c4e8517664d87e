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

/// The pickles inside a `.pth` file: the `*/data.pkl` entries of the ZIP format, or the whole
/// file for the legacy and plain-pickle formats; none for a file that is neither (the reader
/// then refuses it as not a checkpoint).
pub(crate) fn pickles(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    if !bytes.starts_with(b"PK") {
        // The first bytes the reader takes for a pickle (or the legacy format, which opens
        // with one); anything else it refuses as not a checkpoint, with its own message.
        let pickle_like = matches!(bytes.first(), Some(0x80 | b'(' | b'}' | b']' | b'c'));
        return Ok(if pickle_like { vec![bytes] } else { Vec::new() });
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|error| format!("not a readable ZIP: {error}"))?;
    let mut found = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| format!("ZIP entry {index}: {error}"))?;
        let name = entry
            .name()
            .map_err(|error| format!("ZIP entry {index}: {error}"))?
            .into_owned();
        if name.ends_with(".pkl") {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|error| format!("ZIP entry {name}: {error}"))?;
            found.push(data);
        }
    }
    Ok(found)
}

/// The first global of `pickle` that is not allowed, as `module.name`; `Err` for a pickle
/// the scan cannot walk (an unknown opcode, an argument running past the end).
pub(crate) fn forbidden_global(pickle: &[u8]) -> Result<Option<String>, String> {
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
                    return Ok(Some(global));
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
                            return Ok(Some(global));
                        }
                    }
                    _ => return Ok(Some("a STACK_GLOBAL of computed names".to_string())),
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
    Ok(None)
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
        assert_eq!(forbidden_global(&pickle), Ok(Some("os.system".into())));

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
        assert_eq!(forbidden_global(&pickle), Ok(Some("posix.system".into())));
    }

    #[test]
    fn should_pass_what_a_state_dict_names_and_refuse_what_it_cannot_walk() {
        let mut pickle = vec![0x80, 2];
        pickle.extend(global("collections", "OrderedDict"));
        pickle.extend([b')', b'R']);
        pickle.extend(global("torch._utils", "_rebuild_tensor_v2"));
        pickle.extend(global("torch", "FloatStorage"));
        pickle.extend([b'K', 3, b'J', 1, 0, 0, 0, b'.']);
        assert_eq!(forbidden_global(&pickle), Ok(None));
        assert!(forbidden_global(&[0x80, 2, 0xff]).is_err());
        assert!(forbidden_global(&[0x80, 2, 0x8c, 40, b'a']).is_err());
    }
}
