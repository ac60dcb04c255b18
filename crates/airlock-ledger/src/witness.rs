//! C2SP `tlog-witness` and `tlog-cosignature` (Ed25519, `cosignature/v1`): the
//! `add-checkpoint` request body, the checks a witness makes before it cosigns, and
//! cosignatures themselves. Pure: no I/O and no clock (the caller passes the time and keeps the
//! witness's state).
//!
//! A witness remembers, per log origin, the size and root hash of the latest checkpoint it
//! cosigned. It cosigns a new checkpoint only if it carries a valid signature by a key it
//! trusts for that origin, names the remembered size as its old size, and comes with a
//! consistency proof from the remembered tree to the new one ([`check_add_checkpoint`]); so a
//! log that shows the witness a fork, or an older view, gets no cosignature. The caller must
//! compare-and-swap the remembered state with the check's inputs (the spec's race: two requests
//! checked against one state must not both be recorded).
//!
//! A cosignature is a signed-note signature line by the witness's key name, over
//! `cosignature/v1\ntime <t>\n` followed by the checkpoint body; its bytes are the key id, the
//! time as a big-endian `u64`, and the 64-byte Ed25519 signature. The key id is the first four
//! bytes of `SHA-256(name || "\n" || 0x04 || public key)`, and verifier keys are written
//! `<name>+<hex key id>+<base64(0x04 || public key)>`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::{Hash, ProofError, verify_consistency};
use crate::note::{
    Checkpoint, NoteError, SIG_PREFIX, SignedCheckpoint, Verifier, check_name, parse_sig_line,
    parse_vkey, split_note, write_vkey,
};

/// The signature type byte of an Ed25519 `cosignature/v1` key, in key ids and verifier keys.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Most consistency proof lines a request may carry (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted: 63 proof lines and a checkpoint with a few signatures fit
/// many times over; more is refused before anything is parsed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The header line that separates cosigned messages from every other signed text.
const COSIGNATURE_HEADER: &str = "cosignature/v1";
/// Key id, timestamp and Ed25519 signature.
const COSIGNATURE_LEN: usize = 4 + 8 + 64;

/// Why a witness will not cosign. Each variant is one of the spec's answers
/// ([`AddCheckpointError::status`]); messages name sizes and origins, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddCheckpointError {
    /// The request body is malformed (line numbers are 1-based).
    #[error("add-checkpoint request is malformed at line {line}: {reason}")]
    Malformed {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The checkpoint is malformed.
    #[error("checkpoint in the request is malformed: {0}")]
    Checkpoint(NoteError),
    /// The witness trusts no key for this origin.
    #[error("unknown log origin `{origin}`")]
    UnknownLog {
        /// The origin line.
        origin: String,
    },
    /// No signature on the checkpoint verifies with a key the witness trusts for its origin.
    #[error("the checkpoint carries no valid signature by a key trusted for `{origin}`")]
    Unsigned {
        /// The origin line.
        origin: String,
    },
    /// The old size is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// The old size given.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The old size is not the size of the latest checkpoint cosigned for this origin, or the
    /// checkpoint has that size and another root hash (a fork).
    #[error("the latest cosigned checkpoint of this log has size {recorded}")]
    Conflict {
        /// The size of the latest checkpoint cosigned for this origin (0 if none).
        recorded: u64,
    },
    /// The consistency proof does not lead from the recorded tree to the checkpoint's.
    #[error("the consistency proof from size {old} to {size} does not verify")]
    BadProof {
        /// The old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
}

impl AddCheckpointError {
    /// The HTTP status C2SP tlog-witness gives this answer: 400 malformed or an old size past
    /// the checkpoint, 403 no trusted signature, 404 unknown origin, 409 conflict (its body is
    /// the recorded size and a newline, `Content-Type: text/x.tlog.size`), 422 bad proof.
    pub fn status(&self) -> u16 {
        match self {
            AddCheckpointError::Malformed { .. }
            | AddCheckpointError::Checkpoint(_)
            | AddCheckpointError::OldSizeTooLarge { .. } => 400,
            AddCheckpointError::Unsigned { .. } => 403,
            AddCheckpointError::UnknownLog { .. } => 404,
            AddCheckpointError::Conflict { .. } => 409,
            AddCheckpointError::BadProof { .. } => 422,
        }
    }
}

/// An `add-checkpoint` request: the size of the checkpoint the client believes the witness
/// cosigned last, a consistency proof from it, and the new signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The old size.
    pub old_size: u64,
    /// The consistency proof from the old size to the checkpoint's.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note (it may carry several signatures).
    pub checkpoint: String,
}

