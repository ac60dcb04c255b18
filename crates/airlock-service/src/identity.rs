//! Unique users and service identities (45 CFR 164.312(a)(2)(i)), passwords hashed with
//! Argon2id, mandatory TOTP for people (164.312(d)), lockout after repeated failures, sessions
//! that end after inactivity and absolutely (automatic logoff, 164.312(a)(2)(iii)), and scoped,
//! expiring API tokens for services.
//!
//! Nothing secret is stored in the clear: passwords as Argon2id PHC strings, session and API
//! tokens as SHA-256 digests, TOTP secrets sealed with AES-256-GCM under a key derived from the
//! deployment's key hierarchy (bound to the principal id), so a copy of the database alone
//! gives an attacker no second factor.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use airlock_authz::{Action, Principal, PrincipalKind, Role};
use airlock_crypto::Secret;
use airlock_store::{Db, Scope};
use airlock_types::ActorId;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::totp;

/// Session and lockout rules.
#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
    /// A session ends this long after login, whatever happens.
    pub absolute_timeout: Duration,
    /// Consecutive failed logins before the account locks.
    pub max_failures: i64,
    /// How long a lock lasts.
    pub lockout: Duration,
    /// Shortest accepted password.
    pub min_password_len: usize,
    /// Longest lifetime of an API token.
    pub max_token_days: i64,
    /// How long a checked bearer credential is trusted without asking the database again (zero:
    /// every request asks). A credential in use is checked again by one request once half this
    /// time has passed, the others going on meanwhile. Revoking a token, disabling a principal
    /// or logging out through this server forgets every cached credential at once; a change
    /// made by another process (the CLI) takes effect within this time.
    pub credential_cache: std::time::Duration,
    /// Password checks one source address may start at once...
    pub login_burst: u32,
    /// ...and per second after that (Argon2id costs tens of milliseconds of CPU each).
    pub login_per_second: f64,
}

impl Default for IdentityPolicy {
    fn default() -> Self {
        IdentityPolicy {
            idle_timeout: Duration::minutes(15),
            absolute_timeout: Duration::hours(8),
            max_failures: 5,
            lockout: Duration::minutes(15),
            min_password_len: 12,
            max_token_days: 90,
            credential_cache: std::time::Duration::from_secs(1),
            login_burst: 20,
            login_per_second: 1.0,
        }
    }
}

/// Identity operations that failed. Messages name principals by id, never a password, code or
/// token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Wrong user name, password or code (deliberately not saying which).
    #[error("invalid credentials")]
    BadCredentials,
    /// No principal has this name (answered to the client exactly as `BadCredentials`; kept
    /// apart so the ledger never records a typed name that matches nobody, which could be
    /// anything, a patient's name included).
    #[error("invalid credentials")]
    UnknownPrincipal,
    /// Too many failures.
    #[error("account `{id}` is locked until {until}")]
    Locked {
        /// The principal.
        id: String,
        /// Until when (RFC 3339).
        until: String,
    },
    /// No such principal.
    #[error("no principal `{id}`")]
    NotFound {
        /// The principal.
        id: String,
    },
    /// The principal exists already.
    #[error("principal `{id}` already exists")]
    Exists {
        /// The principal.
        id: String,
    },
    /// Right password, and a TOTP code that was valid but has been used already.
    #[error("that TOTP code was used already; a code works once: wait for the next one")]
    CodeReused,
    /// A password that does not meet the policy.
    #[error("the password must be at least {min} characters")]
    WeakPassword {
        /// Minimum length.
        min: usize,
    },
    /// A password long enough but easy to guess.
    #[error("the password is too easy to guess: {rule}")]
    GuessablePassword {
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A malformed request (a password that is not UTF-8, a token with no scope...).
    #[error("{reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// A well-formed request that does not fit the principal as it is now (a token for a
    /// person or a disabled service, MFA for a service...).
    #[error("{reason}")]
    WrongKind {
        /// Why.
        reason: String,
    },
    /// The metadata store failed.
    #[error("identity store: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing or opening a secret failed.
    #[error("identity secret could not be sealed or opened")]
    Seal,
}

/// What a person needs to enrol their authenticator: shown once, never stored in the clear.
pub struct Enrolment {
    /// `otpauth://totp/...` for the authenticator app.
    pub otpauth_uri: String,
    /// The raw secret (for tests and scripted enrolment).
    pub secret: Secret,
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Enrolment(<redacted>)")
    }
}

/// The identifier system of a US National Provider Identifier.
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";

/// A clinician's practitioner identity in the clinical data: an identifier's system and value
/// (an NPI, or the hospital's own practitioner identifier). A treatment relationship is found
/// through it: an encounter, a care team or a general practitioner entry in the patient's
/// record naming the Practitioner with this identifier. A provider identifier, not patient
/// data.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PractitionerLink {
    /// The identifier's system (for an NPI, `http://hl7.org/fhir/sid/us-npi`).
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[^|\u0000-\u001f\u007f-\u009f]+$")
    )]
    pub system: String,
    /// The identifier's value.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[^|\u0000-\u001f\u007f-\u009f]+$")
    )]
    pub value: String,
}

impl PractitionerLink {
    /// A checked link: both parts present, short, without control characters or `|`.
    pub fn new(system: &str, value: &str) -> Result<Self, IdentityError> {
        let ok = |s: &str, max: usize| {
            !s.is_empty()
                && s.chars().count() <= max
                && !s.chars().any(|c| c.is_control() || c == '|')
        };
        if !ok(system, 256) {
            return Err(IdentityError::Invalid {
                reason: "`practitioner.system` must be 1 to 256 characters, without `|` or control characters".into(),
            });
        }
        if !ok(value, 64) {
            return Err(IdentityError::Invalid {
                reason: "`practitioner.value` must be 1 to 64 characters, without `|` or control characters".into(),
            });
        }
        Ok(PractitionerLink {
            system: system.to_string(),
            value: value.to_string(),
        })
    }

    /// `SYSTEM|VALUE` (FHIR's token search form), or a bare value, read as an NPI.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        match text.split_once('|') {
            Some((system, value)) => Self::new(system, value),
            None => Self::new(NPI_SYSTEM, text),
        }
    }
}

impl fmt::Display for PractitionerLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.value)
    }
}

/// A stored principal, without secrets.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PrincipalRecord {
    /// The id.
    pub id: ActorId,
    /// User or service.
    pub kind: &'static str,
    /// Roles in effect.
    pub roles: Vec<Role>,
    /// Roles granted but not yet confirmed by a second person (not in effect).
    pub pending_roles: Vec<Role>,
    /// Whether MFA is enrolled.
    pub mfa_enrolled: bool,
    /// Disabled principals cannot authenticate.
    pub disabled: bool,
    /// Locked until (RFC 3339), when locked.
    pub locked_until: Option<String>,
    /// When created.
    pub created_at: String,
    /// By whom.
    pub created_by: String,
}

/// A new session or API token: the bearer value is shown once.
pub struct IssuedToken {
    /// Token id (API tokens) or the session's short id.
    pub id: String,
    /// The bearer value.
    pub token: Secret,
    /// Absolute expiry (RFC 3339).
    pub expires_at: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl IssuedToken {
    /// The bearer value as text.
    pub fn bearer(&self) -> String {
        String::from_utf8_lossy(self.token.expose_secret()).into_owned()
    }
}

/// How a request authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A login session (password + TOTP).
    Session,
    /// A client certificate registered to a service, verified by mutual TLS, limited to some
    /// actions like a token.
    MutualTls {
        /// The actions it may be used for.
        scopes: Vec<Action>,
    },
    /// An API token limited to some actions.
    Token {
        /// The token id.
        id: String,
        /// The actions it may be used for.
        scopes: Vec<Action>,
    },
    /// The deployment's operator on this machine, holding its passphrase (the deployment's
    /// root), acting from the command line as this principal (`airlock dp ... --actor NAME`):
    /// the policy decides by the principal's own roles and budgets are the principal's; the
    /// ledger names the operator on the principal's behalf.
    Operator {
        /// The operating-system operator on the principal's behalf
        /// (`operator:<user>@<host>:<principal>`).
        operator: ActorId,
    },
}

