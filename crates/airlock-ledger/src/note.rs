//! C2SP `tlog-checkpoint` bodies inside C2SP `signed-note` envelopes, signed with Ed25519.
//!
//! A signed checkpoint looks like this (the signature line starts with an em dash, U+2014):
//!
//! ```text
//! airlock.example/ledger
//! 42
//! 3LFqr1cNBn2o7ijbD0hgqn4oXn3mOvtbJmlYmbOsR2g=
//!
//! — airlock.example/ledger AAAAAd6ek...==
//! ```
//!
//! The key name is the log origin; the key id is the first four bytes of
//! `SHA-256(name || 0x0A || 0x01 || public key)`, and verifier keys are written as
//! `<name>+<hex key id>+<base64(0x01 || public key)>`, as in `golang.org/x/mod/sumdb/note`.
//! Signatures by other keys (witness cosignatures) are carried along and ignored.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The em dash that starts every signature line.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";
/// Ed25519 algorithm byte in key ids and verifier keys.
const ALG_ED25519: u8 = 0x01;
/// Refuse notes with more signature lines than this (a denial-of-service guard).
const MAX_SIGNATURES: usize = 100;

/// A note, checkpoint or verifier key that is malformed or not signed by the expected key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The verifier key string is malformed.
    #[error("verifier key is malformed: {reason}")]
    VerifierKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A key name that is empty or holds whitespace or `+`.
    #[error("key name is empty or contains whitespace or `+`")]
    KeyName,
    /// The note is malformed (line numbers are 1-based).
    #[error("signed note is malformed at line {line}: {reason}")]
    Malformed {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// No signature by the verifier key.
    #[error("signed note has no signature by key `{key}`")]
    Unsigned {
        /// The verifier key name.
        key: String,
    },
    /// A signature line with the verifier's name and key id that does not verify.
    #[error("signature by key `{key}` does not verify")]
    BadSignature {
        /// The verifier key name.
        key: String,
    },
    /// The checkpoint body is malformed.
    #[error("checkpoint is malformed at line {line}: {reason}")]
    Checkpoint {
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The checkpoint's origin is not the one expected.
    #[error("checkpoint origin does not match the verifier key name `{expected}`")]
    Origin {
        /// The expected origin.
        expected: String,
    },
}

/// The first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(d.get(..4).unwrap_or(&[0u8; 4]));
    id
}

/// The parts of a C2SP verifier key, `<name>+<hex key id>+<base64(alg || public key)>`, whose
/// algorithm byte must be `alg` (`wrong_alg` says so otherwise). The caller checks the key id,
/// which each algorithm derives its own way.
pub(crate) fn parse_vkey<'t>(
    text: &'t str,
    alg: u8,
    wrong_alg: &'static str,
) -> Result<(&'t str, [u8; 4], VerifyingKey), NoteError> {
    let bad = |reason| NoteError::VerifierKey { reason };
    // The base64 key may itself contain `+`: split at the first two only.
    let mut parts = text.trim_end_matches('\n').splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected `<name>+<key id>+<key>`"));
    };
    check_name(name)?;
    if id_hex.len() != 8 || id_hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("key id must be 8 lowercase hex digits"));
    }
    let mut id = [0u8; 4];
    hex::decode_to_slice(id_hex, &mut id).map_err(|_| bad("key id must be hex"))?;
    let raw = B64.decode(key_b64).map_err(|_| bad("key is not base64"))?;
    let Some((&found, key)) = raw.split_first() else {
        return Err(bad("key is empty"));
    };
    if found != alg {
        return Err(bad(wrong_alg));
    }
    let key: [u8; 32] = key.try_into().map_err(|_| bad("key is not 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| bad("key is not a valid point"))?;
    Ok((name, id, key))
}

pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::KeyName);
    }
    Ok(())
}