fn decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

impl AddCheckpoint {
    /// The request body: `old <size>`, one base64 proof hash per line, a blank line, and the
    /// checkpoint.
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parse a request body strictly (canonical decimals and base64, at most
    /// [`MAX_PROOF_LINES`] proof lines, at most [`MAX_REQUEST_BYTES`]). The checkpoint is only
    /// split off here; [`check_add_checkpoint`] verifies it.
    pub fn parse(body: &[u8]) -> Result<Self, AddCheckpointError> {
        let bad = |line, reason| AddCheckpointError::Malformed { line, reason };
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad(1, "request body too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad(1, "not utf-8"))?;
        let (first, mut rest) = text.split_once('\n').ok_or(bad(1, "no old size line"))?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(decimal)
            .ok_or(bad(1, "expected `old <size>` without leading zeros"))?;
        let mut proof = Vec::new();
        let mut line = 2;
        loop {
            let (l, r) = rest
                .split_once('\n')
                .ok_or(bad(line, "no blank line before the checkpoint"))?;
            rest = r;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(line, "more than 63 consistency proof lines"));
            }
            let h = B64
                .decode(l)
                .ok()
                .and_then(|v| Hash::try_from(v).ok())
                .filter(|h| B64.encode(h) == l)
                .ok_or(bad(line, "proof line is not a canonical base64 hash"))?;
            proof.push(h);
            line += 1;
        }
        if rest.is_empty() {
            return Err(bad(line + 1, "no checkpoint"));
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// The checkpoint's origin line (unverified: for finding the keys to verify it with).
    pub fn origin(&self) -> Result<&str, AddCheckpointError> {
        self.checkpoint
            .split_once('\n')
            .map(|(o, _)| o)
            .filter(|o| !o.is_empty())
            .ok_or(AddCheckpointError::Checkpoint(NoteError::Checkpoint {
                line: 1,
                reason: "empty origin",
            }))
    }
}

/// What a witness remembers of one log: the latest cosigned size and root hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
}

/// Run the witness's checks on `req`, in the spec's order, against the keys it trusts for the
/// checkpoint's origin (`log_keys`, empty if it knows none) and what it `recorded` for that
/// origin (`None` if it never cosigned one). On success, returns the verified checkpoint: the
/// caller records its size and root (if `recorded` is still what it was) and cosigns it.
pub fn check_add_checkpoint(
    req: &AddCheckpoint,
    log_keys: &[Verifier],
    recorded: Option<&Recorded>,
) -> Result<SignedCheckpoint, AddCheckpointError> {
    let origin = req.origin()?;
    if log_keys.is_empty() {
        return Err(AddCheckpointError::UnknownLog {
            origin: origin.to_owned(),
        });
    }
    let mut signed = None;
    for v in log_keys {
        match SignedCheckpoint::open(&req.checkpoint, v) {
            Ok(cp) => {
                signed = Some(cp);
                break;
            }
            // The shape of the note is the same whichever key is tried.
            Err(e @ (NoteError::Malformed { .. } | NoteError::Checkpoint { .. })) => {
                return Err(AddCheckpointError::Checkpoint(e));
            }
            Err(_) => {}
        }
    }
    let cp = signed.ok_or_else(|| AddCheckpointError::Unsigned {
        origin: origin.to_owned(),
    })?;
    let (old, size) = (req.old_size, cp.checkpoint.size);
    if old > size {
        return Err(AddCheckpointError::OldSizeTooLarge { old, size });
    }
    let recorded_size = recorded.map_or(0, |r| r.size);
    if old != recorded_size {
        return Err(AddCheckpointError::Conflict {
            recorded: recorded_size,
        });
    }
    let bad_proof = AddCheckpointError::BadProof { old, size };
    match recorded {
        // Nothing recorded: the first checkpoint is taken on trust, with an empty proof.
        None => {
            if !req.proof.is_empty() {
                return Err(bad_proof);
            }
        }
        Some(r) if old == size => {
            if r.root != cp.checkpoint.root {
                return Err(AddCheckpointError::Conflict { recorded: r.size });
            }
            if !req.proof.is_empty() {
                return Err(bad_proof);
            }
        }
        Some(r) => {
            verify_consistency(old, size, &req.proof, &r.root, &cp.checkpoint.root).map_err(
                |e: ProofError| match e {
                    ProofError::SizesReversed { .. } => {
                        AddCheckpointError::OldSizeTooLarge { old, size }
                    }
                    _ => bad_proof,
                },
            )?;
        }
    }
    Ok(cp)
}

/// The key id of an Ed25519 `cosignature/v1` key: `SHA-256(name || "\n" || 0x04 || key)[:4]`.
pub fn cosignature_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_COSIGNATURE_V1]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(d.get(..4).unwrap_or(&[0u8; 4]));
    id
}

