//! `serve`, `users`, `tokens`, `totp`: the server and the identities it authenticates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use airlock_authz::{Action, Authorizer, PolicyMode, Role};
use airlock_crypto::Secret;
use airlock_ledger::{EventType, OutcomeKind};
use airlock_server::AppState;
use airlock_service::{Identities, IdentityPolicy};
use airlock_store::Home;
use airlock_types::{ActorId, Zone};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::home::{HomeArgs, block_on};

/// How an operator's policy file combines with the built-in policy set.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Add the file's policies to the defaults (the default guard rails still win).
    Extend,
    /// Use only the file's policies.
    Replace,
}

/// `airlock serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// Address to listen on (HTTPS only).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Serve Prometheus metrics at `/metrics` on this address, over plain HTTP (keep it on
    /// loopback or a management network: the API itself does not serve them).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// PostgreSQL URL with credentials, for a deployment initialised on PostgreSQL.
    #[arg(long, env = "AIRLOCK_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// The PostgreSQL role that owns the tables: migrate as it before serving (after an
    /// upgrade), then serve as the `--database` role. Give it only for that start.
    #[arg(long, env = "AIRLOCK_DATABASE_OWNER_URL", hide_env_values = true)]
    database_owner: Option<String>,
    /// A Cedar policy file, validated against the schema at start (an invalid one is refused).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Whether `--policies` extends or replaces the built-in set.
    #[arg(long, value_enum, default_value = "extend")]
    policy_mode: Mode,
    /// A validation policy (TOML) model versions must pass to become `validated`, instead of
    /// the default one (an unknown rule is refused at start).
    #[arg(long, value_name = "FILE")]
    validation_policy: Option<PathBuf>,
    /// A certificate chain (PEM) to serve instead of the self-signed one made at `init`.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PKCS#8 PEM) of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A CA (PEM) whose client certificates services may present instead of a token (mutual
    /// TLS); each service's certificate is registered with `users add --client-cert`.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// How often the server sweeps the identity rows' seals (at start, then every this many
    /// minutes); a row written without the deployment's key is recorded as a security alert.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=1440))]
    reconcile_minutes: u64,
}

/// Load the policy set: the built-in one, or a file validated against the schema.
/// The policy set in force and the SHA-256 of its text (the defaults, the file added to them,
/// or the file alone), which the server's start entry records.
fn policy_set(
    policies: Option<&std::path::Path>,
    mode: Mode,
) -> anyhow::Result<(Authorizer, airlock_types::ContentHash)> {
    match policies {
        None => Ok((
            Authorizer::new()?,
            airlock_crypto::sha256(Authorizer::default_policies_text().as_bytes()),
        )),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the policy file `{}`", p.display()))?;
            let (mode, in_force) = match mode {
                Mode::Extend => (
                    PolicyMode::Extend,
                    format!("{}\n{text}", Authorizer::default_policies_text()),
                ),
                Mode::Replace => (PolicyMode::Replace, text.clone()),
            };
            let authz = Authorizer::with_policies(&text, mode)
                .with_context(|| format!("the policy file `{}` is refused", p.display()))?;
            Ok((authz, airlock_crypto::sha256(in_force.as_bytes())))
        }
    }
}

