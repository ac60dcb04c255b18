//! `airlock deid`: de-identification from the command line.
//!
//! * **File mode** (no subcommand, no `--home`): `--in PATH... --out DIR` runs
//!   [`airlock_deid::deid_paths`] over FHIR JSON/NDJSON, HL7 v2 and CSV files (directories
//!   recursed) with a profile and an HMAC key file, writes the de-identified files,
//!   `DIR/deid-report.json` and `DIR/deid-summary.txt`, and prints the summary. All inputs
//!   of one invocation are one data set: a multi-table CSV export (Synthea's, an OMOP extract)
//!   keeps its joins, and the leak check covers every output. Outputs are named `part-NNNNN`
//!   and inputs by index and content hash only (`--danger-keep-input-names` keeps the names).
//! * **Gate mode** (`--home`): hands over to the deployment's gate (`cmd::gate`), which reads a
//!   clinical dataset version and writes a de-identified one in development.
//! * `deid text`: free text (JSONL or `.txt`) through `airlock-text`.
//! * `deid eval`: scores the text engine, or another system's predictions, on an annotated
//!   corpus.
//!
//! Nothing this module prints carries an input value: the engine's reports and errors name
//! files, records, paths and kinds only, and the key never leaves the key file. The exit
//! status is non-zero when a record was quarantined (unless `--allow-quarantine`), when the
//! leak check fails under a profile whose leak policy is `fail`, or when a JSONL line is
//! malformed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use airlock_deid::profile::LeakPolicy;
use airlock_deid::{Crosswalk, DeidError, DeidKeys, Profile, PseudonymScheme, RunReport};
use airlock_text::eval::{self, CorpusFormat};
use anyhow::{Context, bail};

use crate::cmd::gate::{GateRequest, deid_gate};

/// How many files or malformed lines are listed on stderr (the report has them all).
const LIST_MAX: usize = 20;

/// Arguments of `airlock deid`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeidArgs {
    /// Free text or evaluation; without a subcommand, file mode (or gate mode with `--home`).
    #[command(subcommand)]
    pub command: Option<Box<DeidCommand>>,
    /// Profile: a built-in name (`safe-harbor`, `expert-determination`, `limited-data-set`) or
    /// the path of a TOML rule file.
    #[arg(long, default_value = "safe-harbor")]
    pub profile: String,
    /// File mode: the HMAC key file (raw bytes, at least 16; 32 random bytes recommended).
    /// Never printed.
    #[arg(long, value_name = "KEY", conflicts_with = "home")]
    pub key_file: Option<PathBuf>,
    /// File mode: where the safe-harbor surrogate crosswalk is loaded from (if it exists) and
    /// saved to. It re-identifies the output: keep it in the clinical zone.
    #[arg(long, value_name = "FILE", conflicts_with = "home")]
    pub crosswalk: Option<PathBuf>,
    /// File mode: input files or directories (FHIR JSON/NDJSON, `.hl7`, `.csv`).
    #[arg(long = "in", value_name = "PATH", num_args = 1.., conflicts_with = "home")]
    pub inputs: Vec<PathBuf>,
    /// File mode: output directory.
    #[arg(long, value_name = "DIR", conflicts_with = "home")]
    pub out: Option<PathBuf>,
    /// File mode: keep the input file names in the output, the report and messages. By
    /// default outputs are named `part-00000.json` (`part-00003.patients.csv` for a table of a
    /// known export) and inputs are named by index and content hash, because input file names
    /// may hold PHI (Synthea's are `Given_Family_uuid.json`) and the output and its report
    /// leave with the data.
    #[arg(long, conflicts_with = "home")]
    pub danger_keep_input_names: bool,
    /// Exit 0 even when records were quarantined (they are still reported, never written).
    #[arg(long)]
    pub allow_quarantine: bool,
    /// Gate mode (boxed: keeps the argument enum of `main` small).
    #[command(flatten)]
    pub gate: Box<GateArgs>,
}

/// Gate-mode flags of `airlock deid`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Gate mode")]
pub struct GateArgs {
    /// Gate mode: the deployment home.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Gate mode: the clinical dataset to read, `NAME` or `NAME@VERSION`.
    #[arg(long, value_name = "NAME[@VERSION]", requires = "home")]
    pub dataset: Option<String>,
    /// Gate mode: the de-identified dataset to write.
    #[arg(long, value_name = "NAME", requires = "home")]
    pub out_dataset: Option<String>,
    /// Gate mode: a file holding the deployment passphrase (without it, the gate reads the
    /// `AIRLOCK_PASSPHRASE` environment variable).
    #[arg(long, value_name = "FILE", requires = "home")]
    pub passphrase_file: Option<PathBuf>,
}