/// The message a `cosignature/v1` signs: the header line, `time <timestamp>`, then the
/// checkpoint body (ending in its newline, without signature lines).
pub fn cosignature_message(checkpoint_body: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_HEADER}\ntime {timestamp}\n{checkpoint_body}")
}

/// A witness's signing key under its name. `Debug` shows the public side only.
pub struct Cosigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl Cosigner {
    /// A cosigner named `name` (a schema-less URL, as the spec recommends) with `key`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Cosigner {
            name: name.to_owned(),
            id: cosignature_key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public verifier of this cosigner's signatures.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The signature line (ending in a newline) cosigning `checkpoint_body` as of `timestamp`
    /// (seconds since the epoch, at most 2^63 - 1).
    pub fn cosign(&self, checkpoint_body: &str, timestamp: u64) -> Result<String, NoteError> {
        if i64::try_from(timestamp).is_err() {
            return Err(NoteError::Malformed {
                line: 1,
                reason: "timestamp exceeds 2^63 - 1",
            });
        }
        let sig = self
            .key
            .sign(cosignature_message(checkpoint_body, timestamp).as_bytes());
        let mut raw = Vec::with_capacity(COSIGNATURE_LEN);
        raw.extend_from_slice(&self.id);
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw)))
    }
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cosigner({})", self.verifier())
    }
}

/// A witness's public key: checks its `cosignature/v1` signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

/// A checkpoint with a verified cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The checkpoint body the cosignature covers (parsed; its log signature is the caller's
    /// to check with the log's key).
    pub checkpoint: Checkpoint,
    /// When the witness cosigned it (seconds since the epoch).
    pub timestamp: u64,
}