/// Start the server and run until Ctrl-C.
pub fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let (authz, policy_hash) = policy_set(a.policies.as_deref(), a.policy_mode)?;
    block_on(async move {
        let migrated = match &a.database_owner {
            Some(owner) => {
                Home::migrate_database(a.home.home()?, owner, a.database.as_deref()).await?
            }
            None => Vec::new(),
        };
        let home = Home::open_with_database(
            a.home.home()?,
            &a.home.passphrase()?,
            a.home.actor()?,
            a.database.as_deref(),
        )
        .await?;
        if let Some(last) = migrated.last() {
            audit_change(
                &home,
                "database".into(),
                format!("database migrated to {last} as its owner role"),
            )
            .await?;
        }
        let (cert, key) = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => (
                std::fs::read_to_string(c)
                    .with_context(|| format!("cannot read `{}`", c.display()))?,
                Secret::new(
                    std::fs::read(k).with_context(|| format!("cannot read `{}`", k.display()))?,
                ),
            ),
            _ => home.tls_identity()?,
        };
        let client_ca = match &a.client_ca {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read `{}`", p.display()))?,
            ),
            None => None,
        };
        let tls = airlock_server::tls::server_config_mtls(
            &cert,
            key.expose_secret(),
            client_ca.as_deref(),
        )?;
        let mut state = AppState::new(home.clone(), authz, IdentityPolicy::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_onnx(std::sync::Arc::new(airlock_onnx::TractRuntime))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let validation = match &a.validation_policy {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| {
                    format!("cannot read the validation policy `{}`", p.display())
                })?;
                airlock_service::ValidationPolicy::from_toml(&text)
                    .with_context(|| format!("the validation policy `{}`", p.display()))?
            }
            None => airlock_service::ValidationPolicy::default(),
        };
        let validation_hash = validation.hash();
        if a.validation_policy.is_some() {
            state = state
                .with_validation_policy(validation)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let listener = airlock_server::tls::bind(a.listen).await?;
        let addr = listener.local_addr()?;
        // What governs this server, in its start entry: the policy set's and airlock.toml's
        // hashes (a changed policy or configuration shows as a changed hash at the next start).
        let config = std::fs::read(a.home.home()?.join("airlock.toml"))
            .context("cannot read airlock.toml")?;
        audit_change(
            &home,
            "server".into(),
            format!(
                "server started on {addr}; policy-set sha256 {}; validation policy sha256 {}; airlock.toml sha256 {}; airlock {}",
                policy_hash.to_hex(),
                validation_hash.to_hex(),
                airlock_crypto::sha256(&config).to_hex(),
                airlock_store::AIRLOCK_VERSION,
            ),
        ).await?;
        println!(
            "Airlock API listening on https://{addr} (OpenAPI at /openapi.json); Ctrl-C or SIGTERM stops it"
        );
        let service = state.service().clone();
        if let Some(m) = a.metrics_listen {
            let listener = tokio::net::TcpListener::bind(m)
                .await
                .with_context(|| format!("cannot listen on {m} for metrics"))?;
            println!("Prometheus metrics at http://{m}/metrics");
            let metrics_state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = airlock_server::serve_metrics(listener, metrics_state).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        }
        service
            .fail_interrupted_runs()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // The identity rows' seals, swept at start and then periodically (issue 28, finding 7).
        let sweeper = service.clone();
        let period = std::time::Duration::from_secs(a.reconcile_minutes * 60);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = sweeper.reconcile_identities().await {
                    tracing::error!(error = %e, "the identity reconciliation failed");
                }
            }
        });
        airlock_server::tls::serve(
            listener,
            tls,
            airlock_server::app(state),
            super::home::stop_signal(),
        )
        .await;
        // The refusals counted since the last summary, the predictions not yet in the
        // prediction log, then a signed checkpoint (close).
        service.flush_refusals().await;
        if let Err(e) = service.flush_prediction_log().await {
            tracing::error!(error = %e, "the last prediction log batch was not written");
        }
        home.close().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// The identity store of an open home.
pub fn identities(home: &Home) -> anyhow::Result<Identities> {
    Ok(Identities::new(
        home.db().clone(),
        home.identity_seal_key()?,
        &home.config().deployment.name,
        IdentityPolicy::default(),
    )?)
}

/// Record an identity change in the ledger.
pub async fn audit_change(home: &Home, resource: String, reason: String) -> anyhow::Result<()> {
    home.audit(
        home.entry(
            EventType::ConfigChange,
            Zone::Clinical,
            OutcomeKind::Success,
        )
        .with_resource(resource)
        .with_reason(reason),
    )
    .await?;
    Ok(())
}

/// A new random password for `id` (shown once) that the password rules accept.
pub fn random_password(id: &str) -> String {
    airlock_service::identity::generate_password(&airlock_service::IdentityPolicy::default(), id)
}

/// Read a password from a file (first line), else generate one.
fn password_from(file: Option<&std::path::Path>, id: &str) -> anyhow::Result<(String, bool)> {
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the password file `{}`", f.display()))?;
            Ok((text.lines().next().unwrap_or("").to_string(), false))
        }
        None => Ok((random_password(id), true)),
    }
}

/// `airlock users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    cmd: UsersCmd,
}