/// Subcommands of `airlock deid`.
#[derive(Debug, clap::Subcommand)]
pub enum DeidCommand {
    /// De-identify free text: JSONL (`{"id", "text", ...}` per line) or a plain `.txt` file.
    Text(TextArgs),
    /// Score the text engine (or another system's predictions) on an annotated corpus.
    Eval(EvalArgs),
}

/// Arguments of `airlock deid text`.
#[derive(Debug, clap::Args)]
pub struct TextArgs {
    /// Input: `.jsonl`/`.ndjson` (one `{"text": ...}` object per line) or `.txt`.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// Output file (same format as the input).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// How found identifiers are written.
    #[arg(long, value_enum, default_value_t = TextMode::Tag)]
    pub mode: TextMode,
    /// HMAC key file for `--mode surrogate` (at least 16 bytes). Never printed.
    #[arg(long, value_name = "KEY")]
    pub key_file: Option<PathBuf>,
}

/// Output mode of `airlock deid text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextMode {
    /// Category tags: `[NAME]`, `[DATE]`.
    Tag,
    /// Every character of a span replaced by `*`.
    Mask,
    /// Consistent realistic fakes, dates shifted by one keyed offset for the whole file.
    Surrogate,
}

/// Arguments of `airlock deid eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The annotated corpus.
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// Corpus format.
    #[arg(long, value_enum)]
    pub format: EvalFormat,
    /// Score another system's predictions instead of running the engine: JSONL, one line per
    /// corpus entry, `{"phi": [{"start", "end", "type"}]}` in character offsets.
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    /// The name of the system that made `--predictions`.
    #[arg(long, value_name = "NAME", requires = "predictions")]
    pub system: Option<String>,
    /// Write the JSON report to OUT; `--json` alone (or `--json -`) prints it to stdout
    /// instead of the table.
    #[arg(long, value_name = "OUT", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Time the engine alone (no scoring) over the corpus, repeated for at least a second, and
    /// print `{"seconds", "notes_per_s", "mb_per_s", "spans"}` as JSON.
    #[arg(long, conflicts_with_all = ["predictions", "json"])]
    pub throughput: bool,
}

/// Corpus formats of `airlock deid eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalFormat {
    /// ASQ-PHI blocks (`===QUERY===` / `===PHI_TAGS===`).
    Asq,
    /// presidio-research JSON list.
    Presidio,
    /// JSONL, `{"text", "phi": [{"start", "end", "type"}]}` in character offsets.
    Jsonl,
}

impl From<EvalFormat> for CorpusFormat {
    fn from(f: EvalFormat) -> CorpusFormat {
        match f {
            EvalFormat::Asq => CorpusFormat::Asq,
            EvalFormat::Presidio => CorpusFormat::Presidio,
            EvalFormat::Jsonl => CorpusFormat::Jsonl,
        }
    }
}

/// Runs `airlock deid`.
pub fn run(args: DeidArgs) -> anyhow::Result<ExitCode> {
    match args.command.map(|c| *c) {
        Some(DeidCommand::Text(t)) => return run_text(t),
        Some(DeidCommand::Eval(e)) => return run_eval(e),
        None => {}
    }
    let gate = *args.gate;
    if let Some(home) = gate.home {
        let (Some(dataset), Some(out_dataset)) = (gate.dataset, gate.out_dataset) else {
            bail!("gate mode (`--home`) needs `--dataset NAME[@VERSION]` and `--out-dataset NAME`");
        };
        return deid_gate(&GateRequest {
            home,
            profile: args.profile,
            dataset,
            out_dataset,
            passphrase_file: gate.passphrase_file,
            allow_quarantine: args.allow_quarantine,
        });
    }
    run_files(FileMode {
        profile: args.profile,
        key_file: args.key_file,
        crosswalk: args.crosswalk,
        inputs: args.inputs,
        out: args.out,
        neutral_names: !args.danger_keep_input_names,
        allow_quarantine: args.allow_quarantine,
    })
}

struct FileMode {
    profile: String,
    key_file: Option<PathBuf>,
    crosswalk: Option<PathBuf>,
    inputs: Vec<PathBuf>,
    out: Option<PathBuf>,
    neutral_names: bool,
    allow_quarantine: bool,
}

