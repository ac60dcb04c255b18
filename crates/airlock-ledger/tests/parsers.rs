//! The properties the fuzz targets in `fuzz/` check, run as proptests so CI exercises them:
//! no parser of untrusted input panics, and what they accept is canonical.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test"
)]

use airlock_ledger::{Checkpoint, Ledger, SignedCheckpoint, Verifier, tiles, verify_proof_file};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

/// The key the fuzz targets use.
const FUZZ_KEY: &str = "airlock.fuzz/ledger+9e575eb2+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs";

#[test]
fn fuzz_key_is_valid() {
    let v = Verifier::parse(FUZZ_KEY).unwrap();
    let k = SigningKey::from_bytes(&[7; 32]);
    assert_eq!(
        v,
        Verifier::new("airlock.fuzz/ledger", k.verifying_key()).unwrap()
    );
}

fn sample_proof() -> String {
    let d = tempfile::tempdir().unwrap();
    let l = Ledger::open(
        d.path(),
        "airlock.fuzz/ledger",
        SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    for i in 0..5u8 {
        let e = airlock_ledger::Entry::new(
            airlock_ledger::Timestamp::now(),
            airlock_types::ActorId::new("svc").unwrap(),
            airlock_ledger::EventType::Ingest,
            airlock_types::Zone::Airlock,
            airlock_types::RequestId::from_bytes([i; 16]),
            airlock_ledger::OutcomeKind::Success,
        );
        l.append(&e).unwrap();
    }
    l.proof_file(3).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn checkpoint_and_note_parsers_never_panic(s in "\\PC{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let v = Verifier::parse(FUZZ_KEY).unwrap();
        for text in [s.clone(), String::from_utf8_lossy(&bytes).into_owned()] {
            let _ = Verifier::parse(&text);
            let _ = SignedCheckpoint::open(&text, &v);
            if let Ok(cp) = Checkpoint::parse_body(&text) {
                prop_assert_eq!(cp.to_body(), text);
            }
        }
        let _ = tiles::decode_bundle(&bytes);
    }

    #[test]
    fn checkpoint_lines_round_trip(origin in "[a-z./]{1,30}", size in any::<u64>(), root in any::<[u8; 32]>()) {
        let cp = Checkpoint { origin, size, root, extensions: vec![] };
        prop_assert_eq!(Checkpoint::parse_body(&cp.to_body()).unwrap(), cp);
    }
}

#[test]
fn proof_file_parser_survives_mutations() {
    let proof = sample_proof();
    assert!(verify_proof_file(&proof, FUZZ_KEY).is_ok());
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(
            &(0..proof.len(), any::<u8>(), 0usize..3),
            |(pos, byte, mode)| {
                let mut b = proof.clone().into_bytes();
                match mode {
                    0 => b[pos] = byte,
                    1 => {
                        b.remove(pos);
                    }
                    _ => b.insert(pos, byte),
                }
                if let Ok(text) = String::from_utf8(b) {
                    prop_assert!(text == proof || verify_proof_file(&text, FUZZ_KEY).is_err());
                }
                Ok(())
            },
        )
        .unwrap();
}
