//! The `mailcensus` command: a thin layer over the library (argument parsing, progress bar,
//! Ctrl-C, exit codes).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use mailcensus::auth::dns;
use mailcensus::auth::keys::{self, KeyStore, Lookup};
use mailcensus::auth::{Policy, Verifier, VerifyAt};
use mailcensus::classify::rules::Rules;
use mailcensus::output::Formats;
use mailcensus::scan::{self, ScanError, ScanOptions};
use mailcensus::{output, summary};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Write a line to stderr; a closed or full stderr loses the line but never stops the run (the
/// results on disk are what matters), unlike `eprintln!`, which panics.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// [`say!`] without the line break.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// Exit status when every input was read.
const EXIT_OK: u8 = 0;
/// Exit status for an error that stopped the run (bad output directory, write failure).
const EXIT_ERROR: u8 = 1;
/// Exit status for a bad command line: an unknown option (clap's own), or a file or server it names
/// that cannot be used (a missing key or rules file, a bad `--dns` address).
const EXIT_USAGE: u8 = 2;
/// Exit status when the run finished but some inputs could not be read (listed in summary.json).
const EXIT_PARTIAL: u8 = 3;

/// Marks an error as the command line's (exit [`EXIT_USAGE`]), as context on the error.
#[derive(Debug)]
struct BadArgument;

impl std::fmt::Display for BadArgument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bad command-line argument")
    }
}
/// An error and its causes, outermost first, each once: the marker that sets the exit code is
/// left out, and a cause whose text its wrapper already ends with is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let marker = BadArgument.to_string();
    let mut text = String::new();
    for cause in e.chain().map(|c| c.to_string()).filter(|c| *c != marker) {
        if text.ends_with(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// Exit status after Ctrl-C or SIGTERM (no result files are left behind).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "mailcensus",
    version,
    about = "A census of very large mail corpora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read mail archives (mbox, Maildir, .eml trees, gzip/zstd/xz/bzip2, tar; `-` for stdin)
    /// and write report.html, messages.csv, signatures.csv, campaigns.csv,
    /// campaign_evidence.csv, timeline.csv and .svg, and summary.json (and received.csv with
    /// --received).
    #[command(after_help = SCAN_EXAMPLES)]
    Scan(ScanArgs),
    /// Cut the inputs of a scan into N shards that run anywhere (a Slurm array, GNU parallel,
    /// several machines): writes a plan file for `scan --plan` and `merge`.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Make the result files of one scan from the partials of a plan's shards (`scan --plan`):
    /// campaigns and relay abuse are decided over all of them; the files equal a single scan's.
    Merge(MergeArgs),
    /// Print a shell completion script to standard output, e.g.
    /// `mailcensus completions bash > /etc/bash_completion.d/mailcensus`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output: `mailcensus man > mailcensus.1`.
    Man,
    /// Write a synthetic, DKIM-signed spam-trap corpus with its truth: corpus.mbox, keys.zone,
    /// keys.private, truth.csv (one row per signature) and messages-truth.csv (one row per
    /// message: campaign, echospoof, platform). Spam campaigns, relay-abuse (EchoSpoofing) waves
    /// whose shape is set by the --wave-* options, the spoofed brands' own mail, one-off noise,
    /// and links to three shared platforms (--platform-share).
    Generate(GenerateArgs),
}

const SCAN_EXAMPLES: &str = "Examples:
  mailcensus scan trap.mbox.gz --keys keys.zone --out results
  mailcensus scan /srv/Maildir --out results --format csv,parquet --received
  zcat day.mbox.gz | mailcensus scan - --no-dkim --out results
  mailcensus scan trap/ --dns 127.0.0.1 --keys-out keys.txt --out results   (then --keys keys.txt offline)
  mailcensus scan --plan census.plan --shard 3/16 --out parts/3 --keys keys.zone";

const PLAN_EXAMPLES: &str = "Examples:
  mailcensus plan /srv/trap --shards 16 --out census.plan
  mailcensus scan --plan census.plan --shard 0/16 --out parts/0 --keys keys.zone   (each of 0..15)
  mailcensus merge parts/* --out results --format csv,parquet";

#[derive(clap::Args)]
struct GenerateArgs {
    /// Number of messages.
    #[arg(long)]
    messages: usize,
    /// Seed: the same seed (and keys) gives the same corpus.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the files (created if missing).
    #[arg(long, short)]
    out: PathBuf,
    /// Reuse the private keys of an earlier run (DIR/keys.private) instead of making new ones.
    #[arg(long, value_name = "DIR")]
    keys_from: Option<PathBuf>,
    /// Make every key of one kind: rsa-1024, rsa-2048 or ed25519 (for benchmarks).
    #[arg(long, value_name = "KIND", value_parser = parse_key_kind)]
    key_kind: Option<mailcensus::generate::KeyKind>,
    /// Number of relay-abuse (EchoSpoofing) waves [default: 3].
    #[arg(long, value_name = "N")]
    waves: Option<usize>,
    /// Brands each wave spoofs, drawn per wave from MIN-MAX (or N for exactly N; at most 12);
    /// each message goes through the relay of the brand in its From [default: 1-2].
    #[arg(long, value_name = "MIN-MAX", value_parser = mailcensus::generate::parse_count_range)]
    wave_brands: Option<(usize, usize)>,
    /// Attacker Microsoft 365 tenants per wave, MIN-MAX or N (at most 200) [default: 2-5].
    #[arg(long, value_name = "MIN-MAX", value_parser = mailcensus::generate::parse_count_range)]
    wave_tenants: Option<(usize, usize)>,
    /// Injector /24 networks (the VPS first hop) per wave, MIN-MAX or N (at most 100)
    /// [default: 1-2].
    #[arg(long, value_name = "MIN-MAX", value_parser = mailcensus::generate::parse_count_range)]
    wave_nets: Option<(usize, usize)>,
    /// Landing domains per wave, MIN-MAX or N (at most 50); they rotate: the wave's time window
    /// is cut into one slice per domain and 85% of a slice's messages link to its domain
    /// [default: 2-3].
    #[arg(long, value_name = "MIN-MAX", value_parser = mailcensus::generate::parse_count_range)]
    wave_landings: Option<(usize, usize)>,
    /// Share of messages (0 to 1, of every stream, unevenly: each stream uses 0.5-1.5 times it)
    /// that link to one of three shared platforms (link shortener, click tracker, image CDN);
    /// 0 for none [default: 0.1].
    #[arg(long, value_name = "F")]
    platform_share: Option<f64>,
    /// No summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct PlanArgs {
    /// Files and directories to read, as `scan` takes them (standard input cannot be planned).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Number of shards.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    shards: u32,
    /// The plan file to write.
    #[arg(long, short)]
    out: PathBuf,
    /// Largest message kept, in MiB (every shard reads with the plan's limits) [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_message_mib: Option<u32>,
    /// Largest header block, in KiB [default: 1024].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1048576))]
    max_header_kib: Option<u32>,
    /// Cut mbox files larger than this into byte ranges of about this size (default: an eighth
    /// of a shard's share of the bytes, at least 16 MiB).
    #[arg(long, value_name = "BYTES", hide = true)]
    range_bytes: Option<u64>,
    /// The splitter's block size (for tests: cut points are block starts).
    #[arg(long, value_name = "BYTES", hide = true, value_parser = clap::value_parser!(u64).range(4096..=1 << 30))]
    block_bytes: Option<u64>,
    /// No summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// The shards' directories (`scan --plan ... --out DIR`), in any order.
    #[arg(required = true)]
    parts: Vec<PathBuf>,
    /// Directory for the result files (created if missing).
    #[arg(long, short)]
    out: PathBuf,
    /// Formats of the result tables, comma-separated: csv, parquet, jsonl.
    #[arg(long, default_value = "csv", value_name = "LIST")]
    format: String,
    /// Write CSV cells as they are: do not prefix cells starting with = + - @ with a quote.
    #[arg(long)]
    raw_cells: bool,
    /// Merge the finished shards there are when some are missing or unfinished (summary.json
    /// lists them; exit status 3).
    #[arg(long)]
    allow_partial: bool,
    /// Threads of the grouping passes (default: one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    threads: usize,
    /// No summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct ScanArgs {
    /// Files and directories to read (directories are walked recursively).
    #[arg(required_unless_present = "plan", conflicts_with = "plan")]
    inputs: Vec<PathBuf>,
    /// Scan one shard of this plan (`mailcensus plan`) into a partial in --out, for `merge`.
    #[arg(
        help_heading = "Sharding (see `mailcensus plan`)",
        long,
        value_name = "FILE"
    )]
    plan: Option<PathBuf>,
    /// With --plan: the shard to scan, I/N (I from 0). Default: I from SLURM_ARRAY_TASK_ID
    /// and N from the plan.
    #[arg(
        help_heading = "Sharding (see `mailcensus plan`)",
        long,
        value_name = "I/N",
        requires = "plan"
    )]
    shard: Option<String>,
    /// With --plan: continue a shard that was stopped after its last committed segment (a
    /// finished shard is left as it is).
    #[arg(
        help_heading = "Sharding (see `mailcensus plan`)",
        long,
        requires = "plan"
    )]
    resume: bool,
    /// With --plan: commit a segment every this many MiB of input [default: 256].
    #[arg(long, value_name = "MIB", requires = "plan", hide = true)]
    segment_mib: Option<u64>,
    /// With --plan, for tests: commit segments every this many bytes.
    #[arg(long, value_name = "BYTES", requires = "plan", hide = true)]
    segment_bytes: Option<u64>,
    /// For tests: end the process abruptly after this many segments, as a killed shard would.
    #[arg(long, value_name = "N", requires = "plan", hide = true)]
    abort_after_segments: Option<u32>,
    /// Directory for the result files (created if missing).
    #[arg(help_heading = "Output", long, short)]
    out: PathBuf,
    /// Worker threads (default: one per core; at most 8 per core).
    #[arg(help_heading = "Reading", long, short = 'j', default_value_t = 0)]
    threads: usize,
    /// The name standard input's messages get in the `source` column (default `-`).
    #[arg(help_heading = "Reading", long, value_name = "NAME")]
    label: Option<String>,
    /// Read files with buffered reads instead of memory maps (for network filesystems, or when
    /// files may be truncated while the scan runs).
    #[arg(help_heading = "Reading", long)]
    no_mmap: bool,
    /// Formats of the result tables, comma-separated: csv, parquet, jsonl (for example
    /// `csv,parquet`). Parquet and JSON Lines are typed and never formula-guarded. (A shard
    /// writes Parquet partials; give the formats to `merge`.)
    #[arg(
        help_heading = "Output",
        long,
        default_value = "csv",
        value_name = "LIST",
        conflicts_with = "plan"
    )]
    format: String,
    /// Write CSV cells as they are: do not prefix cells starting with = + - @ with a quote.
    #[arg(help_heading = "Output", long, conflicts_with = "plan")]
    raw_cells: bool,
    /// Also write received.csv: one row per Received hop (from, IP, by, protocol, time).
    #[arg(help_heading = "Output", long)]
    received: bool,
    /// DKIM keys: a DNS zone file or `name TXT-value` lines (repeatable). Without keys every
    /// signature is `no-key`; the network is never used.
    #[arg(help_heading = "DKIM", long = "keys", value_name = "FILE")]
    keys: Vec<PathBuf>,
    /// Do not verify DKIM (scan only; no signatures table). Relay abuse is then judged from the
    /// verdicts the trap recorded at receipt only
    #[arg(help_heading = "DKIM", long, conflicts_with_all = ["keys", "dns", "keys_out", "verify_at", "allow_weak_keys", "accept_rsa_sha1"])]
    no_dkim: bool,
    /// Do not group campaigns or look for relay abuse (no campaigns.csv, campaign_evidence.csv,
    /// timeline.csv, timeline.svg; the relay_abuse, relay_abuse_reasons and campaign cells and
    /// landing_domains stay empty).
    #[arg(help_heading = "Campaigns and relay abuse", long)]
    no_campaigns: bool,
    /// Hop classification rules (host suffixes and networks) instead of the built-in
    /// data/relay-rules.txt; same format.
    #[arg(help_heading = "Campaigns and relay abuse", long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// When signatures are judged for x= expiry: `receipt` (each message's receipt time),
    /// `now`, or an RFC 3339 time such as 2022-11-07T17:54:24Z.
    #[arg(help_heading = "DKIM", long, default_value = "receipt", value_parser = parse_verify_at)]
    verify_at: VerifyAt,
    /// Accept RSA keys under 1024 bits (old archives); by default they are permerror (RFC 8301).
    #[arg(help_heading = "DKIM", long)]
    allow_weak_keys: bool,
    /// Count verified rsa-sha1 signatures as pass (marked "legacy rsa-sha1"); by default they
    /// are permerror (RFC 8301 §3.1), with the cryptographic outcome in the detail column.
    #[arg(long)]
    accept_rsa_sha1: bool,
    /// Fetch keys missing from --keys live from this DNS server (ADDR[:PORT], port 53 by
    /// default); only this server is asked. Without --dns the network is never used.
    #[arg(help_heading = "DKIM", long, value_name = "ADDR[:PORT]")]
    dns: Option<String>,
    /// Per-query time limit for --dns, in milliseconds (retries included).
    #[arg(help_heading = "DKIM", long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    dns_timeout_ms: u64,
    /// Queries in flight at once for --dns.
    #[arg(help_heading = "DKIM", long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    dns_concurrency: u32,
    /// Write every key used (loaded, fetched, and names that did not exist) to FILE in the
    /// `name "value"` line format, so the next run can be repeated offline with --keys FILE.
    #[arg(help_heading = "DKIM", long, value_name = "FILE")]
    keys_out: Option<PathBuf>,
    /// Largest message kept from a compressed or streamed input, in MiB; larger ones are
    /// reported as too-large (decompression-bomb guard) [default: 64].
    #[arg(help_heading = "Reading", long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_message_mib: Option<u32>,
    /// Largest header block, in KiB; larger ones are header-too-large [default: 1024].
    #[arg(help_heading = "Reading", long, value_parser = clap::value_parser!(u32).range(1..=1048576))]
    max_header_kib: Option<u32>,
    /// No progress bar and no summary on stderr.
    #[arg(help_heading = "Output", long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Scan(args) => finish(run_scan(args)),
        Command::Plan(args) => finish(run_plan(args)),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "mailcensus", &mut std::io::stdout());
            ExitCode::from(EXIT_OK)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::from(EXIT_OK),
                Err(e) => {
                    say!("mailcensus: error: cannot write the manual page: {e}");
                    ExitCode::from(EXIT_ERROR)
                }
            }
        }
        Command::Merge(args) => finish(run_merge(args)),
        Command::Generate(args) => match run_generate(args) {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => {
                say!("mailcensus: error: {}", error_text(&e));
                ExitCode::from(EXIT_ERROR)
            }
        },
    }
}

/// The exit status of a command's result (errors said on stderr).
fn finish(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say!("mailcensus: error: {}", error_text(&e));
            if e.downcast_ref::<BadArgument>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}

/// Default largest message, in MiB.
const MAX_MESSAGE_MIB: u32 = 64;
/// Default largest header block, in KiB.
const MAX_HEADER_KIB: u32 = 1024;

fn run_plan(args: PlanArgs) -> anyhow::Result<u8> {
    use mailcensus::cluster::plan::{Plan, PlanOptions};
    let mut opts = ScanOptions::builder()
        .max_message_bytes(args.max_message_mib.unwrap_or(MAX_MESSAGE_MIB) as usize * (1 << 20))
        .max_header_bytes(args.max_header_kib.unwrap_or(MAX_HEADER_KIB) as usize * (1 << 10))
        .build()
        .map_err(anyhow::Error::from)
        .context(BadArgument)?;
    if let Some(bytes) = args.block_bytes {
        opts.stream.block_bytes = bytes as usize;
    }
    let started = Instant::now();
    let plan = Plan::make(
        &args.inputs,
        &opts,
        PlanOptions {
            shards: args.shards,
            range_bytes: args.range_bytes,
        },
    )
    .map_err(|e| match e {
        mailcensus::cluster::ClusterError::Usage(_) => anyhow::Error::from(e).context(BadArgument),
        e => anyhow::Error::from(e),
    })?;
    plan.write(&args.out)?;
    if !args.quiet {
        let ranges = plan
            .pieces
            .iter()
            .filter(|p| matches!(p.piece, mailcensus::input::units::Piece::Range { .. }))
            .count();
        let mut per_shard = vec![0u64; args.shards as usize];
        for p in &plan.pieces {
            per_shard[p.shard as usize] += p.bytes();
        }
        say!(
            "mailcensus: plan {} in {:.1}s: {} pieces ({ranges} byte ranges of large mbox files), {:.1} MB in {} shards of {:.1} to {:.1} MB; written to {}",
            plan.header.id,
            started.elapsed().as_secs_f64(),
            plan.pieces.len(),
            plan.header.bytes as f64 / 1e6,
            args.shards,
            per_shard.iter().min().copied().unwrap_or(0) as f64 / 1e6,
            per_shard.iter().max().copied().unwrap_or(0) as f64 / 1e6,
            args.out.display()
        );
        say!(
            "  next: mailcensus scan --plan {} --shard I/{} --out parts/I (I = 0..{}), then mailcensus merge parts/* --out results",
            args.out.display(),
            args.shards,
            args.shards - 1
        );
    }
    Ok(EXIT_OK)
}

fn run_merge(args: MergeArgs) -> anyhow::Result<u8> {
    use mailcensus::cluster::merge::{MergeOptions, merge};
    let cancel = scan::Cancel::new();
    install_interrupt_handler(cancel.clone(), false)?;
    let formats = Formats::parse(&args.format)
        .map_err(anyhow::Error::msg)
        .context(BadArgument)?;
    let merged = merge(
        &args.parts,
        &args.out,
        &MergeOptions {
            formats,
            raw_cells: args.raw_cells,
            allow_partial: args.allow_partial,
            threads: args.threads,
            cancel,
        },
    );
    let merged = match merged {
        Ok(m) => m,
        Err(mailcensus::cluster::ClusterError::Scan(ScanError::Interrupted)) => {
            say!("mailcensus: interrupted; no result files were written");
            return Ok(EXIT_INTERRUPTED);
        }
        Err(e @ mailcensus::cluster::ClusterError::Usage(_)) => {
            return Err(anyhow::Error::from(e).context(BadArgument));
        }
        Err(e) => return Err(e).context("merge failed"),
    };
    if !args.quiet {
        say_raw!("{}", summary::human_summary(&merged.report));
        say!(
            "  merged {} of {} shards{}",
            merged.shards as usize - merged.missing.len(),
            merged.shards,
            match merged.missing.is_empty() {
                true => String::new(),
                false => format!(
                    "; MISSING shards {:?}: the result is partial",
                    merged.missing
                ),
            }
        );
        say!("  results in {}", args.out.display());
    }
    Ok(
        if summary::complete(&merged.report) && merged.missing.is_empty() {
            EXIT_OK
        } else {
            EXIT_PARTIAL
        },
    )
}

/// Ctrl-C and SIGTERM: stop, remove temporary outputs and leave. A shard keeps its committed
/// segments (`--resume` continues after them), so it never claims to be complete.
fn install_interrupt_handler(cancel: scan::Cancel, shard: bool) -> anyhow::Result<()> {
    ctrlc::set_handler(move || {
        cancel.cancel();
        // Remove temporary outputs now and leave: a worker may be blocked reading a pipe.
        let aborted = output::abort_pending();
        if shard {
            say!("\nmailcensus: interrupted; the shard's committed segments are kept: run it again with --resume");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        if aborted.committed && aborted.removed == 0 {
            say!("\nmailcensus: interrupted after the results were complete");
            std::process::exit(i32::from(EXIT_OK));
        }
        say!("\nmailcensus: interrupted; no result files were written");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    })
    .context("cannot install the Ctrl-C handler")
}

fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    // Unset knobs keep the defaults of GenerateOptions::new.
    let mut opts =
        mailcensus::generate::GenerateOptions::new(args.messages, args.seed, args.out.clone());
    opts.keys_from = args.keys_from;
    opts.only = args.key_kind;
    opts.waves = args.waves.unwrap_or(opts.waves);
    opts.wave_brands = args.wave_brands.unwrap_or(opts.wave_brands);
    opts.wave_tenants = args.wave_tenants.unwrap_or(opts.wave_tenants);
    opts.wave_nets = args.wave_nets.unwrap_or(opts.wave_nets);
    opts.wave_landings = args.wave_landings.unwrap_or(opts.wave_landings);
    opts.platform_share = args.platform_share.unwrap_or(opts.platform_share);
    let r = mailcensus::generate::generate(&opts)?;
    if !args.quiet {
        let counts: Vec<String> = r.expected.iter().map(|(k, v)| format!("{k} {v}")).collect();
        say!(
            "mailcensus: generated {} messages, {} signatures ({}), {:.1} MB in {}",
            r.messages,
            r.signatures,
            counts.join(", "),
            r.mbox_bytes as f64 / 1e6,
            args.out.display()
        );
        say!(
            "  keys {:.2}s; messages {:.2}s ({:.0} messages/s)",
            r.key_seconds,
            r.message_seconds,
            r.messages as f64 / r.message_seconds.max(1e-6)
        );
    }
    Ok(())
}

/// Worker threads per core at most (`--threads` above that is capped, with a message).
const THREADS_PER_CORE: usize = 8;

fn run_scan(args: ScanArgs) -> anyhow::Result<u8> {
    let cancel = scan::Cancel::new();
    install_interrupt_handler(cancel.clone(), args.plan.is_some())?;
    let plan = match &args.plan {
        Some(path) => Some(mailcensus::cluster::plan::Plan::read(path).context(BadArgument)?),
        None => None,
    };

    // Thread start-up grows with the square of the count; beyond a few per core nothing is
    // gained.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let max_threads = THREADS_PER_CORE * cores;
    // A Slurm task gets the cores it asked for.
    let asked = match (args.threads, std::env::var("SLURM_CPUS_PER_TASK")) {
        (0, Ok(n)) => n.trim().parse().unwrap_or(0),
        (n, _) => n,
    };
    let threads = if asked > max_threads {
        say!(
            "mailcensus: --threads {asked} is more than {THREADS_PER_CORE} per core ({max_threads} on this machine); using {max_threads}"
        );
        max_threads
    } else {
        asked
    };
    let formats = Formats::parse(&args.format)
        .map_err(anyhow::Error::msg)
        .context(BadArgument)?;
    let mut opts = ScanOptions::builder()
        .threads(threads)
        .mmap(!args.no_mmap)
        .stdin_name(args.label.as_deref().unwrap_or("-"))
        .cancel(cancel)
        .raw_cells(args.raw_cells)
        .received(args.received)
        .formats(formats)
        .max_message_bytes(args.max_message_mib.unwrap_or(MAX_MESSAGE_MIB) as usize * (1 << 20))
        .max_header_bytes(args.max_header_kib.unwrap_or(MAX_HEADER_KIB) as usize * (1 << 10))
        .build()
        .map_err(anyhow::Error::from)
        .context(BadArgument)?;
    if let Some(plan) = &plan {
        let limits = plan.header.limits;
        let mib = limits.max_message_bytes >> 20;
        let kib = limits.max_header_bytes >> 10;
        if args.max_message_mib.is_some_and(|m| m as usize != mib)
            || args.max_header_kib.is_some_and(|k| k as usize != kib)
        {
            return Err(anyhow::anyhow!(
                "the plan was made with --max-message-mib {mib} --max-header-kib {kib}; a shard reads with the plan's limits (give them to `mailcensus plan`)"
            ))
            .context(BadArgument);
        }
        if args.dns.is_some() {
            return Err(anyhow::anyhow!(
                "--dns cannot be used with --plan: every shard must verify with the same keys. Fetch them once (`mailcensus scan INPUTS --dns SERVER --keys-out keys.txt --out tmp`) and give --keys keys.txt to every shard"
            ))
            .context(BadArgument);
        }
    }
    let rules_text = match (&args.rules, args.no_campaigns) {
        (Some(path), false) => std::fs::read(path).unwrap_or_default(),
        (None, false) => b"built-in".to_vec(),
        (_, true) => Vec::new(),
    };
    let mut keys_text = Vec::new();
    opts.campaigns = match (&args.rules, args.no_campaigns) {
        (_, true) => None,
        (Some(path), false) => Some(Arc::new(
            Rules::from_file(path)
                .map_err(anyhow::Error::from)
                .context(BadArgument)?,
        )),
        (None, false) => Some(Arc::new(Rules::builtin())),
    };
    let mut key_files = Vec::new();
    if !args.no_dkim {
        let mut store = KeyStore::new();
        for path in &args.keys {
            let loaded = if path.is_dir() {
                store.load_dir(path)
            } else {
                store.load_file(path).map(|s| vec![s])
            }
            .context(BadArgument)?;
            // DKIM-looking records per file (a record's origin is FILE:LINE).
            let mut usable_in: std::collections::HashMap<&str, usize> = Default::default();
            for (_, records) in store
                .iter()
                .filter(|(name, _)| name.contains("._domainkey."))
            {
                for r in records.iter().filter(|r| looks_like_dkim_key(&r.value)) {
                    let file = r
                        .origin
                        .rsplit_once(':')
                        .map_or(r.origin.as_str(), |(f, _)| f);
                    *usable_in.entry(file).or_default() += 1;
                }
            }
            let usable_of = |stats: &keys::LoadStats| {
                usable_in.get(stats.source.as_str()).copied().unwrap_or(0)
            };
            // A file (or a directory of them) that gave no DKIM key at all is the wrong input,
            // not an archive with a few bad lines: stop before a whole run reports every
            // signature `no-key`. (A file of failed lookups only, as `--keys-out` writes after
            // a dead server, replays those failures and is no mistake.)
            let usable: usize = loaded.iter().map(usable_of).sum();
            let negative: usize = loaded.iter().map(|s| s.negative).sum();
            let records: usize = loaded.iter().map(|s| s.records).sum();
            let read_something = loaded.iter().any(|s| s.records > 0 || !s.errors.is_empty());
            if usable == 0 && negative == 0 && read_something {
                let first = loaded
                    .iter()
                    .flat_map(|s| s.errors.first())
                    .next()
                    .map(|e| format!("; the first unreadable line: {e}"))
                    .unwrap_or_default();
                return Err(anyhow::anyhow!(
                    "{}: no usable DKIM key ({records} records, none named selector._domainkey.domain with a p= tag{first})",
                    path.display(),
                ))
                .context(BadArgument);
            }
            key_files.push(summary::KeyFile {
                path: path.to_string_lossy().into_owned(),
                files: loaded.len(),
                records,
                usable,
                bad_lines: loaded.iter().map(|s| s.errors.len()).sum(),
            });
            for stats in loaded {
                // A bad line does not lose the rest of a key archive, but it is never silent.
                for e in stats.errors.iter().take(20) {
                    say!("mailcensus: warning: key file {e}");
                }
                if stats.errors.len() > 20 {
                    say!(
                        "mailcensus: warning: {} more unreadable lines in {}",
                        stats.errors.len() - 20,
                        stats.source
                    );
                }
            }
        }
        warn_about_keys_that_are_not_dkim(&store);
        let policy = Policy {
            verify_at: args.verify_at,
            min_rsa_bits: if args.allow_weak_keys { 0 } else { 1024 },
            accept_rsa_sha1: args.accept_rsa_sha1,
        };
        let mut failed = BTreeMap::new();
        if let Some(server) = &args.dns {
            failed = fetch_missing_keys(&args, server, &opts, &mut store)?;
        }
        if let Some(path) = &args.keys_out {
            write_keys(&store, path)?;
        }
        store.write_lines(&mut keys_text)?;
        opts.dkim = Some(Arc::new(Verifier::with_lookup_failures(
            &store, policy, &failed,
        )?));
    }

    if let Some(plan) = &plan {
        let fingerprint = mailcensus::cluster::shard::fingerprint_of(&keys_text, &rules_text);
        return run_shard(&args, plan, opts, fingerprint, key_files);
    }
    let show = !args.quiet && std::io::stderr().is_terminal();
    let bar = show.then(|| progress_bar(&args.inputs, &args.out));
    let mut last = Instant::now();
    let started = Instant::now();
    let mut progress = |t: &mailcensus::aggregate::Totals| {
        if let Some((bar, bounded)) = &bar
            && last.elapsed() >= Duration::from_millis(100)
        {
            last = Instant::now();
            if *bounded && t.message_bytes > bar.length().unwrap_or(0) {
                bar.set_length(t.message_bytes);
            }
            bar.set_position(t.message_bytes);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{} msgs, {:.0} msgs/s",
                t.messages,
                t.messages as f64 / secs
            ));
        }
    };
    let inputs: Vec<String> = args
        .inputs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut settings = summary::RunSettings::of(&opts);
    if let Some(dkim) = &mut settings.dkim {
        dkim.key_files = key_files;
    }
    let summary_of = |r: &scan::ScanReport| summary::summary_document(r, &inputs, &settings, None);
    let result = scan::scan(&args.inputs, &args.out, &opts, &mut progress, &summary_of);
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(ScanError::Interrupted) => {
            say!("mailcensus: interrupted; no result files were written");
            return Ok(EXIT_INTERRUPTED);
        }
        Err(e) => return Err(e).context("scan failed"),
    };
    if !args.quiet {
        say_raw!("{}", summary::human_summary(&report));
        say!("  results in {}", args.out.display());
    }
    Ok(if summary::complete(&report) {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}

/// Scan one shard of a plan into a partial.
fn run_shard(
    args: &ScanArgs,
    plan: &mailcensus::cluster::plan::Plan,
    opts: ScanOptions,
    fingerprint: String,
    key_files: Vec<summary::KeyFile>,
) -> anyhow::Result<u8> {
    use mailcensus::cluster::shard::{ShardOptions, run_shard};
    let shards = plan.header.shards;
    let shard = match (&args.shard, std::env::var("SLURM_ARRAY_TASK_ID")) {
        (Some(text), _) => {
            let (i, n) = text
                .split_once('/')
                .and_then(|(i, n)| {
                    Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?))
                })
                .ok_or_else(|| anyhow::anyhow!("--shard {text:?}: expected I/N, such as 0/16"))
                .context(BadArgument)?;
            if n != shards {
                return Err(anyhow::anyhow!(
                    "--shard {text}: the plan has {shards} shards, not {n}"
                ))
                .context(BadArgument);
            }
            i
        }
        (None, Ok(id)) => id
            .trim()
            .parse::<u32>()
            .map_err(|_| anyhow::anyhow!("SLURM_ARRAY_TASK_ID is {id:?}, not a shard number"))
            .context(BadArgument)?,
        (None, Err(_)) => {
            return Err(anyhow::anyhow!(
                "--plan needs --shard I/{shards} (or SLURM_ARRAY_TASK_ID, as in a Slurm array job)"
            ))
            .context(BadArgument);
        }
    };
    if shard >= shards {
        return Err(anyhow::anyhow!(
            "shard {shard} does not exist: the plan has {shards} shards, numbered 0 to {}",
            shards - 1
        ))
        .context(BadArgument);
    }
    let so = ShardOptions {
        shard,
        resume: args.resume,
        segment_bytes: args
            .segment_bytes
            .unwrap_or(args.segment_mib.unwrap_or(256) << 20),
        fingerprint,
        key_files,
        abort_after_segments: args.abort_after_segments,
    };
    let result = run_shard(plan, &args.out, &so, &opts, &mut |_| {});
    let report = match result {
        Ok(r) => r,
        Err(mailcensus::cluster::ClusterError::Scan(ScanError::Interrupted)) => {
            say!(
                "mailcensus: interrupted; the shard's committed segments are kept: run it again with --resume"
            );
            return Ok(EXIT_INTERRUPTED);
        }
        Err(e @ mailcensus::cluster::ClusterError::Usage(_)) => {
            return Err(anyhow::Error::from(e).context(BadArgument));
        }
        Err(e) => return Err(e).context(format!("shard {shard} failed")),
    };
    let t = &report.totals;
    if !args.quiet {
        match report.already_finished {
            true => say!(
                "mailcensus: shard {shard} of {shards} was finished already ({} messages); nothing to do",
                t.messages
            ),
            false => say!(
                "mailcensus: shard {shard} of {shards}: {} messages ({} malformed) from {} files, {:.1} MB, in {:.2}s on {} threads; {} segments{}",
                t.messages,
                t.malformed_total(),
                t.files,
                t.message_bytes as f64 / 1e6,
                report.elapsed.as_secs_f64(),
                report.threads,
                report.resumed_segments + report.new_segments,
                match report.resumed_segments {
                    0 => String::new(),
                    n => format!(" ({n} from the earlier run, resumed)"),
                }
            ),
        }
        let unreadable = t.unreadable().count();
        if unreadable > 0 {
            say!("  {unreadable} unreadable inputs (the merge lists them in summary.json)");
        }
        say!("  partial in {}", args.out.display());
    }
    // The partial is written: a scheduler must go on to the merge, which reports unreadable
    // inputs (exit status 3) for the whole census.
    Ok(EXIT_OK)
}

/// A bar over the bytes of all input files (a quick walk first, for the ETA); when a stream is
/// among the inputs (standard input, a pipe, a compressed file or a tar archive) its size is
/// unknown, so the bar shows only the count and the rate. Gives the bar and whether it has a
/// total.
fn progress_bar(inputs: &[PathBuf], out: &std::path::Path) -> (ProgressBar, bool) {
    let mut total = 0u64;
    let mut streamed = false;
    mailcensus::input::walk(inputs, Some(out), |f| match f {
        mailcensus::input::Found::File {
            size: Some(size),
            path,
            ..
        } => {
            total += size;
            let name = path.to_string_lossy().to_ascii_lowercase();
            streamed |= [".gz", ".tgz", ".zst", ".xz", ".bz2", ".tar"]
                .iter()
                .any(|ext| name.ends_with(ext));
        }
        mailcensus::input::Found::File { size: None, .. } | mailcensus::input::Found::Stdin => {
            streamed = true
        }
        _ => {}
    });
    if streamed {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} {spinner} {bytes} read {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        return (bar, false);
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    (bar, true)
}

/// `receipt`, `now` or an RFC 3339 instant.
fn parse_verify_at(text: &str) -> Result<VerifyAt, String> {
    match text {
        "receipt" => Ok(VerifyAt::Receipt),
        "now" => Ok(VerifyAt::Now),
        t => mailcensus::headers::date::parse_date(t.as_bytes())
            .filter(|_| t.len() >= 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T')
            .map(VerifyAt::Fixed)
            .ok_or_else(|| format!("expected receipt, now or an RFC 3339 time, got {t:?}")),
    }
}

/// Look up, at the given DNS server, every key the inputs' signatures need and the store lacks.
/// Found records and NXDOMAIN answers go into the store; failed lookups are returned (they make
/// `temperror` verdicts).
fn fetch_missing_keys(
    args: &ScanArgs,
    server: &str,
    opts: &ScanOptions,
    store: &mut KeyStore,
) -> anyhow::Result<BTreeMap<String, String>> {
    let server = dns::parse_server(server)
        .map_err(|e| anyhow::anyhow!("--dns: {e}"))
        .context(BadArgument)?;
    // The key names are collected in a first pass over the inputs; standard input can be read
    // only once.
    let once_only = |p: &PathBuf| {
        p.as_os_str() == "-" || std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir())
    };
    if let Some(p) = args.inputs.iter().find(|p| once_only(p)) {
        anyhow::bail!(
            "--dns reads the inputs twice and cannot be used with {} (standard input or a pipe)",
            p.display()
        );
    }
    let needed = scan::collect_key_names(&args.inputs, opts).context("cannot read the inputs")?;
    let missing: Vec<String> = needed
        .into_iter()
        .filter(|n| matches!(store.lookup(n), Lookup::Unknown | Lookup::Failed(_)))
        .collect();
    let dns_opts = dns::DnsOptions {
        server,
        timeout: Duration::from_millis(args.dns_timeout_ms),
        concurrency: args.dns_concurrency as usize,
    };
    let started = Instant::now();
    let answers = dns::fetch_txt(&missing, &dns_opts)?;
    let mut failed = BTreeMap::new();
    let (mut found, mut absent) = (0usize, 0usize);
    let origin = format!("dns:{server}");
    for (name, fetched) in answers {
        match fetched {
            dns::Fetched::Records(mut values) => {
                // Servers rotate record order; sorted, the run does not depend on it.
                values.sort();
                found += 1;
                for v in values {
                    store.insert(&name, v, origin.clone());
                }
            }
            dns::Fetched::NxDomain => {
                absent += 1;
                store.insert_negative(&name);
            }
            dns::Fetched::Failed(why) => {
                // Kept in the store too, so --keys-out replays the failure offline.
                let failure = if why.contains("timed out") {
                    keys::Failure::Timeout
                } else {
                    keys::Failure::ServFail
                };
                store.insert_failure(&name, failure);
                failed.insert(name, why);
            }
        }
    }
    if !args.quiet {
        say!(
            "mailcensus: DNS {server}: {} key names looked up in {:.1}s: {found} found, {absent} absent, {} failed",
            missing.len(),
            started.elapsed().as_secs_f64(),
            failed.len()
        );
    }
    Ok(failed)
}

/// A key file of the wrong kind (notes, a hosts file) loads as records without complaint; say so
/// when records do not look like DKIM keys: no `._domainkey.` in the name, or no `p=` tag.
fn warn_about_keys_that_are_not_dkim(store: &KeyStore) {
    let odd: Vec<&str> = store
        .iter()
        .filter(|(name, records)| {
            !name.contains("._domainkey.") || records.iter().all(|r| !looks_like_dkim_key(&r.value))
        })
        .map(|(name, _)| name)
        .collect();
    if let Some(first) = odd.first() {
        say!(
            "mailcensus: warning: {} of {} key names do not look like DKIM keys (no '._domainkey.' in the name, or no p= in the record), e.g. {first}",
            odd.len(),
            store.iter().count()
        );
    }
}

/// Whether a TXT record's value has the `p=` tag every DKIM key record has.
fn looks_like_dkim_key(value: &str) -> bool {
    value
        .split(';')
        .any(|tag| tag.trim_start().starts_with("p="))
}

/// Write the key store to `path` atomically (temporary name, then rename).
fn write_keys(store: &KeyStore, path: &std::path::Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
    );
    store.write_lines(&mut out)?;
    std::io::Write::flush(&mut out)?;
    drop(out);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn parse_key_kind(s: &str) -> Result<mailcensus::generate::KeyKind, String> {
    mailcensus::generate::KeyKind::parse(s)
        .ok_or_else(|| format!("expected rsa-1024, rsa-2048 or ed25519, got {s:?}"))
}
