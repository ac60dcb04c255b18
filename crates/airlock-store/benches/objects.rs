//! Object store throughput: encrypted put/get through the home, against a raw file write/read
//! of the same bytes and bare AES-256-GCM on the same bytes, measured in the same run.
//!
//! `cargo bench -p airlock-store --bench objects` (AIRLOCK_BENCH_MB sets the object size).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]

use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use airlock_crypto::KdfParams;
use airlock_store::{
    Access, Home, InitOptions, Lineage, NewFile, NewVersion, Passphrase, Transform,
};
use airlock_types::{ActorId, Classification, DatasetName, Gate, Zone};

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() {
    let mb: usize = std::env::var("AIRLOCK_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let objects = 8usize;
    let size = mb * 1024 * 1024;
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..objects {
        let mut v = vec![0u8; size];
        for chunk in v.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        payloads.push(v);
    }
    let total = size * objects;
    let tmp = tempfile::tempdir().unwrap();

    // Baseline 1: raw file write (with fsync, as the store does) and read.
    let raw = tmp.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let t = Instant::now();
    for (i, p) in payloads.iter().enumerate() {
        let path = raw.join(format!("{i}"));
        std::fs::write(&path, p).unwrap();
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
    }
    let raw_write = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut n = 0;
    for i in 0..objects {
        n += std::fs::read(raw.join(format!("{i}"))).unwrap().len();
    }
    let raw_read = t.elapsed().as_secs_f64();
    assert_eq!(n, total);

    // Baseline 2: bare AES-256-GCM seal and open of the same bytes.
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
    let nonce = [1u8; 12];
    let t = Instant::now();
    let sealed: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| {
            cipher
                .encrypt(Nonce::from_slice(&nonce), Payload { msg: p, aad: b"x" })
                .unwrap()
        })
        .collect();
    let gcm_seal = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for s in &sealed {
        cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: s, aad: b"x" })
            .unwrap();
    }
    let gcm_open = t.elapsed().as_secs_f64();

    // Airlock: put (hash, fresh data key, seal, write, fsync, wrap, record) and get.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (put, get) = rt.block_on(async {
        let home = Home::init(
            &tmp.path().join("home"),
            &Passphrase::new("benchmark passphrase".into()),
            &InitOptions {
                name: "bench".into(),
                kdf: KdfParams::danger_fast_for_tests(),
                database_url: None,
            },
            ActorId::new("bench").unwrap(),
        )
        .await
        .unwrap();
        let files: Vec<NewFile> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| NewFile {
                name: format!("{i}"),
                format: "csv".into(),
                records: 1,
                bytes: p.clone(),
            })
            .collect();
        let t = Instant::now();
        let v = home
            .write_version(NewVersion {
                dataset: DatasetName::new("bench").unwrap(),
                zone: Zone::Clinical,
                classification: Classification::Phi,
                source: None,
                files,
                lineage: Lineage {
                    source_system: Some("bench".into()),
                    extracted_at: "2026-01-01T00:00:00Z".into(),
                    triggered_by: ActorId::new("bench").unwrap(),
                    parents: vec![],
                    gate: Gate::Ingest,
                    transform: Transform {
                        name: "bench".into(),
                        config_hash: None,
                        params: Default::default(),
                    },
                    airlock_version: "bench".into(),
                },
            })
            .await
            .unwrap();
        let put = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let back = home
            .read_version(&v, Access::Zone(Zone::Clinical), None)
            .await
            .unwrap();
        let get = t.elapsed().as_secs_f64();
        assert_eq!(back.iter().map(|(_, b)| b.len()).sum::<usize>(), total);
        home.close().await.unwrap();
        (put, get)
    });

    println!(
        "object store throughput: {objects} objects x {mb} MiB = {:.0} MB",
        total as f64 / 1e6
    );
    println!(
        "{:<34} {:>10} {:>22} {:>22}",
        "operation", "MB/s", "ratio to raw file I/O", "ratio to bare AES-GCM"
    );
    let row = |name: &str, secs: f64, raw: f64, gcm: f64| {
        println!(
            "{:<34} {:>10.1} {:>22.2} {:>22.2}",
            name,
            mbps(total, secs),
            mbps(total, secs) / mbps(total, raw),
            mbps(total, secs) / mbps(total, gcm)
        );
    };
    row("raw file write + fsync", raw_write, raw_write, gcm_seal);
    row("bare AES-256-GCM seal", gcm_seal, raw_write, gcm_seal);
    row("airlock put (encrypted, durable)", put, raw_write, gcm_seal);
    row("raw file read", raw_read, raw_read, gcm_open);
    row("bare AES-256-GCM open", gcm_open, raw_read, gcm_open);
    row("airlock get (decrypt + verify)", get, raw_read, gcm_open);
}
