//! `.pth` files are pickles, and a pickle is a program. A file whose pickle names a global a
//! state dict never needs (`os.system`) is refused by name before anything is read, in the
//! plain-pickle and the ZIP format; a file whose tensor data is shorter than its pickle
//! claims is refused; the effdet checkpoint itself still reads.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ant_supernet::WeightMap;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ant-untrusted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `os.system("touch MARKER")` as a protocol-2 pickle.
fn os_system_pickle(marker: &Path) -> Vec<u8> {
    let command = format!("touch {}", marker.display());
    let mut pickle = vec![0x80, 2];
    pickle.extend(b"cos\nsystem\n");
    pickle.push(b'X');
    pickle.extend((command.len() as u32).to_le_bytes());
    pickle.extend(command.as_bytes());
    pickle.extend([0x85, b'R', b'.']);
    pickle
}

/// A ZIP in `torch.save`'s layout (`archive/data.pkl`, stored) around `pickle`.
fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

fn refusal(path: &Path) -> String {
    match WeightMap::from_pytorch(path) {
        Ok(_) => panic!("{} was read", path.display()),
        Err(error) => error.to_string(),
    }
}

#[test]
fn should_refuse_a_pickle_that_calls_os_system_and_run_nothing() {
    let marker = temp("pwned");
    let _ = std::fs::remove_file(&marker);

    let plain = temp("plain.pth");
    std::fs::write(&plain, os_system_pickle(&marker)).unwrap();
    let message = refusal(&plain);
    eprintln!("{message}");
    assert!(
        message.contains("plain.pth") && message.contains("os.system"),
        "{message}"
    );

    let zipped = temp("zipped.pth");
    zip_with(&zipped, &[("archive/data.pkl", &os_system_pickle(&marker))]);
    let message = refusal(&zipped);
    assert!(
        message.contains("zipped.pth") && message.contains("os.system"),
        "{message}"
    );
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn should_refuse_tensor_data_shorter_than_its_pickle_claims_and_read_the_real_file() {
    let Some(fixture) = common::shared("fixtures/effdet-d0/tf_efficientdet_d0_random.pth") else {
        return;
    };
    let weights = WeightMap::from_pytorch(&fixture).expect("the effdet checkpoint reads");
    drop(weights);

    // The same archive with its largest tensor file cut in half.
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&fixture).unwrap()).unwrap();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        entries.push((name, data));
    }
    let largest = entries
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| name.contains("/data/"))
        .max_by_key(|(_, (_, data))| data.len())
        .map(|(index, _)| index)
        .expect("tensor files in the archive");
    let half = entries[largest].1.len() / 2;
    entries[largest].1.truncate(half);
    let short = temp("short.pth");
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(name, data)| (name.as_str(), data.as_slice()))
        .collect();
    zip_with(&short, &borrowed);
    let message = refusal(&short);
    eprintln!("{message}");
    assert!(message.contains("short.pth"), "{message}");
}
