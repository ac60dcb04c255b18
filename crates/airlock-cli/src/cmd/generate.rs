//! `airlock generate`: writes a synthetic, identified cohort (FHIR R4 bundles and bulk NDJSON,
//! HL7 v2 ADT messages, a CSV, gold-annotated notes and the ground truth) with `airlock-synth`.
//!
//! The summary printed names counts, files, bytes and time only: the values are synthetic but
//! shaped like PHI, and the CLI treats them as such.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

/// Arguments of `airlock generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Number of patients.
    #[arg(long, default_value_t = 100)]
    pub patients: usize,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed: the same seed and patient count give byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Runs `airlock generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let s = generate_into(args.patients, args.seed, &args.out)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generated {} synthetic patients (seed {}) in `{}`",
        s.patients,
        args.seed,
        args.out.display()
    );
    println!(
        "  {} hospital stays ({} followed by a 30-day readmission), {} notes, {} FHIR resources",
        s.encounters, s.readmissions_30d, s.notes, s.resources
    );
    println!(
        "  {} files, {:.1} MB in {:.2} s",
        s.files,
        s.bytes as f64 / 1e6,
        secs
    );
    println!(
        "  fhir/ ndjson/ hl7/ cohort.csv notes.jsonl truth.jsonl: synthetic but IDENTIFIED data, \
         handle as PHI"
    );
    Ok(ExitCode::SUCCESS)
}

/// Generates `patients` patients with `seed` and writes everything into `out` (see
/// [`airlock_synth::write_all`]). Used by `airlock generate` and by the demo.
pub fn generate_into(
    patients: usize,
    seed: u64,
    out: &Path,
) -> anyhow::Result<airlock_synth::GenSummary> {
    let cohort = airlock_synth::generate(&airlock_synth::GenOptions::new(patients, seed));
    airlock_synth::write_all(&cohort, out)
        .with_context(|| format!("writing the cohort to `{}`", out.display()))
}

/// A registry extract only (`cohort.csv`, one row per stay), without the FHIR, HL7 and notes:
/// the demo's larger table for synthetic data and for training without the shared data.
/// Returns the stays written.
pub fn generate_registry_csv(patients: usize, seed: u64, path: &Path) -> anyhow::Result<usize> {
    let cohort = airlock_synth::generate(&airlock_synth::GenOptions::new(patients, seed));
    airlock_synth::write_csv(&cohort, path)
        .with_context(|| format!("writing the registry to `{}`", path.display()))?;
    Ok(cohort.patients.iter().map(|p| p.encounters.len()).sum())
}
