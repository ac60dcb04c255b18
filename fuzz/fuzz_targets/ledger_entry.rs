//! Strict entry parsing never panics, and whatever it accepts re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = airlock_ledger::Entry::parse(data) {
        let again = entry.to_canonical_json().expect("accepted entries re-encode");
        assert_eq!(again, data, "accepted entries are canonical");
    }
});