impl CosignatureVerifier {
    /// Parse `<name>+<hex key id>+<base64(0x04 || public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_vkey(
            text,
            ALG_COSIGNATURE_V1,
            "key is not an ed25519 cosignature/v1 key",
        )?;
        if cosignature_key_id(name, &key) != id {
            return Err(NoteError::VerifierKey {
                reason: "key id does not match name and key",
            });
        }
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The four-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.id
    }

    /// Check that `note` (a checkpoint with signature lines) carries a valid cosignature by
    /// this key; lines by other keys are ignored. With several, the latest time is returned.
    pub fn verify(&self, note: &str) -> Result<Cosigned, NoteError> {
        let (body, sigs) = split_note(note)?;
        let body_lines = body.matches('\n').count() + 1;
        let mut latest = None;
        for (i, line) in sigs.split_terminator('\n').enumerate() {
            let (name, id, rest) = parse_sig_line(line, body_lines + 1 + i)?;
            if name != self.name || id != self.id {
                continue;
            }
            let bad = || NoteError::BadSignature {
                key: self.name.clone(),
            };
            let timestamp = cosignature_time(&rest).ok_or_else(bad)?;
            let sig = rest
                .get(8..)
                .and_then(|s| Signature::from_slice(s).ok())
                .ok_or_else(bad)?;
            self.key
                .verify_strict(cosignature_message(body, timestamp).as_bytes(), &sig)
                .map_err(|_| bad())?;
            latest = latest.max(Some(timestamp));
        }
        let timestamp = latest.ok_or_else(|| NoteError::Unsigned {
            key: self.name.clone(),
        })?;
        Ok(Cosigned {
            checkpoint: Checkpoint::parse_body(body)?,
            timestamp,
        })
    }
}

/// The time of a cosignature's bytes after the key id (timestamp and signature): `None` unless
/// they are exactly 72 bytes with a time of at most 2^63 - 1.
fn cosignature_time(after_id: &[u8]) -> Option<u64> {
    if after_id.len() != COSIGNATURE_LEN - 4 {
        return None;
    }
    let t = u64::from_be_bytes(after_id.get(..8)?.try_into().ok()?);
    i64::try_from(t).ok().map(|_| t)
}

