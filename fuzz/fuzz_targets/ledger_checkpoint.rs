//! Checkpoint bodies, signed notes, verifier keys and entry bundles: no panics on any input,
//! and accepted checkpoint bodies round-trip.
#![no_main]

use airlock_ledger::{Checkpoint, SignedCheckpoint, Verifier, tiles};
use libfuzzer_sys::fuzz_target;

/// The verifier for `SigningKey::from_bytes(&[7; 32])` named `airlock.fuzz/ledger`.
const KEY: &str = "airlock.fuzz/ledger+9e575eb2+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs";

fuzz_target!(|data: &[u8]| {
    let _ = tiles::decode_bundle(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Verifier::parse(text);
    if let Ok(cp) = Checkpoint::parse_body(text) {
        assert_eq!(cp.to_body(), text, "accepted checkpoints are canonical");
    }
    if let Ok(v) = Verifier::parse(KEY) {
        let _ = SignedCheckpoint::open(text, &v);
        let _ = v.open(text);
    }
});
