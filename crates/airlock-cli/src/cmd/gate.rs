//! `airlock deid --home ...`: the de-identification gate from the command line. The gate
//! itself lives in `airlock_service::gate`, shared with the API.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_store::Home;
use airlock_types::DatasetName;
use anyhow::Context;

use super::home::{block_on, read_passphrase};

/// What `airlock deid --home ...` asks for.
#[derive(Debug, Clone)]
pub struct GateRequest {
    /// The deployment.
    pub home: PathBuf,
    /// Profile name or path.
    pub profile: String,
    /// `NAME[@VERSION]` of the clinical dataset.
    pub dataset: String,
    /// The dataset to write the de-identified version to.
    pub out_dataset: String,
    /// Passphrase file (else AIRLOCK_PASSPHRASE).
    pub passphrase_file: Option<PathBuf>,
    /// Exit 0 even when records were quarantined.
    pub allow_quarantine: bool,
}

pub use airlock_service::gate::GateOutcome;

/// Run the gate inside an open home (see [`airlock_service::gate::run_gate`]).
pub async fn run_gate(
    home: &Home,
    profile_spec: &str,
    dataset: &str,
    out_dataset: &DatasetName,
) -> anyhow::Result<GateOutcome> {
    Ok(airlock_service::gate::run_gate(home, profile_spec, dataset, out_dataset).await?)
}

/// `airlock deid --home ...`.
pub fn deid_gate(req: &GateRequest) -> anyhow::Result<ExitCode> {
    block_on(async {
        let pass = read_passphrase(req.passphrase_file.as_deref())?;
        let actor = super::home::local_actor(std::env::var("AIRLOCK_ACTOR").ok().as_deref())?;
        let home = Home::open(&req.home, &pass, actor).await?;
        let out = DatasetName::new(req.out_dataset.clone()).context("`--out-dataset`")?;
        let result = run_gate(&home, &req.profile, &req.dataset, &out).await;
        let code = match result {
            Ok(o) => {
                println!("{}", o.summary);
                println!(
                    "wrote {}@{} to `{}` as {} ({} files, {} records)",
                    o.version.dataset,
                    o.version.version,
                    o.version.zone,
                    o.version.classification,
                    o.version.objects,
                    o.version.records
                );
                if o.quarantined > 0 && !req.allow_quarantine {
                    eprintln!(
                        "{} records were quarantined (see deid-report.json in the output version); pass --allow-quarantine to accept",
                        o.quarantined
                    );
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
        home.close().await?;
        Ok(code)
    })?
}