/// An authenticated principal.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who, with their roles.
    pub principal: Principal,
    /// How.
    pub via: Via,
    /// Whether a second factor was presented (always for sessions).
    pub mfa: bool,
}

const SESSION_PREFIX: &str = "als_";
const ENROL_PREFIX: &str = "ale_";

/// Words that, with digits and symbols added, make most of the passwords found in breach
/// corpora's top lists (lowercase letters only; compared after dropping everything else).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "passw",
    "pass",
    "welcome",
    "letmein",
    "qwerty",
    "qwertyuiop",
    "asdfgh",
    "zxcvbn",
    "admin",
    "administrator",
    "iloveyou",
    "changeme",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "summer",
    "winter",
    "spring",
    "autumn",
    "secret",
    "hospital",
    "health",
    "doctor",
    "nurse",
    "patient",
    "airlock",
    "abc",
    "abcdef",
    "login",
    "master",
    "shadow",
    "trustno",
    "superman",
    "batman",
    "michael",
    "jennifer",
    "",
];

/// How long an enrolment token lasts.
pub const ENROLMENT_HOURS: i64 = 72;

/// Roles that reach PHI or approve or deploy models: granted by one person, in effect only
/// once a second person confirms (the two-person rule).
pub fn needs_second_person(role: Role) -> bool {
    matches!(
        role,
        Role::Clinician
            | Role::ClinicalReviewer
            | Role::PrivacyOfficer
            | Role::MlopsEngineer
            | Role::Auditor
            | Role::DeidExpert
    )
}

/// Roles only a person may hold: a service acts for systems, not as a reviewer or an officer.
pub fn person_only(role: Role) -> bool {
    matches!(
        role,
        Role::ClinicalReviewer | Role::PrivacyOfficer | Role::DeidExpert
    )
}

/// Actions a service's token may never carry: administration, emergency access and approvals
/// are people's.
pub fn person_only_action(action: Action) -> bool {
    matches!(
        action,
        Action::ManageUsers
            | Action::ManageTokens
            | Action::ConfirmRole
            | Action::ManageKeys
            | Action::BreakGlass
            | Action::ReviewBreakGlass
            | Action::ApproveModel
            | Action::SignExpertDetermination
            | Action::ManageDpBudget
    )
}

/// What a sweep of the identity rows found ([`Identities::reconcile`]).
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Rows checked.
    pub checked: usize,
    /// Rows that fail their seals.
    pub failing: Vec<FailingRow>,
}

/// A row that fails its seal: written by someone with database access and no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingRow {
    /// Its table.
    pub table: &'static str,
    /// The principal it is about (a session's or token's holder, a link's clinician).
    pub principal: String,
}

/// What `authenticate` writes after its read.
enum Followup {
    Nothing,
    Touch,
    Delete,
}
const TOKEN_PREFIX: &str = "alk_";

/// The identity store.
#[derive(Clone)]
pub struct Identities {
    db: Db,
    seal_key: Secret,
    issuer: String,
    policy: IdentityPolicy,
    /// A valid Argon2id hash of a random password, checked when the user does not exist so the
    /// response time does not say whether a name is taken.
    dummy_hash: String,
    /// Recently checked credentials, by token digest (see
    /// [`IdentityPolicy::credential_cache`]).
    cache: std::sync::Arc<std::sync::Mutex<CredentialCache>>,
    /// Seals the rows that carry authority (a principal's kind, roles, state and certificate;
    /// a session; a token) with an HMAC under a key derived from the identity seal key, which
    /// lives in the key hierarchy, not the database. A row inserted or edited by someone who
    /// can write the database but holds no key (a role added, a session or token inserted, a
    /// certificate swapped, a principal re-enabled) fails its seal and grants nothing.
    row_key: Secret,
    /// A file whose presence says the rows written before row seals existed were sealed once
    /// (at the first start after the upgrade); from then on an unsealed row is refused.
    adopted: Option<std::path::PathBuf>,
    adoption: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

/// What a principal's seal covers.
struct PrincipalSeal<'a> {
    id: &'a str,
    kind: &'a str,
    roles: &'a str,
    disabled: i64,
    cert: Option<&'a str>,
    cert_scopes: Option<&'a str>,
}

/// Most credentials the cache holds; past that it starts again empty.
const CACHE_CAP: usize = 10_000;

#[derive(Default)]
struct CredentialCache {
    entries: std::collections::HashMap<String, CachedCredential>,
    /// Bumped by [`Identities::forget_credentials`]: a lookup that began before it does not
    /// store its answer.
    generation: u64,
    /// Database lookups made for bearer credentials (misses and refreshes).
    lookups: u64,
}

/// A credential the database vouched for.
struct CachedCredential {
    found: Authenticated,
    /// When the lookup that vouched for it began (so it is trusted for at most the cache
    /// time after the database said so).
    checked: std::time::Instant,
    /// One request is asking the database again; the others go on with this answer
    /// meanwhile (it is still within the cache time).
    refreshing: bool,
}

/// What the cache says about a bearer credential.
enum CacheAnswer {
    /// Trusted: checked less than the cache time ago.
    Trusted(Authenticated),
    /// Ask the database; store the answer only if the cache's generation is still this one
    /// (`None`: do not store).
    Ask { generation: Option<u64> },
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn now_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn scopes_text(scopes: &[Action]) -> String {
    scopes
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_scopes(s: &str) -> Vec<Action> {
    s.split(',').filter_map(|a| a.parse().ok()).collect()
}

/// A credential's scopes: at least one action, none that only a person may take.
fn check_scopes(scopes: &[Action]) -> Result<(), IdentityError> {
    if scopes.is_empty() {
        return Err(IdentityError::Invalid {
            reason: "a service credential needs at least one scope".into(),
        });
    }
    if let Some(a) = scopes.iter().find(|a| person_only_action(**a)) {
        return Err(IdentityError::Invalid {
            reason: format!(
                "a service credential cannot carry `{}`: only people do that",
                a.as_str()
            ),
        });
    }
    Ok(())
}

fn parse_roles(s: &str) -> Vec<Role> {
    s.split(',').filter_map(|r| r.parse().ok()).collect()
}

/// Ids the ledger uses for principals nobody logs in as: a person or service created with one
/// could pass for them in the record.
fn is_reserved(id: &ActorId) -> bool {
    let s = id.as_str().to_ascii_lowercase();
    s == "anonymous" || s == "local-operator" || s.starts_with("operator:")
}

fn hash_password(password: &str) -> Result<String, IdentityError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| IdentityError::Seal)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| IdentityError::Seal)
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

impl Identities {
    /// Open the store. `seal_key` seals TOTP secrets (the deployment's identity seal key,
    /// [`airlock_store::Home::identity_seal_key`]).
    pub fn new(
        db: Db,
        seal_key: Secret,
        issuer: &str,
        policy: IdentityPolicy,
    ) -> Result<Self, IdentityError> {
        let dummy: [u8; 16] = rand::random();
        let row_key = airlock_crypto::derive_key(&seal_key, b"airlock identity row seal v1")
            .map_err(|_| IdentityError::Seal)?;
        Ok(Identities {
            db,
            seal_key,
            issuer: issuer.to_string(),
            policy,
            dummy_hash: hash_password(&hex::encode(dummy))?,
            cache: std::sync::Arc::default(),
            row_key,
            adopted: None,
            adoption: std::sync::Arc::default(),
        })
    }

    /// The same store, sealing once, at its first use, the rows an older version wrote without
    /// seals, and then writing `marker` (a file in the home, where database access alone cannot
    /// remove it to have rows inserted later adopted too).
    pub fn adopting_unsealed_rows(mut self, marker: std::path::PathBuf) -> Self {
        self.adopted = Some(marker);
        self
    }

