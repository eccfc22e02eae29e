//! `.npy` parser on arbitrary bytes: must return Ok or Err, never panic or
//! allocate beyond the input size.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scoresde::npy::parse(std::path::Path::new("fuzz.npy"), data);
});