#[derive(Debug, Subcommand)]
enum UsersCmd {
    /// Create a user (prints the TOTP enrolment URI once) or, with --service, a service identity.
    Add {
        #[command(flatten)]
        home: HomeArgs,
        /// The new principal's id.
        id: ActorId,
        /// A role (repeat for several).
        #[arg(long = "role", required = true, value_parser = role_parser())]
        roles: Vec<Role>,
        /// A service identity (authenticates with API tokens) instead of a person.
        #[arg(long)]
        service: bool,
        /// A file holding the password (else one is generated and printed once).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// A service's client certificate (PEM), for mutual TLS (`serve --client-ca`).
        #[arg(long, requires_all = ["service", "cert_scopes"])]
        client_cert: Option<PathBuf>,
        /// An action requests over that certificate may take (repeat for several), as a
        /// token's scopes.
        #[arg(long = "cert-scope", requires = "client_cert")]
        cert_scopes: Vec<Action>,
        /// A clinician's practitioner identity in the clinical data, `SYSTEM|VALUE` or a bare
        /// NPI: they open the records of patients whose encounters, care team or general
        /// practitioner name it (else only under break-glass).
        #[arg(long, conflicts_with = "service")]
        practitioner: Option<String>,
    },
    /// List principals.
    List {
        #[command(flatten)]
        home: HomeArgs,
    },
    /// Disable a principal, ending its sessions and tokens.
    Disable {
        #[command(flatten)]
        home: HomeArgs,
        /// The principal.
        id: ActorId,
    },
    /// Check the seal of every identity row (principals, sessions, tokens, practitioner
    /// links); rows written without the deployment's key are named and recorded as a security
    /// alert in the ledger (exit status 1). The server does this every `--reconcile-minutes`.
    Reconcile {
        #[command(flatten)]
        home: HomeArgs,
    },
    /// Give a user a new TOTP secret (prints the new enrolment URI once).
    ResetMfa {
        #[command(flatten)]
        home: HomeArgs,
        /// The user.
        id: ActorId,
    },
}

/// Roles by name, listed in `--help` and in the error for an unknown one.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .try_map(|s| s.parse::<Role>())
}