    fn seal_row(&self, table: &str, fields: &[&str]) -> String {
        use hmac::Mac as _;
        let Ok(mut mac) =
            <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(self.row_key.expose_secret())
        else {
            return String::new();
        };
        mac.update(table.as_bytes());
        for f in fields {
            // Length-prefixed: no two field lists encode alike.
            mac.update(&(f.len() as u64).to_be_bytes());
            mac.update(f.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn row_is_sealed(&self, table: &str, fields: &[&str], mac: Option<&str>) -> bool {
        use subtle::ConstantTimeEq as _;
        let want = self.seal_row(table, fields);
        let sealed = mac
            .is_some_and(|m| !want.is_empty() && bool::from(m.as_bytes().ct_eq(want.as_bytes())));
        if !sealed {
            // Someone wrote this row without the key: an incident, not a login problem.
            tracing::warn!(table, "an identity row fails its seal and is refused");
        }
        sealed
    }

    fn principal_seal(&self, p: &PrincipalSeal<'_>) -> String {
        let disabled = p.disabled.to_string();
        self.seal_row(
            "principals",
            &[
                p.id,
                p.kind,
                p.roles,
                &disabled,
                p.cert.unwrap_or(""),
                p.cert_scopes.unwrap_or(""),
            ],
        )
    }

    fn principal_sealed(&self, p: &PrincipalSeal<'_>, mac: Option<&str>) -> bool {
        let disabled = p.disabled.to_string();
        self.row_is_sealed(
            "principals",
            &[
                p.id,
                p.kind,
                p.roles,
                &disabled,
                p.cert.unwrap_or(""),
                p.cert_scopes.unwrap_or(""),
            ],
            mac,
        )
    }

    /// A principal's sealed fields, read from `row` (columns `id`, `kind`, `roles`,
    /// `disabled`, `client_cert_sha256`, and the seal as `pmac`), and whether they hold.
    fn principal_row_sealed(&self, row: &sqlx::any::AnyRow) -> Result<bool, IdentityError> {
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let roles: String = row.try_get("roles")?;
        let disabled: i64 = row.try_get("disabled")?;
        let cert: Option<String> = row.try_get("client_cert_sha256")?;
        let cert_scopes: Option<String> = row.try_get("client_cert_scopes")?;
        let mac: Option<String> = row.try_get("pmac")?;
        Ok(self.principal_sealed(
            &PrincipalSeal {
                id: &id,
                kind: &kind,
                roles: &roles,
                disabled,
                cert: cert.as_deref(),
                cert_scopes: cert_scopes.as_deref(),
            },
            mac.as_deref(),
        ))
    }

    /// Seal, once, the rows written before seals existed (see [`Self::adopting_unsealed_rows`]):
    /// principals and tokens are sealed, unsealed sessions end (their people log in again).
    async fn adopt_unsealed_rows(&self) -> Result<(), IdentityError> {
        let Some(marker) = &self.adopted else {
            return Ok(());
        };
        self.adoption
            .get_or_try_init(|| async {
                if marker.exists() {
                    return Ok(());
                }
                let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
                let rows = sqlx::query(
                    "SELECT id, kind, roles, disabled, client_cert_sha256, client_cert_scopes \
                     FROM principals WHERE mac IS NULL",
                )
                .fetch_all(&mut *tx)
                .await?;
                for r in &rows {
                    let id: String = r.try_get("id")?;
                    let kind: String = r.try_get("kind")?;
                    let roles: String = r.try_get("roles")?;
                    let cert: Option<String> = r.try_get("client_cert_sha256")?;
                    let cert_scopes: Option<String> = r.try_get("client_cert_scopes")?;
                    let mac = self.principal_seal(&PrincipalSeal {
                        id: &id,
                        kind: &kind,
                        roles: &roles,
                        disabled: r.try_get("disabled")?,
                        cert: cert.as_deref(),
                        cert_scopes: cert_scopes.as_deref(),
                    });
                    sqlx::query("UPDATE principals SET mac = $1 WHERE id = $2")
                        .bind(mac)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                }
                let tokens = sqlx::query(
                    "SELECT token_hash, principal, scopes, expires_at FROM api_tokens WHERE mac IS NULL",
                )
                .fetch_all(&mut *tx)
                .await?;
                for t in &tokens {
                    let h: String = t.try_get("token_hash")?;
                    let mac = self.token_seal(
                        &h,
                        &t.try_get::<String, _>("principal")?,
                        &t.try_get::<String, _>("scopes")?,
                        &t.try_get::<String, _>("expires_at")?,
                    );
                    sqlx::query("UPDATE api_tokens SET mac = $1 WHERE token_hash = $2")
                        .bind(mac)
                        .bind(&h)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM sessions WHERE mac IS NULL")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                if let Err(e) = write_marker(marker) {
                    // The rows are sealed; without the marker the next start seals nothing new
                    // unless rows were written without seals meanwhile, which it would adopt.
                    tracing::error!(error = %e, "could not record that the identity rows were sealed");
                }
                // A deployment created by this version has nothing to adopt: nothing to say.
                if !rows.is_empty() || !tokens.is_empty() {
                    tracing::warn!(
                        principals = rows.len(),
                        tokens = tokens.len(),
                        "sealed the identity rows an older version wrote (once, at the first start after the upgrade)"
                    );
                }
                Ok::<(), IdentityError>(())
            })
            .await
            .map(|_| ())
    }

    /// `row` (a credential joined to its principal) if both its seal, over the token hash and
    /// `fields`, and its principal's hold.
    fn sealed_credential(
        &self,
        row: Option<sqlx::any::AnyRow>,
        table: &str,
        token_hash: &str,
        fields: &[&str],
        mac: &str,
    ) -> Result<Option<sqlx::any::AnyRow>, IdentityError> {
        let Some(r) = row else { return Ok(None) };
        let mut values = vec![token_hash.to_owned()];
        for f in fields {
            values.push(r.try_get::<String, _>(*f)?);
        }
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let sealed = self.row_is_sealed(
            table,
            &values,
            r.try_get::<Option<String>, _>(mac)?.as_deref(),
        ) && self.principal_row_sealed(&r)?;
        Ok(sealed.then_some(r))
    }

    fn session_seal(&self, token_hash: &str, principal: &str, expires_at: &str) -> String {
        self.seal_row("sessions", &[token_hash, principal, expires_at])
    }

    fn token_seal(
        &self,
        token_hash: &str,
        principal: &str,
        scopes: &str,
        expires_at: &str,
    ) -> String {
        self.seal_row("api_tokens", &[token_hash, principal, scopes, expires_at])
    }

    /// The session and lockout rules.
    pub fn policy(&self) -> &IdentityPolicy {
        &self.policy
    }

    fn seal(&self, id: &str, plaintext: &[u8]) -> Result<String, IdentityError> {
        let cipher = Aes256Gcm::new_from_slice(self.seal_key.expose_secret())
            .map_err(|_| IdentityError::Seal)?;
        let nonce: [u8; 12] = rand::random();
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| IdentityError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    fn open(&self, id: &str, sealed: &str) -> Result<Secret, IdentityError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| IdentityError::Seal)?;
        let (nonce, ct) = raw.split_at_checked(12).ok_or(IdentityError::Seal)?;
        let cipher = Aes256Gcm::new_from_slice(self.seal_key.expose_secret())
            .map_err(|_| IdentityError::Seal)?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: id.as_bytes(),
                },
            )
            .map(Secret::new)
            .map_err(|_| IdentityError::Seal)
    }

    fn new_enrolment(&self, id: &ActorId) -> Result<(Enrolment, String), IdentityError> {
        let secret: [u8; totp::SECRET_LEN] = rand::random();
        let sealed = self.seal(id.as_str(), &secret)?;
        Ok((
            Enrolment {
                otpauth_uri: totp::otpauth_uri(&self.issuer, id.as_str(), &secret),
                secret: Secret::new(secret.to_vec()),
            },
            sealed,
        ))
    }

    /// Create a person with a password and a fresh TOTP secret.
    pub async fn add_user(
        &self,
        by: &ActorId,
        id: &ActorId,
        roles: &[Role],
        password: &Secret,
    ) -> Result<Enrolment, IdentityError> {
        let pw =
            std::str::from_utf8(password.expose_secret()).map_err(|_| IdentityError::Invalid {
                reason: "the password is not valid UTF-8".into(),
            })?;
        self.check_password(id.as_str(), pw)?;
        let hash = hash_password(pw)?;
        let (enrolment, sealed) = self.new_enrolment(id)?;
        self.insert(
            by,
            id,
            PrincipalKind::User,
            roles,
            Some(&hash),
            Some(&sealed),
        )
        .await?;
        Ok(enrolment)
    }

