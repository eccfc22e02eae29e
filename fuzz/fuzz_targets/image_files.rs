//! The image loaders that read files (IDX raw or gzip, digits CSV, a folder
//! of PNG/JPEG images) on arbitrary bytes: each must return Ok or Err, never
//! panic, and never allocate far beyond the input size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use scoresde::data::images::{load_digits_csv, load_folder, load_idx_images, ColorMode};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("scoresde-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for name in ["x-idx3-ubyte", "x-idx3-ubyte.gz", "digits.csv"] {
        let path = dir.join(name);
        if std::fs::write(&path, data).is_ok() {
            let _ = match name {
                "digits.csv" => load_digits_csv(&path).map(|_| ()),
                _ => load_idx_images(&path).map(|_| ()),
            };
            let _ = std::fs::remove_file(&path);
        }
    }
    let img_dir = dir.join("folder");
    let _ = std::fs::create_dir_all(&img_dir);
    if std::fs::write(img_dir.join("a.png"), data).is_ok() {
        let _ = load_folder(&img_dir, 8, ColorMode::Grey);
    }
});