/// A public Ed25519 note verifier: a name and a key.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl Verifier {
    /// A verifier for `key` under `name` (the log origin).
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Verifier {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Parse `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_vkey(text, ALG_ED25519, "key algorithm is not ed25519")?;
        let v = Verifier::new(name, key)?;
        if v.id != id {
            return Err(NoteError::VerifierKey {
                reason: "key id does not match name and key",
            });
        }
        Ok(v)
    }

    /// The key name (the log origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The four-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.id
    }

    /// The Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Open a signed note: check it is well formed and signed by this key; return the text
    /// (the body, with its final newline) that the signature covers.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (body, sigs) = split_note(note)?;
        let body_lines = body.matches('\n').count() + 1;
        let mut found = false;
        for (i, line) in sigs.split_terminator('\n').enumerate() {
            let line_no = body_lines + 1 + i;
            let (name, id, sig) = parse_sig_line(line, line_no)?;
            if name != self.name || id != self.id {
                continue;
            }
            let sig = Signature::from_slice(&sig).map_err(|_| NoteError::BadSignature {
                key: self.name.clone(),
            })?;
            self.key
                .verify_strict(body.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature {
                    key: self.name.clone(),
                })?;
            found = true;
        }
        if found {
            Ok(body)
        } else {
            Err(NoteError::Unsigned {
                key: self.name.clone(),
            })
        }
    }
}

impl fmt::Display for Verifier {
    /// The verifier key string, `<name>+<hex key id>+<base64(0x01 || public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_vkey(f, &self.name, self.id, ALG_ED25519, &self.key)
    }
}

/// Writes a C2SP verifier key, `<name>+<hex key id>+<base64(alg || public key)>`.
pub(crate) fn write_vkey(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    id: [u8; 4],
    alg: u8,
    key: &VerifyingKey,
) -> fmt::Result {
    let mut raw = Vec::with_capacity(33);
    raw.push(alg);
    raw.extend_from_slice(key.as_bytes());
    write!(f, "{name}+{}+{}", hex::encode(id), B64.encode(raw))
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

/// Split a note into body (with its final newline) and signature block; check the shape.
pub(crate) fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    let malformed = |line, reason| NoteError::Malformed { line, reason };
    if !note.ends_with('\n') {
        return Err(malformed(
            note.matches('\n').count() + 1,
            "does not end in a newline",
        ));
    }
    let Some(blank) = note.rfind("\n\n") else {
        return Err(malformed(1, "no blank line before the signatures"));
    };
    let (body, rest) = note.split_at(blank + 1);
    let sigs = rest.get(1..).unwrap_or("");
    if body.is_empty() || sigs.is_empty() {
        return Err(malformed(1, "empty text or no signatures"));
    }
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(malformed(1, "control character"));
    }
    if sigs.matches('\n').count() > MAX_SIGNATURES {
        return Err(malformed(1, "too many signatures"));
    }
    Ok((body, sigs))
}

pub(crate) fn parse_sig_line(
    line: &str,
    line_no: usize,
) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    let malformed = |reason| NoteError::Malformed {
        line: line_no,
        reason,
    };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(malformed("signature line without em dash"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or(malformed("signature line without key name"))?;
    check_name(name).map_err(|_| malformed("bad key name in signature line"))?;
    let raw = B64
        .decode(b64)
        .map_err(|_| malformed("signature is not base64"))?;
    let (Some(id), Some(sig)) = (raw.get(..4), raw.get(4..)) else {
        return Err(malformed("signature too short"));
    };
    if sig.is_empty() {
        return Err(malformed("signature too short"));
    }
    let mut key_id = [0u8; 4];
    key_id.copy_from_slice(id);
    Ok((name, key_id, sig.to_vec()))
}

/// Who signed a note: each signature line's key name and key id, in order, without checking
/// any signature (for saying which key a note is signed by when it is not the one expected).
pub fn signers(note: &str) -> Result<Vec<(String, [u8; 4])>, NoteError> {
    let (body, sigs) = split_note(note)?;
    let body_lines = body.matches('\n').count() + 1;
    sigs.split_terminator('\n')
        .enumerate()
        .map(|(i, line)| {
            let (name, id, _) = parse_sig_line(line, body_lines + 1 + i)?;
            Ok((name.to_owned(), id))
        })
        .collect()
}

/// Sign `body` (which must end in a newline) as a note by `name`.
pub fn sign_note(body: &str, name: &str, key: &SigningKey) -> Result<String, NoteError> {
    check_name(name)?;
    if !body.ends_with('\n') || body.contains("\n\n") || body.starts_with('\n') {
        return Err(NoteError::Malformed {
            line: 1,
            reason: "text must be non-blank lines",
        });
    }
    let id = key_id(name, &key.verifying_key());
    let sig = key.sign(body.as_bytes());
    let mut raw = Vec::with_capacity(68);
    raw.extend_from_slice(&id);
    raw.extend_from_slice(&sig.to_bytes());
    Ok(format!("{body}\n{SIG_PREFIX}{name} {}\n", B64.encode(raw)))
}

/// A C2SP tlog-checkpoint: origin, tree size, root hash and extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log origin (also the signing key's name).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The tree root.
    pub root: Hash,
    /// Optional extension lines (non-empty, without newlines).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint body, one field per line, ending in a newline.
    pub fn to_body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parse a checkpoint body strictly.
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let bad = |line, reason| NoteError::Checkpoint { line, reason };
        let Some(body) = body.strip_suffix('\n') else {
            return Err(bad(1, "does not end in a newline"));
        };
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(bad(1, "empty origin"))?;
        let size_s = lines.next().ok_or(bad(2, "missing tree size"))?;
        if size_s.is_empty()
            || !size_s.bytes().all(|b| b.is_ascii_digit())
            || (size_s.len() > 1 && size_s.starts_with('0'))
        {
            return Err(bad(2, "tree size is not a decimal without leading zeros"));
        }
        let size: u64 = size_s
            .parse()
            .map_err(|_| bad(2, "tree size is too large"))?;
        let root_s = lines.next().ok_or(bad(3, "missing root hash"))?;
        let root_v = B64
            .decode(root_s)
            .map_err(|_| bad(3, "root hash is not base64"))?;
        let root: Hash = root_v
            .try_into()
            .map_err(|_| bad(3, "root hash is not 32 bytes"))?;
        if B64.encode(root) != root_s {
            return Err(bad(3, "root hash is not canonical base64"));
        }
        let mut extensions = Vec::new();
        for (i, l) in lines.enumerate() {
            if l.is_empty() {
                return Err(bad(4 + i, "empty extension line"));
            }
            extensions.push(l.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Sign this checkpoint with `key` under the origin as key name.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedCheckpoint, NoteError> {
        let text = sign_note(&self.to_body(), &self.origin, key)?;
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            text,
        })
    }
}