fn run_files(m: FileMode) -> anyhow::Result<ExitCode> {
    let Some(out) = m.out else {
        bail!("file mode needs `--out DIR` (or `--home DIR` for gate mode)");
    };
    if m.inputs.is_empty() {
        bail!("file mode needs `--in PATH...`");
    }
    let Some(key_file) = m.key_file else {
        bail!("file mode needs `--key-file KEY` (at least 16 random bytes)");
    };
    let profile = Profile::load(&m.profile).context("loading the profile")?;
    let keys = read_key(&key_file)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating `{}`", out.display()))?;

    let mut crosswalk = match &m.crosswalk {
        Some(path) => {
            check_outside(path, &out)?;
            eprintln!(
                "warning: the crosswalk `{}` maps surrogates back to real identifiers: it \
                 re-identifies the output. Keep it in the clinical zone, never with the \
                 de-identified files.",
                path.display()
            );
            load_crosswalk(path)?
        }
        None => {
            if profile.pseudonyms() == PseudonymScheme::Surrogate {
                eprintln!(
                    "note: no `--crosswalk FILE`: this run's random surrogates cannot be re-linked \
                     to the records, and a later run will draw different ones"
                );
            }
            Crosswalk::new()
        }
    };

    let spinner = (std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(format!(
            "de-identifying {} input path(s) with `{}`",
            m.inputs.len(),
            profile.name()
        ));
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    let started = Instant::now();
    let options = airlock_deid::PathOptions {
        neutral_names: m.neutral_names,
    };
    let result =
        airlock_deid::deid_paths_with(&profile, &keys, &mut crosswalk, &m.inputs, &out, options);
    let secs = started.elapsed().as_secs_f64();
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }

    // Surrogates drawn in this run are saved even when the run fails, so a rerun reuses them.
    if let Some(path) = &m.crosswalk
        && crosswalk.added() > 0
    {
        save_crosswalk(path, &crosswalk)?;
    }

    let report = match result {
        Ok(r) => r,
        Err(DeidError::LeakCheckFailed { hits, report }) => {
            print!("{}", report.summary());
            eprintln!(
                "error: leak check failed under `{}`: {hits} identifying value(s) found in the \
                 output; the outputs holding them were deleted",
                report.profile
            );
            eprintln!("  in: {}", leak_files(&report).join(", "));
            if let Some(advice) = report.leak_advice() {
                eprintln!("  {advice}");
            }
            eprintln!(
                "report (paths and kinds of every hit): {}",
                out.join(airlock_deid::REPORT_FILE).display()
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e).context("de-identification failed"),
    };

    print!("{}", report.summary());
    println!(
        "wrote {} file(s) to `{}` in {secs:.2} s; report `{}`",
        report.files.len(),
        out.display(),
        out.join(airlock_deid::REPORT_FILE).display()
    );
    if m.crosswalk.is_some() {
        println!(
            "crosswalk: {} surrogate(s) added this run",
            report.crosswalk_added
        );
    }

    let mut code = ExitCode::SUCCESS;
    if !report.leak_check.passed {
        // The engine returns an error above under a `fail` leak policy; this is `warn`, which
        // the profile chose, so the hits are reported and the run stands.
        let fail = profile.leak_policy() == LeakPolicy::Fail;
        eprintln!(
            "{}: leak check found {} identifying value(s) in the output (profile `{}`{}) in: {}",
            if fail { "error" } else { "warning" },
            report.leak_check.hits.len(),
            report.profile,
            if fail { "" } else { " only warns" },
            leak_files(&report).join(", ")
        );
        if fail {
            code = ExitCode::FAILURE;
        }
    }
    if !report.quarantined.is_empty() {
        let files = quarantined_files(&report);
        if m.allow_quarantine {
            eprintln!(
                "warning: {} record(s) quarantined (allowed by --allow-quarantine) in: {}",
                report.quarantined.len(),
                files.join(", ")
            );
        } else {
            eprintln!(
                "error: {} record(s) quarantined in: {} (see the report; rerun with \
                 --allow-quarantine to accept)",
                report.quarantined.len(),
                files.join(", ")
            );
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

/// Reads the HMAC key file and refuses a short one. The key is never printed; only its length
/// is named in the error.
fn read_key(path: &Path) -> anyhow::Result<DeidKeys> {
    let mut bytes = std::fs::read(path)
        .with_context(|| format!("reading the key file `{}`", path.display()))?;
    if bytes.len() < DeidKeys::MIN_LEN {
        let n = bytes.len();
        bytes.fill(0);
        bail!(
            "key file `{}` holds {n} byte(s); at least {} are required (32 random bytes \
             recommended)",
            path.display(),
            DeidKeys::MIN_LEN
        );
    }
    DeidKeys::new(bytes).with_context(|| format!("key file `{}`", path.display()))
}

/// Refuses a crosswalk path inside the output directory: it re-identifies the output.
fn check_outside(crosswalk: &Path, out: &Path) -> anyhow::Result<()> {
    let out = out
        .canonicalize()
        .with_context(|| format!("resolving `{}`", out.display()))?;
    let parent = match crosswalk.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(parent) = parent.canonicalize()
        && parent.starts_with(&out)
    {
        bail!(
            "the crosswalk `{}` must not be inside the output directory `{}`: it re-identifies \
             the output",
            crosswalk.display(),
            out.display()
        );
    }
    Ok(())
}

fn load_crosswalk(path: &Path) -> anyhow::Result<Crosswalk> {
    match std::fs::read(path) {
        Ok(bytes) => Crosswalk::from_bytes(&bytes)
            .with_context(|| format!("reading the crosswalk `{}`", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Crosswalk::new()),
        Err(e) => Err(e).with_context(|| format!("reading the crosswalk `{}`", path.display())),
    }
}

/// Writes the crosswalk through a temporary sibling (owner-only on Unix), fsync and rename.
fn save_crosswalk(path: &Path, crosswalk: &Crosswalk) -> anyhow::Result<()> {
    let bytes = crosswalk.to_bytes();
    write_atomic(path, &bytes, true)
        .with_context(|| format!("saving the crosswalk `{}`", path.display()))
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The distinct output files holding leak-check hits (the summary lists the paths).
fn leak_files(report: &RunReport) -> Vec<String> {
    distinct(report.leak_check.hits.iter().map(|h| h.file.as_str()))
}

/// The distinct input files with quarantined records.
fn quarantined_files(report: &RunReport) -> Vec<String> {
    distinct(report.quarantined.iter().map(|q| q.file.as_str()))
}

/// Sorted, deduplicated, at most [`LIST_MAX`] (then "... and N more").
fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<&str> = items.collect();
    v.sort_unstable();
    v.dedup();
    let more = v.len().saturating_sub(LIST_MAX);
    let mut out: Vec<String> = v.into_iter().take(LIST_MAX).map(str::to_owned).collect();
    if more > 0 {
        out.push(format!("... and {more} more"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// deid text

fn run_text(t: TextArgs) -> anyhow::Result<ExitCode> {
    let ext = t
        .input
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let jsonl = match ext.as_str() {
        "jsonl" | "ndjson" => true,
        "txt" => false,
        _ => bail!(
            "`{}`: expected a `.jsonl`, `.ndjson` or `.txt` file",
            t.input.display()
        ),
    };
    if same_file(&t.input, &t.out) {
        bail!("`--out` must differ from `--in`");
    }
    let mode = match t.mode {
        TextMode::Tag => airlock_text::Mode::Tag,
        TextMode::Mask => airlock_text::Mode::Mask,
        TextMode::Surrogate => airlock_text::Mode::Surrogate,
    };
    // Surrogates are keyed: one context for the whole file, so the same value gets the same
    // fake in every line, and every date moves by the same keyed offset (intervals survive).
    let keys = match (t.mode, &t.key_file) {
        (TextMode::Surrogate, Some(k)) => Some(read_key(k)?),
        (TextMode::Surrogate, None) => bail!("`--mode surrogate` needs `--key-file KEY`"),
        (_, Some(k)) => Some(read_key(k)?),
        (_, None) => None,
    };
    let shift = keys
        .as_ref()
        .map_or(0, |k| k.date_offset("airlock deid text", 365));
    let ctx = keys.as_ref().map(|k| airlock_text::SurrogateContext {
        key: k.expose_secret(),
        patient: "file",
        date_shift_days: shift,
    });
    let engine = airlock_text::Engine::builtin();

    let started = Instant::now();
    let tmp = tmp_path(&t.out);
    let (lines, spans, bytes, errors) = if jsonl {
        let input =
            File::open(&t.input).with_context(|| format!("opening `{}`", t.input.display()))?;
        let out = File::create(&tmp).with_context(|| format!("creating `{}`", tmp.display()))?;
        let mut w = BufWriter::new(out);
        let s =
            airlock_text::process_jsonl(engine, BufReader::new(input), &mut w, mode, ctx.as_ref())
                .with_context(|| format!("`{}`", t.input.display()))?;
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing `{}`", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("writing `{}`", tmp.display()))?;
        let errors: Vec<String> = s.errors.iter().map(ToString::to_string).collect();
        let spans: BTreeMap<String, usize> = s
            .spans_by_kind
            .iter()
            .map(|(k, n)| (k.name().to_owned(), *n))
            .collect();
        (s.lines, spans, s.text_bytes, errors)
    } else {
        let bytes =
            std::fs::read(&t.input).with_context(|| format!("reading `{}`", t.input.display()))?;
        let Ok(text) = String::from_utf8(bytes) else {
            bail!("`{}` is not UTF-8 text", t.input.display());
        };
        let red = airlock_text::redact_plain(engine, &text, None, mode, ctx.as_ref());
        write_atomic(&tmp, red.text.as_bytes(), false)
            .with_context(|| format!("writing `{}`", tmp.display()))?;
        let mut spans = BTreeMap::new();
        for s in &red.spans {
            *spans.entry(s.kind.name().to_owned()).or_insert(0) += 1;
        }
        (text.lines().count(), spans, text.len(), Vec::new())
    };
    std::fs::rename(&tmp, &t.out).with_context(|| format!("writing `{}`", t.out.display()))?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);

    let total: usize = spans.values().sum();
    println!(
        "de-identified `{}` -> `{}` ({} mode)",
        t.input.display(),
        t.out.display(),
        format!("{:?}", t.mode).to_lowercase()
    );
    println!(
        "  {lines} line(s), {:.2} MB in {secs:.3} s ({:.2} MB/s), {total} span(s)",
        bytes as f64 / 1e6,
        bytes as f64 / secs / 1e6
    );
    for (kind, n) in &spans {
        println!("  {kind:<12} {n:>8}");
    }
    if jsonl {
        println!(
            "  note: each output line keeps its input fields, the original `text` included; \
             drop `text` before the file leaves the clinical zone"
        );
    }
    if errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: {} malformed line(s) in `{}` were skipped:",
        errors.len(),
        t.input.display()
    );
    for e in errors.iter().take(LIST_MAX) {
        eprintln!("  {e}");
    }
    if errors.len() > LIST_MAX {
        eprintln!("  ... and {} more", errors.len() - LIST_MAX);
    }
    Ok(ExitCode::FAILURE)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// deid eval

fn run_eval(e: EvalArgs) -> anyhow::Result<ExitCode> {
    let data = std::fs::read_to_string(&e.corpus)
        .with_context(|| format!("reading the corpus `{}`", e.corpus.display()))?;
    let corpus = eval::load_corpus(&data, e.format.into())
        .with_context(|| format!("loading the corpus `{}`", e.corpus.display()))?;
    if e.throughput {
        return throughput(&corpus);
    }
    let report = if let Some(pred) = &e.predictions {
        let text = std::fs::read_to_string(pred)
            .with_context(|| format!("reading the predictions `{}`", pred.display()))?;
        let preds = eval::load_predictions(&corpus, &text)
            .with_context(|| format!("loading the predictions `{}`", pred.display()))?;
        eval::score(
            &corpus,
            &preds,
            e.system.as_deref().unwrap_or("predictions"),
        )
    } else {
        let engine = airlock_text::Engine::builtin();
        let started = Instant::now();
        let report = eval::evaluate(engine, &corpus);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "airlock: {} entries, {} bytes in {secs:.3} s: {:.2} MB/s, {:.0} notes/s (one core, \
             includes scoring)",
            corpus.entries.len(),
            report.text_bytes,
            report.text_bytes as f64 / secs / 1e6,
            corpus.entries.len() as f64 / secs
        );
        report
    };
    match &e.json {
        Some(p) if p.as_os_str() == "-" => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Some(p) => {
            let json = serde_json::to_vec_pretty(&report)?;
            write_atomic(p, &json, false)
                .with_context(|| format!("writing the JSON report `{}`", p.display()))?;
            print!("{}", eval::render_table(&report));
            println!("JSON report: `{}`", p.display());
        }
        None => print!("{}", eval::render_table(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The engine alone over the corpus, repeated for at least a second (three passes minimum).
fn throughput(corpus: &eval::Corpus) -> anyhow::Result<ExitCode> {
    let t = eval::throughput(airlock_text::Engine::builtin(), corpus);
    println!("{}", serde_json::to_string(&t)?);
    Ok(ExitCode::SUCCESS)
}