    /// Create a service identity (it authenticates with API tokens only).
    pub async fn add_service(
        &self,
        by: &ActorId,
        id: &ActorId,
        roles: &[Role],
    ) -> Result<(), IdentityError> {
        if let Some(r) = roles.iter().find(|r| person_only(**r)) {
            return Err(IdentityError::Invalid {
                reason: format!(
                    "a service cannot hold the role {}: only a person can",
                    r.as_str()
                ),
            });
        }
        self.insert(by, id, PrincipalKind::Service, roles, None, None)
            .await
    }

    /// A service whose roles that reach PHI wait for a second person (see
    /// [`Identities::confirm_role`]); the others are in effect at once.
    pub async fn add_service_pending(
        &self,
        by: &ActorId,
        id: &ActorId,
        roles: &[Role],
    ) -> Result<Vec<Role>, IdentityError> {
        if let Some(r) = roles.iter().find(|r| person_only(**r)) {
            return Err(IdentityError::Invalid {
                reason: format!(
                    "a service cannot hold the role {}: only a person can",
                    r.as_str()
                ),
            });
        }
        let (now_roles, pending): (Vec<Role>, Vec<Role>) =
            roles.iter().partition(|r| !needs_second_person(**r));
        self.insert(by, id, PrincipalKind::Service, &now_roles, None, None)
            .await?;
        self.grant_pending(by, id, &pending).await?;
        Ok(pending)
    }

    /// The password rules: the policy's minimum length, enough different characters, not the
    /// principal's own id, and not a common word dressed up with digits and symbols. Errors
    /// name the rule, never the password.
    pub fn check_password(&self, id: &str, pw: &str) -> Result<(), IdentityError> {
        check_password(&self.policy, id, pw)
    }

