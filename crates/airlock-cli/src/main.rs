//! `airlock`: the command-line edge of Airlock. Thin: parse arguments, call the libraries,
//! print results. `anyhow` lives here and nowhere else.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line prints what it did"
)]

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Airlock: build, deploy and govern AI on patient data under HIPAA's safeguards.
///
/// Identified data stays in the clinical zone; data crosses to development only through
/// audited gates (de-identification with a leak check); models are trained there, approved by
/// two roles and deployed silent, then canary, then production; every access and prediction
/// is written to a ledger no one can rewrite unseen. Start with `airlock demo`, or
/// `airlock init` for a deployment of your own.
#[derive(Debug, Parser)]
#[command(name = "airlock", version)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). Logs never carry PHI.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a throw-away deployment, generate a cohort, ingest, de-identify and audit it.
    Demo(cmd::demo::DemoArgs),
    /// Create a deployment: config, key hierarchy, metadata store, ledger.
    Init(cmd::home::InitArgs),
    /// Ingest FHIR R4, HL7 v2, CSV or free-text notes (JSON Lines, `.txt`) as a new dataset version.
    Ingest(cmd::home::IngestArgs),
    /// List and inspect datasets.
    Datasets(cmd::home::DatasetsArgs),
    /// Tables from FHIR: SQL-on-FHIR v2 ViewDefinitions over files or a dataset.
    Views(cmd::views::ViewsArgs),
    /// Differential privacy: questions of identified data charged to budgets; DP metadata and
    /// budgets (acting as the principal named by --actor).
    Dp(cmd::dp::DpArgs),
    /// Differentially private synthetic rows from a clinical table (MST), with a fidelity,
    /// utility and privacy report, as a synthetic version in development.
    Synth(cmd::synth::SynthArgs),
    /// Decrypt a dataset version to a directory, where the zone rules allow.
    Export(cmd::home::ExportArgs),
    /// Key management.
    Keys(cmd::home::KeysArgs),
    /// The audit ledger: verify, checkpoints, proofs, search, export.
    Audit(cmd::audit::AuditArgs),
    /// Generate a synthetic identified cohort (FHIR, HL7 v2, CSV, notes).
    Generate(cmd::generate::GenerateArgs),
    /// De-identify files (file mode), a dataset (gate mode), or free text.
    Deid(cmd::deid::DeidArgs),
    /// Serve the HTTPS API.
    Serve(cmd::serve::ServeArgs),
    /// Users and service identities: add, list, disable, reset-mfa.
    Users(cmd::serve::UsersArgs),
    /// API tokens for service identities: issue, revoke.
    Tokens(cmd::serve::TokensArgs),
    /// Print the current TOTP code for an enrolment URI or secret in a file (scripted logins).
    Totp(cmd::serve::TotpArgs),
    /// Print who the ledger records for commands run here with the passphrase.
    Whoami,
    /// Train a model on a de-identified dataset version and register it.
    Train(cmd::models::TrainArgs),
    /// The model registry: list, show, verify, deployment history, silent-mode report.
    Models(cmd::models::ModelsArgs),
    /// Batch-score a dataset version (development or staging) for validation.
    Predict(cmd::models::PredictArgs),
    /// Production monitoring: a model's drift and performance over its prediction log, and
    /// drift between development datasets (acting as the principal named by --actor).
    Monitor(cmd::monitor::MonitorArgs),
    /// Incident response: detection over the ledger (scan), breach-notification deadlines
    /// (a stand-alone calculator).
    Incidents(cmd::incidents::IncidentsArgs),
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Init(a) => cmd::home::init(a),
        Command::Ingest(a) => cmd::home::ingest(a),
        Command::Datasets(a) => cmd::home::datasets(a),
        Command::Views(a) => cmd::views::run(a),
        Command::Dp(a) => cmd::dp::run(a),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Monitor(a) => cmd::monitor::run(a),
        Command::Incidents(a) => cmd::incidents::run(a),
        Command::Export(a) => cmd::home::export(a),
        Command::Keys(a) => cmd::home::keys(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Deid(a) => cmd::deid::run(a),
        Command::Serve(a) => cmd::serve::serve(a),
        Command::Users(a) => cmd::serve::users(a),
        Command::Tokens(a) => cmd::serve::tokens(a),
        Command::Totp(a) => cmd::serve::totp(a),
        Command::Whoami => cmd::home::local_actor(std::env::var("AIRLOCK_ACTOR").ok().as_deref())
            .map(|a| {
                println!("{a}");
                ExitCode::SUCCESS
            }),
        Command::Train(a) => cmd::models::train(a),
        Command::Models(a) => cmd::models::models(a),
        Command::Predict(a) => cmd::models::predict(a),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`airlock audit export | head`): nothing more to say.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once: an error type that quotes its cause
/// in its own message (`audit ledger: {0}`) would otherwise print the cause twice.
fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether an error comes from writing to a pipe whose reader has gone.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A command piped into `head` stops quietly when `head` has read enough, as Unix tools do.
/// Rust ignores SIGPIPE, so `println!` panics on the closed pipe instead; with `unsafe`
/// forbidden here the signal cannot be restored, so the panic hook ends the process quietly
/// for that one case and reports every other panic as before.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