/// Run `airlock users ...`.
pub fn users(a: UsersArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match a.cmd {
            UsersCmd::Add {
                home,
                id,
                roles,
                service,
                password_file,
                client_cert,
                cert_scopes,
                practitioner,
            } => {
                let link = practitioner
                    .as_deref()
                    .map(airlock_service::PractitionerLink::parse)
                    .transpose()?;
                if link.is_some() && !roles.contains(&Role::Clinician) {
                    anyhow::bail!("--practitioner links a clinician: add --role clinician");
                }
                let h = home.open().await?;
                let ids = identities(&h)?;
                let names = roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                if service {
                    ids.add_service(h.actor(), &id, &roles).await?;
                    if let Some(c) = &client_cert {
                        let pem = std::fs::read_to_string(c)
                            .with_context(|| format!("cannot read `{}`", c.display()))?;
                        let fp = airlock_server::tls::fingerprint_pem(&pem)?;
                        ids.set_client_cert(&id, &fp, &cert_scopes).await?;
                        println!(
                            "client certificate registered (SHA-256 {fp}) for {}",
                            cert_scopes
                                .iter()
                                .map(|a| a.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                    println!(
                        "service `{id}` created with roles {names}; issue it a token with `airlock tokens issue`"
                    );
                } else {
                    let (pw, generated) = password_from(password_file.as_deref(), id.as_str())?;
                    let e = ids
                        .add_user(
                            h.actor(),
                            &id,
                            &roles,
                            &Secret::new(pw.clone().into_bytes()),
                        )
                        .await?;
                    println!("user `{id}` created with roles {names}");
                    if let Some(l) = &link {
                        ids.link_practitioner(h.actor(), &id, l).await?;
                        println!("  linked to practitioner {l}");
                    }
                    if generated {
                        println!("  password (shown once): {pw}");
                    }
                    println!(
                        "  enrol the authenticator app (shown once): {}",
                        e.otpauth_uri
                    );
                }
                audit_change(
                    &h,
                    format!("principal:{id}"),
                    format!(
                        "principal created with roles {names}{}",
                        link.as_ref()
                            .map(|l| format!(" linked to practitioner {l}"))
                            .unwrap_or_default()
                    ),
                )
                .await?;
                h.close().await?;
            }
            UsersCmd::List { home } => {
                let h = home.open().await?;
                for p in identities(&h)?.list().await? {
                    println!(
                        "{:<24} {:<8} {:<40} mfa={} disabled={}{}",
                        p.id,
                        p.kind,
                        p.roles
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        p.mfa_enrolled,
                        p.disabled,
                        p.locked_until
                            .map(|t| format!(" locked until {t}"))
                            .unwrap_or_default()
                    );
                }
                h.close().await?;
            }
            UsersCmd::Disable { home, id } => {
                let h = home.open().await?;
                identities(&h)?.disable(&id).await?;
                audit_change(&h, format!("principal:{id}"), "principal disabled".into()).await?;
                println!("`{id}` disabled; its sessions and tokens are ended");
                h.close().await?;
            }
            UsersCmd::Reconcile { home } => {
                let h = home.open().await?;
                let service = airlock_service::Service::new(
                    h.clone(),
                    Authorizer::new()?,
                    IdentityPolicy::default(),
                    std::sync::Arc::new(airlock_service::NoObserver),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let found = service
                    .reconcile_identities()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let failed = !found.failing.is_empty();
                for f in &found.failing {
                    println!(
                        "FAILS ITS SEAL: a row of `{}` for `{}`",
                        f.table, f.principal
                    );
                }
                println!(
                    "{} identity rows checked; {} fail their seals{}",
                    found.checked,
                    found.failing.len(),
                    if failed {
                        " (recorded in the ledger as a security alert)"
                    } else {
                        ""
                    }
                );
                drop(service);
                h.close().await?;
                if failed {
                    return Ok(ExitCode::FAILURE);
                }
            }
            UsersCmd::ResetMfa { home, id } => {
                let h = home.open().await?;
                let e = identities(&h)?.reset_mfa(&id).await?;
                audit_change(&h, format!("principal:{id}"), "MFA reset".into()).await?;
                println!("new enrolment for `{id}` (shown once): {}", e.otpauth_uri);
                h.close().await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// `airlock tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    cmd: TokensCmd,
}

#[derive(Debug, Subcommand)]
enum TokensCmd {
    /// Issue an API token to a service identity (printed once; stored only as a hash).
    Issue {
        #[command(flatten)]
        home: HomeArgs,
        /// The service.
        #[arg(long)]
        principal: ActorId,
        /// An action the token may be used for (repeat for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<Action>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        home: HomeArgs,
        /// The token id.
        id: String,
    },
}

/// Run `airlock tokens ...`.
pub fn tokens(a: TokensArgs) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match a.cmd {
            TokensCmd::Issue {
                home,
                principal,
                scopes,
                days,
            } => {
                let h = home.open().await?;
                let t = identities(&h)?
                    .issue_token(&principal, &scopes, days)
                    .await?;
                audit_change(
                    &h,
                    format!("token:{}", t.id),
                    format!("API token issued to {principal}, expires {}", t.expires_at),
                )
                .await?;
                println!("token {} for `{principal}`, expires {}", t.id, t.expires_at);
                println!("  bearer (shown once): {}", t.bearer());
                h.close().await?;
            }
            TokensCmd::Revoke { home, id } => {
                let h = home.open().await?;
                identities(&h)?.revoke_token(&id).await?;
                audit_change(&h, format!("token:{id}"), "API token revoked".into()).await?;
                println!("token {id} revoked");
                h.close().await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// `airlock totp`: the current code for an `otpauth://` URI or a base32 secret in a file, for
/// scripted logins against a demo or test deployment.
#[derive(Debug, Args)]
pub struct TotpArgs {
    /// A file holding an `otpauth://` URI or a base32 secret (first line).
    #[arg(long)]
    secret_file: PathBuf,
}

/// Print the current TOTP code.
pub fn totp(a: TotpArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.secret_file)
        .with_context(|| format!("cannot read `{}`", a.secret_file.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    let b32 = match line.split_once("secret=") {
        Some((_, rest)) => rest.split('&').next().unwrap_or(""),
        None => line,
    };
    let secret = airlock_service::totp::base32_decode(b32)
        .filter(|s| !s.is_empty())
        .context("the file holds no base32 TOTP secret")?;
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    println!("{}", airlock_service::totp::code_at(&secret, now));
    Ok(ExitCode::SUCCESS)
}