/// A checkpoint together with its signed-note text, as stored in the `checkpoint` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The full signed note.
    pub text: String,
}

impl SignedCheckpoint {
    /// Parse and verify a signed checkpoint; its origin must be the verifier's name.
    pub fn open(text: &str, verifier: &Verifier) -> Result<Self, NoteError> {
        let body = verifier.open(text)?;
        let checkpoint = Checkpoint::parse_body(body)?;
        if checkpoint.origin != verifier.name() {
            return Err(NoteError::Origin {
                expected: verifier.name().to_owned(),
            });
        }
        Ok(SignedCheckpoint {
            checkpoint,
            text: text.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn round_trip_and_key_string() {
        let k = key();
        let v = Verifier::new("example.com/log", k.verifying_key()).unwrap();
        let s = v.to_string();
        assert!(s.starts_with("example.com/log+"));
        assert_eq!(Verifier::parse(&s).unwrap(), v);
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 12,
            root: [9u8; 32],
            extensions: vec!["ext one".into()],
        };
        let sc = cp.sign(&k).unwrap();
        assert!(sc.text.contains("\n\n\u{2014} example.com/log "));
        let opened = SignedCheckpoint::open(&sc.text, &v).unwrap();
        assert_eq!(opened.checkpoint, cp);
    }

    /// The sumdb/note documentation example: key `PeterNeumann` with its published id.
    #[test]
    fn go_note_key_id_vector() {
        // From golang.org/x/mod/sumdb/note docs:
        // PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW
        let v =
            Verifier::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .unwrap();
        assert_eq!(v.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
        // The signed note from the same documentation.
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\
                    \n\
                    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let body = v.open(note).unwrap();
        assert!(body.starts_with("If you think"));
        let tampered = note.replace("answer", "Answer");
        // The matching private key from the same documentation reproduces the signature.
        let skey = B64
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        let seed: [u8; 32] = skey[1..].try_into().unwrap();
        let signed = sign_note(body, "PeterNeumann", &SigningKey::from_bytes(&seed)).unwrap();
        assert_eq!(signed, note);
        assert!(v.open(&tampered).is_err());
    }

    #[test]
    fn rejects_malformed() {
        let k = key();
        let v = Verifier::new("o", k.verifying_key()).unwrap();
        let sc = Checkpoint {
            origin: "o".into(),
            size: 1,
            root: [0; 32],
            extensions: vec![],
        }
        .sign(&k)
        .unwrap();
        for bad in [
            format!("x{}", sc.text),
            format!("{}x", sc.text),
            format!("{}junk\n", sc.text),
            sc.text.replace("\n1\n", "\n01\n"),
            sc.text.trim_end().to_string(),
        ] {
            assert!(SignedCheckpoint::open(&bad, &v).is_err(), "{bad:?}");
        }
        let other = Verifier::new("p", k.verifying_key()).unwrap();
        assert!(SignedCheckpoint::open(&sc.text, &other).is_err());
    }
}