impl fmt::Display for CosignatureVerifier {
    /// The verifier key string, `<name>+<hex key id>+<base64(0x04 || public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_vkey(f, &self.name, self.id, ALG_COSIGNATURE_V1, &self.key)
    }
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureVerifier({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Tree, leaf_hash};

    const ORIGIN: &str = "example.com/log";

    fn log_key() -> SigningKey {
        SigningKey::from_bytes(&[3u8; 32])
    }

    fn cosigner() -> Cosigner {
        Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[9u8; 32])).unwrap()
    }

    fn tree(n: u64, fork_at: Option<u64>) -> Tree {
        let mut t = Tree::new();
        for i in 0..n {
            let x = if Some(i) == fork_at { 10_000 + i } else { i };
            t.push(leaf_hash(&x.to_be_bytes()));
        }
        t
    }

    fn signed(t: &Tree, size: u64) -> SignedCheckpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: t.root(size).unwrap(),
            extensions: vec![],
        }
        .sign(&log_key())
        .unwrap()
    }

    fn request(t: &Tree, old: u64, size: u64) -> AddCheckpoint {
        AddCheckpoint {
            old_size: old,
            proof: t.consistency_proof(old, size).unwrap(),
            checkpoint: signed(t, size).text,
        }
    }

    fn keys() -> Vec<Verifier> {
        vec![Verifier::new(ORIGIN, log_key().verifying_key()).unwrap()]
    }

    /// A native `cosignature/v1` verifier key from transparency-dev/formats
    /// (`note_cosigv1_test.go`), a deployed witness's: its key id follows the spec's formula.
    #[test]
    fn key_id_matches_a_published_witness_key() {
        let v = CosignatureVerifier::parse(
            "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
        )
        .unwrap();
        assert_eq!(v.key_id(), [0xda, 0x77, 0xad, 0xe7]);
        assert_eq!(
            v.to_string(),
            "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
        );
        // The same key as a note (0x01) key is not a cosignature key.
        assert!(
            CosignatureVerifier::parse(
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
    }

    /// The spec's example cosignature (tlog-cosignature, "Format") carries the time its
    /// signed-message example shows; transparency-dev's vector carries 1727964367, and a plain
    /// 68-byte note signature has no time.
    #[test]
    fn cosignature_times_of_published_examples() {
        let time = |b64: &str| {
            let raw = B64.decode(b64).unwrap();
            cosignature_time(&raw[4..])
        };
        assert_eq!(
            time(
                "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
            ),
            Some(1_679_315_147)
        );
        assert_eq!(
            time(
                "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
            ),
            Some(1_727_964_367)
        );
        assert_eq!(
            time(
                "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY="
            ),
            None
        );
    }

    #[test]
    fn the_signed_message_is_the_specs() {
        // tlog-cosignature, "Ed25519 signed message".
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            cosignature_message(body, 1_679_315_147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn cosign_and_verify_round_trip() {
        let c = cosigner();
        let v = CosignatureVerifier::parse(&c.verifier().to_string()).unwrap();
        assert_eq!(v, c.verifier());
        // The key id by hand: SHA-256(name || "\n" || 0x04 || key)[:4].
        let mut m = b"witness.example/w1\n\x04".to_vec();
        m.extend_from_slice(
            SigningKey::from_bytes(&[9u8; 32])
                .verifying_key()
                .as_bytes(),
        );
        assert_eq!(v.key_id(), Sha256::digest(&m)[..4]);

        let t = tree(10, None);
        let cp = signed(&t, 10);
        let body = cp.checkpoint.to_body();
        let line = c.cosign(&body, 1_700_000_000).unwrap();
        let raw = B64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        assert_eq!(raw.len(), 76);
        assert_eq!(&raw[..4], &v.key_id());
        assert_eq!(&raw[4..12], &1_700_000_000u64.to_be_bytes());
        let note = format!("{}{line}", cp.text);
        let ok = v.verify(&note).unwrap();
        assert_eq!(ok.timestamp, 1_700_000_000);
        assert_eq!(ok.checkpoint, cp.checkpoint);
        // The log's own signature still verifies beside it.
        SignedCheckpoint::open(&note, &keys()[0]).unwrap();
        // Without the cosignature, tampered, or with another witness's key: refused.
        assert!(matches!(
            v.verify(&cp.text),
            Err(NoteError::Unsigned { .. })
        ));
        let tampered = note.replacen("\n10\n", "\n11\n", 1);
        assert!(matches!(
            v.verify(&tampered),
            Err(NoteError::BadSignature { .. })
        ));
        // The time is signed: the same signature under another time fails.
        let mut retimed_raw = raw.clone();
        retimed_raw[4..12].copy_from_slice(&1_700_000_001u64.to_be_bytes());
        let retimed = note.replace(&B64.encode(&raw), &B64.encode(&retimed_raw));
        assert!(matches!(
            v.verify(&retimed),
            Err(NoteError::BadSignature { .. })
        ));
        let other = Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[8u8; 32]))
            .unwrap()
            .verifier();
        assert!(other.verify(&note).is_err());
        assert!(c.cosign(&body, 1 << 63).is_err());
    }

    #[test]
    fn request_bodies_round_trip_and_the_specs_example_parses() {
        let example = "old 20852014\n\
            PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
            jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
            5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
            /6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
            \n\
            example.com/behind-the-sofa\n\
            20852163\n\
            CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
            \n\
            \u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let req = AddCheckpoint::parse(example.as_bytes()).unwrap();
        assert_eq!(req.old_size, 20_852_014);
        assert_eq!(req.proof.len(), 4);
        assert_eq!(req.origin().unwrap(), "example.com/behind-the-sofa");
        assert_eq!(req.to_body(), example);

        let t = tree(20, None);
        let r = request(&t, 7, 20);
        assert_eq!(AddCheckpoint::parse(r.to_body().as_bytes()).unwrap(), r);
        let zero = request(&t, 0, 20);
        assert!(zero.to_body().starts_with("old 0\n\n"));
        assert_eq!(
            AddCheckpoint::parse(zero.to_body().as_bytes()).unwrap(),
            zero
        );

        let body = r.to_body();
        let proof_line = B64.encode(r.proof[0]);
        let many = format!(
            "old 1\n{}\n{}",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64),
            signed(&t, 20).text
        );
        for bad in [
            body.replacen("old 7", "old 07", 1),
            body.replacen("old 7", "old  7", 1),
            body.replacen("old 7", "olds 7", 1),
            body.replacen("old 7\n", "", 1),
            body.replacen(&proof_line, &proof_line.replace('=', ""), 1),
            body.replacen(&proof_line, "AAAA", 1),
            format!("old 7\n{proof_line}\n"),
            "old 7\n".into(),
            many,
            "x".repeat(MAX_REQUEST_BYTES + 1),
        ] {
            assert!(
                matches!(
                    AddCheckpoint::parse(bad.as_bytes()),
                    Err(AddCheckpointError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_witness_checks_in_the_specs_order() {
        let t = tree(40, None);
        let keys = keys();
        // First contact: old size 0, empty proof, taken on trust.
        let first = check_add_checkpoint(&request(&t, 0, 20), &keys, None).unwrap();
        assert_eq!(first.checkpoint.size, 20);
        let rec = Recorded {
            size: 20,
            root: t.root(20).unwrap(),
        };
        // Extending the recorded tree with a valid proof.
        let next = check_add_checkpoint(&request(&t, 20, 40), &keys, Some(&rec)).unwrap();
        assert_eq!(next.checkpoint.root, t.root(40).unwrap());
        // The same checkpoint again is cosigned again.
        check_add_checkpoint(&request(&t, 20, 20), &keys, Some(&rec)).unwrap();

        let status = |r: &AddCheckpoint, rec: Option<&Recorded>, keys: &[Verifier]| {
            check_add_checkpoint(r, keys, rec).unwrap_err().status()
        };
        // Unknown origin, then no trusted signature.
        assert_eq!(status(&request(&t, 20, 40), Some(&rec), &[]), 404);
        let stranger =
            Verifier::new(ORIGIN, SigningKey::from_bytes(&[4u8; 32]).verifying_key()).unwrap();
        assert_eq!(status(&request(&t, 20, 40), Some(&rec), &[stranger]), 403);
        // Old size past the checkpoint.
        let mut r = request(&t, 20, 40);
        r.old_size = 41;
        assert_eq!(status(&r, Some(&rec), &keys), 400);
        // An old size the witness did not record: 409 with the recorded size.
        let err = check_add_checkpoint(&request(&t, 10, 40), &keys, Some(&rec)).unwrap_err();
        assert_eq!(err, AddCheckpointError::Conflict { recorded: 20 });
        assert_eq!(err.status(), 409);
        assert_eq!(
            check_add_checkpoint(&request(&t, 0, 40), &keys, Some(&rec)).unwrap_err(),
            AddCheckpointError::Conflict { recorded: 20 }
        );
        assert_eq!(status(&request(&t, 10, 40), None, &keys), 409);
        // A proof that does not lead from the recorded root: 422.
        let mut r = request(&t, 20, 40);
        r.proof[0][0] ^= 1;
        assert_eq!(status(&r, Some(&rec), &keys), 422);
        let mut r = request(&t, 0, 20);
        r.proof = vec![[0u8; 32]];
        assert_eq!(status(&r, None, &keys), 422);
        // A fork: same size, other root (409); grown from another history (422).
        let fork = tree(40, Some(5));
        assert_eq!(status(&request(&fork, 20, 20), Some(&rec), &keys), 409);
        assert_eq!(status(&request(&fork, 20, 40), Some(&rec), &keys), 422);
        // A malformed checkpoint, signed or not, and a malformed note are bad requests.
        let mut r = request(&t, 20, 40);
        let root = B64.encode(t.root(40).unwrap());
        r.checkpoint =
            crate::note::sign_note(&format!("{ORIGIN}\n040\n{root}\n"), ORIGIN, &log_key())
                .unwrap();
        assert_eq!(status(&r, Some(&rec), &keys), 400);
        r.checkpoint = format!("{ORIGIN}\n40\n{root}\n");
        assert_eq!(status(&r, Some(&rec), &keys), 400);
    }
}