    async fn insert(
        &self,
        by: &ActorId,
        id: &ActorId,
        kind: PrincipalKind,
        roles: &[Role],
        password_hash: Option<&str>,
        totp_secret: Option<&str>,
    ) -> Result<(), IdentityError> {
        if is_reserved(id) {
            return Err(IdentityError::Invalid {
                reason: format!("`{id}` is reserved for the deployment's own records"),
            });
        }
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM principals WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(IdentityError::Exists { id: id.to_string() });
        }
        let mac = self.principal_seal(&PrincipalSeal {
            id: id.as_str(),
            kind: kind.as_str(),
            roles: &roles_text(roles),
            disabled: 0,
            cert: None,
            cert_scopes: None,
        });
        sqlx::query(
            "INSERT INTO principals (id, kind, roles, password_hash, totp_secret, created_at, created_by, mac) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(kind.as_str())
        .bind(roles_text(roles))
        .bind(password_hash)
        .bind(totp_secret)
        .bind(now_text(Utc::now()))
        .bind(by.as_str())
        .bind(mac)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every principal.
    pub async fn list(&self) -> Result<Vec<PrincipalRecord>, IdentityError> {
        self.records(None).await
    }

    /// One principal, if it exists.
    pub async fn principal(&self, id: &ActorId) -> Result<Option<PrincipalRecord>, IdentityError> {
        Ok(self.records(Some(id)).await?.into_iter().next())
    }

    /// Every principal, or the one named `only`.
    async fn records(&self, only: Option<&ActorId>) -> Result<Vec<PrincipalRecord>, IdentityError> {
        const COLUMNS: &str = "SELECT id, kind, roles, totp_secret, disabled, locked_until, created_at, created_by FROM principals";
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let rows = match only {
            Some(id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE id = $1")))
                    .bind(id.as_str())
                    .fetch_all(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} ORDER BY id")))
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let Ok(id) = ActorId::new(id) else { continue };
            let kind: String = r.try_get("kind")?;
            out.push(PrincipalRecord {
                id,
                kind: if kind == "service" { "service" } else { "user" },
                roles: parse_roles(&r.try_get::<String, _>("roles")?),
                pending_roles: Vec::new(),
                mfa_enrolled: r.try_get::<Option<String>, _>("totp_secret")?.is_some(),
                disabled: r.try_get::<i64, _>("disabled")? != 0,
                locked_until: r
                    .try_get::<Option<String>, _>("locked_until")?
                    .filter(|t| parse_time(t).is_some_and(|t| t > Utc::now())),
                created_at: r.try_get("created_at")?,
                created_by: r.try_get("created_by")?,
            });
        }
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let grants = sqlx::query("SELECT principal, role FROM role_grants ORDER BY role")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        for g in grants {
            let who: String = g.try_get("principal")?;
            let role: String = g.try_get("role")?;
            if let (Some(rec), Ok(role)) = (
                out.iter_mut().find(|r| r.id.as_str() == who),
                role.parse::<Role>(),
            ) {
                rec.pending_roles.push(role);
            }
        }
        Ok(out)
    }

    /// Create a person who enrols themselves: no password, no second factor, the roles that
    /// need a second person pending, and a one-time enrolment token valid for
    /// [`ENROLMENT_HOURS`] (shown once; stored as a digest). Whoever creates the person never
    /// learns their password or TOTP secret.
    pub async fn invite_user(
        &self,
        by: &ActorId,
        id: &ActorId,
        roles: &[Role],
    ) -> Result<(IssuedToken, Vec<Role>), IdentityError> {
        let (now_roles, pending): (Vec<Role>, Vec<Role>) =
            roles.iter().partition(|r| !needs_second_person(**r));
        self.insert(by, id, PrincipalKind::User, &now_roles, None, None)
            .await?;
        self.grant_pending(by, id, &pending).await?;
        let token = self.enrolment_token(by, id).await?;
        Ok((token, pending))
    }

    /// A new one-time enrolment token for `id` (a person who lost their phone sets up a new
    /// second factor with it and their password). Earlier tokens for `id` stop working.
    pub async fn enrolment_token(
        &self,
        by: &ActorId,
        id: &ActorId,
    ) -> Result<IssuedToken, IdentityError> {
        let token = random_token(ENROL_PREFIX);
        let now = Utc::now();
        let expires = now + Duration::hours(ENROLMENT_HOURS);
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        sqlx::query("DELETE FROM enrolments WHERE principal = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO enrolments (token_hash, principal, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest(&token))
        .bind(id.as_str())
        .bind(by.as_str())
        .bind(now_text(now))
        .bind(now_text(expires))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IssuedToken {
            id: digest(&token).get(..12).unwrap_or("").to_string(),
            token: Secret::new(token.into_bytes()),
            expires_at: now_text(expires),
        })
    }

    /// Redeem an enrolment token: a new person sets their password (checked against the
    /// policy), a person re-enrolling proves theirs; either way a fresh TOTP secret is sealed
    /// and shown once, sessions end, and the token is spent. A wrong, spent or expired token
    /// and a wrong password all answer [`IdentityError::BadCredentials`].
    pub async fn enrol(
        &self,
        token: &str,
        password: &Secret,
        now: DateTime<Utc>,
    ) -> Result<(ActorId, Enrolment), IdentityError> {
        self.forget_credentials();
        let pw = std::str::from_utf8(password.expose_secret()).unwrap_or("");
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let row = sqlx::query(
            "SELECT e.principal, e.expires_at, p.password_hash, p.kind, p.disabled \
             FROM enrolments e JOIN principals p ON p.id = e.principal WHERE e.token_hash = $1",
        )
        .bind(digest(token))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(row) = row else {
            let _ = password_matches(pw, &self.dummy_hash);
            return Err(IdentityError::BadCredentials);
        };
        let id: String = row.try_get("principal")?;
        let expires: String = row.try_get("expires_at")?;
        let existing: Option<String> = row.try_get("password_hash")?;
        let live = parse_time(&expires).is_some_and(|t| t > now)
            && row.try_get::<String, _>("kind")? == "user"
            && row.try_get::<i64, _>("disabled")? == 0;
        let hash = match &existing {
            Some(h) => {
                if !password_matches(pw, h) || !live {
                    return Err(IdentityError::BadCredentials);
                }
                h.clone()
            }
            None => {
                if !live {
                    let _ = password_matches(pw, &self.dummy_hash);
                    return Err(IdentityError::BadCredentials);
                }
                self.check_password(&id, pw)?;
                hash_password(pw)?
            }
        };
        let actor = ActorId::new(id).map_err(|_| IdentityError::BadCredentials)?;
        let (enrolment, sealed) = self.new_enrolment(&actor)?;
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        // Spent by whoever deletes it first: two redemptions of one token cannot both win.
        let spent = sqlx::query("DELETE FROM enrolments WHERE token_hash = $1")
            .bind(digest(token))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if spent == 0 {
            return Err(IdentityError::BadCredentials);
        }
        sqlx::query(
            "UPDATE principals SET password_hash = $1, totp_secret = $2, totp_last_step = 0, \
             failed_logins = 0, locked_until = NULL WHERE id = $3",
        )
        .bind(hash)
        .bind(sealed)
        .bind(actor.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE principal = $1")
            .bind(actor.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((actor, enrolment))
    }

    /// Record roles granted to `id` that take effect only once a second person confirms them.
    pub async fn grant_pending(
        &self,
        by: &ActorId,
        id: &ActorId,
        roles: &[Role],
    ) -> Result<(), IdentityError> {
        if roles.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        for role in roles {
            sqlx::query(
                "INSERT INTO role_grants (principal, role, granted_by, granted_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(id.as_str())
            .bind(role.as_str())
            .bind(by.as_str())
            .bind(now_text(Utc::now()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A second person confirms a pending grant: the role takes effect. Refused when the
    /// confirmer is the person who granted it, or the person it was granted to.
    pub async fn confirm_role(
        &self,
        by: &ActorId,
        id: &ActorId,
        role: Role,
    ) -> Result<Vec<Role>, IdentityError> {
        self.forget_credentials();
        if by == id {
            return Err(IdentityError::WrongKind {
                reason: "nobody confirms a role granted to themselves".into(),
            });
        }
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let granted_by: Option<String> = sqlx::query_scalar(
            "SELECT granted_by FROM role_grants WHERE principal = $1 AND role = $2",
        )
        .bind(id.as_str())
        .bind(role.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(granted_by) = granted_by else {
            return Err(IdentityError::NotFound {
                id: format!("{id} (no pending {} grant)", role.as_str()),
            });
        };
        if granted_by == by.as_str() {
            return Err(IdentityError::WrongKind {
                reason: "the person who granted a role cannot also confirm it".into(),
            });
        }
        let row = sqlx::query(
            "SELECT id, kind, roles, disabled, client_cert_sha256, client_cert_scopes, mac AS pmac FROM principals WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(IdentityError::NotFound { id: id.to_string() });
        };
        // A role is added only to a row this deployment wrote.
        if !self.principal_row_sealed(&row)? {
            return Err(IdentityError::NotFound { id: id.to_string() });
        }
        let mut now = parse_roles(&row.try_get::<String, _>("roles")?);
        if !now.contains(&role) {
            now.push(role);
        }
        let kind: String = row.try_get("kind")?;
        let cert: Option<String> = row.try_get("client_cert_sha256")?;
        let cert_scopes: Option<String> = row.try_get("client_cert_scopes")?;
        let mac = self.principal_seal(&PrincipalSeal {
            id: id.as_str(),
            kind: &kind,
            roles: &roles_text(&now),
            disabled: row.try_get("disabled")?,
            cert: cert.as_deref(),
            cert_scopes: cert_scopes.as_deref(),
        });
        sqlx::query("UPDATE principals SET roles = $1, mac = $2 WHERE id = $3")
            .bind(roles_text(&now))
            .bind(mac)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM role_grants WHERE principal = $1 AND role = $2")
            .bind(id.as_str())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        // The practitioner identity granted with the clinician role is confirmed with it.
        if role == Role::Clinician {
            let pending = sqlx::query(
                "SELECT system, value FROM practitioner_links \
                 WHERE principal = $1 AND confirmed_by IS NULL",
            )
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = pending {
                let link = PractitionerLink {
                    system: r.try_get("system")?,
                    value: r.try_get("value")?,
                };
                sqlx::query(
                    "UPDATE practitioner_links SET confirmed_by = $1, mac = $2 WHERE principal = $3",
                )
                .bind(by.as_str())
                .bind(self.link_seal(id.as_str(), &link, by.as_str()))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(now)
    }

    /// Link `id` to a practitioner identity at once (the local operator, who holds the
    /// deployment passphrase, as with the roles `users add` gives).
    pub async fn link_practitioner(
        &self,
        by: &ActorId,
        id: &ActorId,
        link: &PractitionerLink,
    ) -> Result<(), IdentityError> {
        self.write_link(by, id, link, Some(by)).await
    }

    /// Link `id` to a practitioner identity, pending: it takes effect when a second person
    /// confirms the clinician role granted with it ([`Identities::confirm_role`]), so whoever
    /// grants the role cannot also choose, alone, whose patients it opens.
    pub async fn link_practitioner_pending(
        &self,
        by: &ActorId,
        id: &ActorId,
        link: &PractitionerLink,
    ) -> Result<(), IdentityError> {
        self.write_link(by, id, link, None).await
    }

    async fn write_link(
        &self,
        by: &ActorId,
        id: &ActorId,
        link: &PractitionerLink,
        confirmed_by: Option<&ActorId>,
    ) -> Result<(), IdentityError> {
        let mac = confirmed_by.map(|c| self.link_seal(id.as_str(), link, c.as_str()));
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        sqlx::query(
            "INSERT INTO practitioner_links (principal, system, value, linked_by, linked_at, confirmed_by, mac) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (principal) DO UPDATE SET system = $2, value = $3, linked_by = $4, \
             linked_at = $5, confirmed_by = $6, mac = $7",
        )
        .bind(id.as_str())
        .bind(&link.system)
        .bind(&link.value)
        .bind(by.as_str())
        .bind(now_text(Utc::now()))
        .bind(confirmed_by.map(ActorId::as_str))
        .bind(mac)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    fn link_seal(&self, id: &str, link: &PractitionerLink, confirmed_by: &str) -> String {
        self.seal_row(
            "practitioner_links",
            &[id, &link.system, &link.value, confirmed_by],
        )
    }

    fn link_sealed(
        &self,
        id: &str,
        link: &PractitionerLink,
        confirmed_by: &str,
        mac: Option<&str>,
    ) -> bool {
        self.row_is_sealed(
            "practitioner_links",
            &[id, &link.system, &link.value, confirmed_by],
            mac,
        )
    }

    /// The practitioner identity `id` is linked to: confirmed and sealed, else none (a link
    /// written without the deployment's key, or not yet confirmed, links nobody).
    pub async fn practitioner(
        &self,
        id: &ActorId,
    ) -> Result<Option<PractitionerLink>, IdentityError> {
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let row = sqlx::query(
            "SELECT system, value, confirmed_by, mac FROM practitioner_links \
             WHERE principal = $1 AND confirmed_by IS NOT NULL",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(r) = row else { return Ok(None) };
        let link = PractitionerLink {
            system: r.try_get("system")?,
            value: r.try_get("value")?,
        };
        let confirmed_by: String = r.try_get("confirmed_by")?;
        let mac: Option<String> = r.try_get("mac")?;
        let sealed = self.link_sealed(id.as_str(), &link, &confirmed_by, mac.as_deref());
        Ok(sealed.then_some(link))
    }

    /// Disable a principal and end its sessions and tokens.
    pub async fn disable(&self, id: &ActorId) -> Result<(), IdentityError> {
        self.forget_credentials();
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let row =
            sqlx::query("SELECT kind, roles, client_cert_sha256, client_cert_scopes FROM principals WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else {
            return Err(IdentityError::NotFound { id: id.to_string() });
        };
        let (kind, roles): (String, String) = (row.try_get("kind")?, row.try_get("roles")?);
        let cert: Option<String> = row.try_get("client_cert_sha256")?;
        let cert_scopes: Option<String> = row.try_get("client_cert_scopes")?;
        let mac = self.principal_seal(&PrincipalSeal {
            id: id.as_str(),
            kind: &kind,
            roles: &roles,
            disabled: 1,
            cert: cert.as_deref(),
            cert_scopes: cert_scopes.as_deref(),
        });
        sqlx::query("UPDATE principals SET disabled = 1, mac = $1 WHERE id = $2")
            .bind(mac)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE principal = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE principal = $2 AND revoked_at IS NULL",
        )
        .bind(now_text(Utc::now()))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Give a person a new TOTP secret (a lost phone), ending their sessions.
    pub async fn reset_mfa(&self, id: &ActorId) -> Result<Enrolment, IdentityError> {
        self.forget_credentials();
        let rec = self
            .principal(id)
            .await?
            .ok_or_else(|| IdentityError::NotFound { id: id.to_string() })?;
        if rec.kind != "user" {
            return Err(IdentityError::WrongKind {
                reason: "services authenticate with tokens, not MFA".into(),
            });
        }
        let (enrolment, sealed) = self.new_enrolment(id)?;
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        sqlx::query("UPDATE principals SET totp_secret = $1, totp_last_step = 0 WHERE id = $2")
            .bind(sealed)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE principal = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(enrolment)
    }

    /// Password + TOTP → a session. Counts failures and locks the account after too many.
    pub async fn login(
        &self,
        username: &str,
        password: &Secret,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<(ActorId, IssuedToken), IdentityError> {
        self.adopt_unsealed_rows().await?;
        let pw = std::str::from_utf8(password.expose_secret()).unwrap_or("");
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let row = sqlx::query(
            "SELECT id, kind, roles, password_hash, totp_secret, totp_last_step, failed_logins, locked_until, \
             disabled, client_cert_sha256, client_cert_scopes, mac AS pmac FROM principals WHERE id = $1",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        // Reads end here; every write below is one statement or starts its own transaction
        // with a write, so concurrent logins never hold a read that must upgrade.
        tx.commit().await?;
        // A row written without the key is no principal at all.
        let row = match row {
            Some(r) if self.principal_row_sealed(&r)? => Some(r),
            _ => None,
        };
        let Some(row) = row else {
            // Same work as a real check, so timing does not reveal that the name is unknown.
            let _ = password_matches(pw, &self.dummy_hash);
            return Err(IdentityError::UnknownPrincipal);
        };
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let locked_until: Option<String> = row.try_get("locked_until")?;
        if let Some(until) = locked_until.as_deref().and_then(parse_time)
            && until > now
        {
            // Same work as a real check: a locked account must not answer faster than a live
            // one (the caller answers both alike, so neither says the name exists).
            let _ = password_matches(pw, &self.dummy_hash);
            return Err(IdentityError::Locked {
                id,
                until: now_text(until),
            });
        }
        let hash: Option<String> = row.try_get("password_hash")?;
        let sealed: Option<String> = row.try_get("totp_secret")?;
        let last_step: i64 = row.try_get("totp_last_step")?;
        let disabled = row.try_get::<i64, _>("disabled")? != 0;
        let password_ok = hash.as_deref().is_some_and(|h| password_matches(pw, h));
        let checked = match (&sealed, password_ok) {
            (Some(s), true) => {
                let secret = self.open(&id, s)?;
                totp::check(
                    secret.expose_secret(),
                    code,
                    u64::try_from(now.timestamp()).unwrap_or(0),
                    u64::try_from(last_step).unwrap_or(0),
                )
            }
            _ => totp::Check::Wrong,
        };
        let live = kind == "user" && !disabled;
        let reused = live && checked == totp::Check::Reused;
        let step = match checked {
            totp::Check::Valid(step) if live => Some(step),
            _ => None,
        };
        let Some(step) = step else {
            let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
            sqlx::query("UPDATE principals SET failed_logins = failed_logins + 1 WHERE id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let until = now_text(now + self.policy.lockout);
            let locked = sqlx::query(
                "UPDATE principals SET failed_logins = 0, locked_until = $1 WHERE id = $2 AND failed_logins >= $3",
            )
            .bind(&until)
            .bind(&id)
            .bind(self.policy.max_failures)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            tx.commit().await?;
            return if locked {
                Err(IdentityError::Locked { id, until })
            } else if reused {
                // The password was right: the person typed a code twice, or someone replays
                // one. Saying so tells them to wait for the next code; it still counts as a
                // failure.
                Err(IdentityError::CodeReused)
            } else {
                Err(IdentityError::BadCredentials)
            };
        };
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        // Compare-and-set on the last step used: of two concurrent logins with one code, one
        // wins and the other is refused as a replay.
        let fresh = sqlx::query(
            "UPDATE principals SET failed_logins = 0, locked_until = NULL, totp_last_step = $1 \
             WHERE id = $2 AND totp_last_step < $1",
        )
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if fresh == 0 {
            return Err(IdentityError::CodeReused);
        }
        let token = random_token(SESSION_PREFIX);
        let expires = now + self.policy.absolute_timeout;
        let mac = self.session_seal(&digest(&token), &id, &now_text(expires));
        sqlx::query(
            "INSERT INTO sessions (token_hash, principal, created_at, last_seen, expires_at, mac) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(digest(&token))
        .bind(&id)
        .bind(now_text(now))
        .bind(now_text(now))
        .bind(now_text(expires))
        .bind(mac)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let actor = ActorId::new(id).map_err(|_| IdentityError::BadCredentials)?;
        Ok((
            actor,
            IssuedToken {
                id: digest(&token).get(..12).unwrap_or("").to_string(),
                token: Secret::new(token.into_bytes()),
                expires_at: now_text(expires),
            },
        ))
    }

    /// End a session.
    pub async fn logout(&self, bearer: &str) -> Result<(), IdentityError> {
        self.forget_credentials();
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(digest(bearer))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Issue an API token for a service, limited to `scopes`, expiring in `days`.
    pub async fn issue_token(
        &self,
        principal: &ActorId,
        scopes: &[Action],
        days: i64,
    ) -> Result<IssuedToken, IdentityError> {
        if days < 1 || days > self.policy.max_token_days {
            return Err(IdentityError::Invalid {
                reason: format!(
                    "a token lives between 1 and {} days",
                    self.policy.max_token_days
                ),
            });
        }
        check_scopes(scopes)?;
        let rec = self
            .principal(principal)
            .await?
            .ok_or_else(|| IdentityError::NotFound {
                id: principal.to_string(),
            })?;
        if rec.kind != "service" || rec.disabled {
            return Err(IdentityError::WrongKind {
                reason: "API tokens are for enabled service identities; people log in with MFA"
                    .into(),
            });
        }
        let token = random_token(TOKEN_PREFIX);
        let id = hex::encode(rand::random::<[u8; 8]>());
        let now = Utc::now();
        let expires = now + Duration::days(days);
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let scopes = scopes
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mac = self.token_seal(
            &digest(&token),
            principal.as_str(),
            &scopes,
            &now_text(expires),
        );
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, principal, scopes, created_at, expires_at, mac) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(digest(&token))
        .bind(principal.as_str())
        .bind(scopes)
        .bind(now_text(now))
        .bind(now_text(expires))
        .bind(mac)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IssuedToken {
            id,
            token: Secret::new(token.into_bytes()),
            expires_at: now_text(expires),
        })
    }

    /// Register the SHA-256 fingerprint of a service's client certificate (mutual TLS), and the
    /// actions requests over it may take (as a token's scopes: at least one, none that only a
    /// person takes).
    pub async fn set_client_cert(
        &self,
        id: &ActorId,
        fingerprint: &str,
        scopes: &[Action],
    ) -> Result<(), IdentityError> {
        check_scopes(scopes)?;
        let rec = self
            .principal(id)
            .await?
            .ok_or_else(|| IdentityError::NotFound { id: id.to_string() })?;
        if rec.kind != "service" {
            return Err(IdentityError::WrongKind {
                reason: "client certificates are for service identities".into(),
            });
        }
        let fingerprint = fingerprint.to_ascii_lowercase();
        let scopes = scopes_text(scopes);
        let mac = self.principal_seal(&PrincipalSeal {
            id: id.as_str(),
            kind: rec.kind,
            roles: &roles_text(&rec.roles),
            disabled: i64::from(rec.disabled),
            cert: Some(&fingerprint),
            cert_scopes: Some(&scopes),
        });
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        sqlx::query(
            "UPDATE principals SET client_cert_sha256 = $1, client_cert_scopes = $2, mac = $3 WHERE id = $4",
        )
            .bind(&fingerprint)
            .bind(&scopes)
            .bind(mac)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The enabled service whose registered client certificate has this fingerprint.
    pub async fn authenticate_cert(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Authenticated>, IdentityError> {
        self.adopt_unsealed_rows().await?;
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let row = sqlx::query(
            "SELECT id, kind, roles, disabled, client_cert_sha256, client_cert_scopes, mac AS pmac FROM principals \
             WHERE client_cert_sha256 = $1 AND kind = 'service' AND disabled = 0",
        )
        .bind(fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(r) = row else { return Ok(None) };
        if !self.principal_row_sealed(&r)? {
            return Ok(None);
        }
        let Ok(id) = ActorId::new(r.try_get::<String, _>("id")?) else {
            return Ok(None);
        };
        // A certificate registered before scopes existed carries none, so it may do nothing
        // until it is registered again with its scopes.
        let scopes = parse_scopes(
            &r.try_get::<Option<String>, _>("client_cert_scopes")?
                .unwrap_or_default(),
        );
        Ok(Some(Authenticated {
            principal: Principal::service(id, parse_roles(&r.try_get::<String, _>("roles")?)),
            via: Via::MutualTls { scopes },
            mfa: false,
        }))
    }

    /// A bearer credential presented over mutual TLS. A service's token with the client
    /// certificate registered to the same service is two factors (a secret it knows, a private
    /// key it holds): `mfa` holds, and the request may take only the actions both credentials
    /// allow. A certificate registered to another service makes the pair worthless (someone
    /// holds one service's token and another's key); one registered to nobody adds nothing.
    /// A person's session is unchanged by a certificate.
    pub async fn authenticate_with_cert(
        &self,
        bearer: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Authenticated>, IdentityError> {
        let Some(mut who) = self.authenticate(bearer, now).await? else {
            return Ok(None);
        };
        let Via::Token { id, scopes } = &who.via else {
            return Ok(Some(who));
        };
        match self.authenticate_cert(fingerprint).await? {
            None => Ok(Some(who)),
            Some(cert) if cert.principal.id == who.principal.id => {
                let Via::MutualTls { scopes: held } = &cert.via else {
                    return Ok(Some(who));
                };
                let both = scopes
                    .iter()
                    .copied()
                    .filter(|a| held.contains(a))
                    .collect();
                who.via = Via::Token {
                    id: id.clone(),
                    scopes: both,
                };
                who.mfa = true;
                Ok(Some(who))
            }
            Some(_) => {
                tracing::warn!("a token presented with another service's client certificate");
                Ok(None)
            }
        }
    }

    /// Check the seal of every row that carries authority: principals, sessions, API tokens
    /// and confirmed practitioner links. A failing row already grants nothing (every read checks
    /// its seal); the sweep finds the ones nobody has tried to use yet, so that tampering with
    /// the database is seen when it happens, not when it is first exploited. Nothing changes.
    pub async fn reconcile(&self) -> Result<Reconciliation, IdentityError> {
        self.adopt_unsealed_rows().await?;
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let principals = sqlx::query(
            "SELECT id, kind, roles, disabled, client_cert_sha256, client_cert_scopes, mac AS pmac \
             FROM principals",
        )
        .fetch_all(&mut *tx)
        .await?;
        let sessions = sqlx::query("SELECT token_hash, principal, expires_at, mac FROM sessions")
            .fetch_all(&mut *tx)
            .await?;
        let tokens = sqlx::query(
            "SELECT token_hash, principal, scopes, expires_at, mac FROM api_tokens \
             WHERE revoked_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        let links = sqlx::query(
            "SELECT principal, system, value, confirmed_by, mac FROM practitioner_links \
             WHERE confirmed_by IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Reconciliation::default();
        let mut check = |table: &'static str, principal: String, sealed: bool| {
            out.checked += 1;
            if !sealed {
                out.failing.push(FailingRow { table, principal });
            }
        };
        for r in &principals {
            check(
                "principals",
                r.try_get("id")?,
                self.principal_row_sealed(r)?,
            );
        }
        for r in &sessions {
            let (h, who, exp): (String, String, String) = (
                r.try_get("token_hash")?,
                r.try_get("principal")?,
                r.try_get("expires_at")?,
            );
            let mac: Option<String> = r.try_get("mac")?;
            let sealed = self.row_is_sealed("sessions", &[&h, &who, &exp], mac.as_deref());
            check("sessions", who, sealed);
        }
        for r in &tokens {
            let (h, who, scopes, exp): (String, String, String, String) = (
                r.try_get("token_hash")?,
                r.try_get("principal")?,
                r.try_get("scopes")?,
                r.try_get("expires_at")?,
            );
            let mac: Option<String> = r.try_get("mac")?;
            let sealed =
                self.row_is_sealed("api_tokens", &[&h, &who, &scopes, &exp], mac.as_deref());
            check("api_tokens", who, sealed);
        }
        for r in &links {
            let (who, by): (String, String) = (r.try_get("principal")?, r.try_get("confirmed_by")?);
            let link = PractitionerLink {
                system: r.try_get("system")?,
                value: r.try_get("value")?,
            };
            let mac: Option<String> = r.try_get("mac")?;
            let sealed = self.link_sealed(&who, &link, &by, mac.as_deref());
            check("practitioner_links", who, sealed);
        }
        Ok(out)
    }

    /// Revoke an API token.
    pub async fn revoke_token(&self, id: &str) -> Result<(), IdentityError> {
        self.forget_credentials();
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_text(Utc::now()))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Err(IdentityError::NotFound { id: id.to_string() });
        }
        Ok(())
    }

    /// Who holds this bearer value, if it is a live session or token. A session's idle clock
    /// restarts.
    pub async fn authenticate(
        &self,
        bearer: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Authenticated>, IdentityError> {
        let h = digest(bearer);
        let generation = match self.cached(&h) {
            CacheAnswer::Trusted(a) => return Ok(Some(a)),
            CacheAnswer::Ask { generation } => generation,
        };
        let asked = std::time::Instant::now();
        let found = self.authenticate_uncached(bearer, &h, now).await;
        self.remember(&h, found.as_ref().ok(), generation, asked);
        found
    }

    /// The cache's answer for a credential digest. A credential in steady use is asked
    /// about again by one request once half the cache time has passed, while the others go
    /// on with the cached answer; so it never expires under load, and the requests arriving
    /// at expiry do not all ask the database at once (at 5,000 requests/s that stampede,
    /// once a second, delayed every request behind it by 5 to 14 ms).
    fn cached(&self, digest: &str) -> CacheAnswer {
        let ttl = self.policy.credential_cache;
        let Ok(mut c) = self.cache.lock() else {
            return CacheAnswer::Ask { generation: None };
        };
        let generation = Some(c.generation);
        if let Some(e) = c.entries.get_mut(digest) {
            let age = e.checked.elapsed();
            if age < ttl {
                if e.refreshing || age < ttl / 2 {
                    return CacheAnswer::Trusted(e.found.clone());
                }
                e.refreshing = true;
            }
        }
        c.lookups += 1;
        CacheAnswer::Ask { generation }
    }

    /// Store what the database said about a credential (`found`: `None` when the lookup
    /// failed) if nothing was forgotten since the lookup began.
    fn remember(
        &self,
        digest: &str,
        found: Option<&Option<Authenticated>>,
        generation: Option<u64>,
        asked: std::time::Instant,
    ) {
        let Ok(mut c) = self.cache.lock() else {
            return;
        };
        match found {
            Some(Some(a))
                if !self.policy.credential_cache.is_zero() && generation == Some(c.generation) =>
            {
                if c.entries.len() >= CACHE_CAP && !c.entries.contains_key(digest) {
                    c.entries.clear();
                }
                c.entries.insert(
                    digest.to_string(),
                    CachedCredential {
                        found: a.clone(),
                        checked: asked,
                        refreshing: false,
                    },
                );
            }
            // No longer valid: nobody goes on with the old answer.
            Some(None) => {
                c.entries.remove(digest);
            }
            // The lookup failed, or credentials were forgotten meanwhile: the old answer (if
            // any) lasts until its time is up, and the next request may ask again.
            _ => {
                if let Some(e) = c.entries.get_mut(digest) {
                    e.refreshing = false;
                }
            }
        }
    }

    /// Database lookups made for bearer credentials since start (cache misses and
    /// refreshes).
    pub fn credential_lookups(&self) -> u64 {
        self.cache.lock().map(|c| c.lookups).unwrap_or(0)
    }

    /// Forget every cached credential (after any change that could end one).
    pub fn forget_credentials(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.entries.clear();
            c.generation += 1;
        }
    }

    async fn authenticate_uncached(
        &self,
        bearer: &str,
        h: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Authenticated>, IdentityError> {
        // Read only inside the transaction: a read that upgrades to a write would make
        // concurrent requests on one session collide (SQLite answers "database is locked"
        // at once for a deferred transaction's upgrade). The touch and the clean-up follow,
        // each a single statement.
        self.adopt_unsealed_rows().await?;
        let mut followup = Followup::Nothing;
        let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
        let found = if bearer.starts_with(SESSION_PREFIX) {
            let row = sqlx::query(
                "SELECT s.last_seen, s.expires_at, s.mac AS smac, p.id, p.kind, p.roles, p.disabled, \
                 p.client_cert_sha256, p.client_cert_scopes, p.mac AS pmac \
                 FROM sessions s JOIN principals p ON p.id = s.principal WHERE s.token_hash = $1",
            )
            .bind(h)
            .fetch_optional(&mut *tx)
            .await?;
            let row = self.sealed_credential(row, "sessions", h, &["id", "expires_at"], "smac")?;
            match row {
                None => None,
                Some(r) => {
                    let last: Option<DateTime<Utc>> =
                        parse_time(&r.try_get::<String, _>("last_seen")?);
                    let exp: Option<DateTime<Utc>> =
                        parse_time(&r.try_get::<String, _>("expires_at")?);
                    let live = last.is_some_and(|l| now - l <= self.policy.idle_timeout)
                        && exp.is_some_and(|e| now < e)
                        && r.try_get::<i64, _>("disabled")? == 0;
                    if live {
                        // Touch at most once a few seconds, to keep writes off the hot path.
                        if last.is_some_and(|l| now - l > Duration::seconds(5)) {
                            followup = Followup::Touch;
                        }
                        Some((
                            r.try_get::<String, _>("id")?,
                            r.try_get::<String, _>("roles")?,
                            Via::Session,
                            PrincipalKind::User,
                        ))
                    } else {
                        followup = Followup::Delete;
                        None
                    }
                }
            }
        } else if bearer.starts_with(TOKEN_PREFIX) {
            let row = sqlx::query(
                "SELECT t.id AS tid, t.scopes, t.expires_at, t.revoked_at, t.mac AS tmac, p.id, p.kind, \
                 p.roles, p.disabled, p.client_cert_sha256, p.client_cert_scopes, p.mac AS pmac \
                 FROM api_tokens t JOIN principals p ON p.id = t.principal WHERE t.token_hash = $1",
            )
            .bind(h)
            .fetch_optional(&mut *tx)
            .await?;
            let row = self.sealed_credential(
                row,
                "api_tokens",
                h,
                &["id", "scopes", "expires_at"],
                "tmac",
            )?;
            match row {
                None => None,
                Some(r) => {
                    let exp = parse_time(&r.try_get::<String, _>("expires_at")?);
                    let live = exp.is_some_and(|e| now < e)
                        && r.try_get::<Option<String>, _>("revoked_at")?.is_none()
                        && r.try_get::<i64, _>("disabled")? == 0;
                    live.then(|| -> Result<_, IdentityError> {
                        let scopes = parse_scopes(&r.try_get::<String, _>("scopes")?);
                        Ok((
                            r.try_get::<String, _>("id")?,
                            r.try_get::<String, _>("roles")?,
                            Via::Token {
                                id: r.try_get("tid")?,
                                scopes,
                            },
                            PrincipalKind::Service,
                        ))
                    })
                    .transpose()?
                }
            }
        } else {
            None
        };
        tx.commit().await?;
        match followup {
            Followup::Nothing => {}
            Followup::Touch => {
                // Best effort: never moves backwards, and a lost race only means another
                // request touched it first.
                let touched = async {
                    let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
                    sqlx::query(
                        "UPDATE sessions SET last_seen = $1 WHERE token_hash = $2 AND last_seen < $1",
                    )
                    .bind(now_text(now))
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok::<_, IdentityError>(())
                };
                if let Err(e) = touched.await {
                    tracing::debug!(error = %e, "session touch skipped");
                }
            }
            Followup::Delete => {
                let mut tx = self.db.begin(&Scope::none()).await.map_err(store_err)?;
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        let Some((id, roles, via, kind)) = found else {
            return Ok(None);
        };
        let Ok(id) = ActorId::new(id) else {
            return Ok(None);
        };
        let roles = parse_roles(&roles);
        let principal = match kind {
            PrincipalKind::User => Principal::user(id, roles),
            _ => Principal::service(id, roles),
        };
        Ok(Some(Authenticated {
            principal,
            mfa: matches!(via, Via::Session),
            via,
        }))
    }
}

/// The password rules ([`Identities::check_password`]), usable before a deployment exists
/// (`init` checks the first administrator's password before it creates anything).
pub fn check_password(policy: &IdentityPolicy, id: &str, pw: &str) -> Result<(), IdentityError> {
    if pw.chars().count() < policy.min_password_len {
        return Err(IdentityError::WeakPassword {
            min: policy.min_password_len,
        });
    }
    let weak = |rule: &'static str| Err(IdentityError::GuessablePassword { rule });
    let distinct: std::collections::BTreeSet<char> = pw.chars().collect();
    if distinct.len() < 6 {
        return weak("it repeats too few different characters");
    }
    let lower = pw.to_lowercase();
    if id.len() >= 3 && lower.contains(&id.to_lowercase()) {
        return weak("it contains the account's name");
    }
    let letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    if COMMON_PASSWORDS.contains(&letters.as_str())
        || COMMON_PASSWORDS.iter().any(|c| letters == c.repeat(2))
    {
        return weak("it is a common password with digits or symbols added");
    }
    Ok(())
}

/// A new random password (96 bits, hex) that the password rules accept for `id`: a random
/// string can, rarely, spell a listed word in its letters (hex `…a…b…c…` is "abc"), and a
/// generated password the deployment then refuses would fail `init` or `users add` at random.
pub fn generate_password(policy: &IdentityPolicy, id: &str) -> String {
    loop {
        let pw = hex::encode(airlock_crypto::random_bytes::<12>());
        if check_password(policy, id, &pw).is_ok() {
            return pw;
        }
    }
}

/// The adoption marker: a private file, created whole.
fn write_marker(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(b"identity rows sealed\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn store_err(e: airlock_store::StoreError) -> IdentityError {
    match e {
        airlock_store::StoreError::Database(d) => IdentityError::Database(d),
        _ => IdentityError::Seal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hex string whose letters spell a listed word is refused (CI once drew one for a
    /// generated administrator password), so the generator must draw again rather than hand
    /// out a password the same deployment then refuses.
    #[test]
    fn generated_passwords_pass_the_rules_they_are_checked_by() {
        let policy = IdentityPolicy::default();
        assert!(check_password(&policy, "admin", "0a1b2c345678901234567890").is_err());
        for _ in 0..2000 {
            let pw = generate_password(&policy, "admin");
            assert_eq!(pw.len(), 24);
            assert!(check_password(&policy, "admin", &pw).is_ok());
        }
    }
}
