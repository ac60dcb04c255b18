//! The C2SP tlog-proof parser and verifier never panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The verifier for `SigningKey::from_bytes(&[7; 32])` named `airlock.fuzz/ledger`.
const KEY: &str = "airlock.fuzz/ledger+9e575eb2+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs";

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = airlock_ledger::verify_proof_file(text, KEY);
    }
});
