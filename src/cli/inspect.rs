//! `tally inspect log DIR`: a read-only report of a node's append log (the archived base,
//! segments, entries, the hash chain, the tail), exiting non-zero when `Log::open` would
//! refuse the log.

use std::path::PathBuf;

use anyhow::bail;
use tally_engine::log::{inspect, InspectReport, TailState};

/// Arguments of `tally inspect log`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectLogArgs {
    /// The log directory (the node's `<data_dir>/log`).
    pub dir: PathBuf,
    /// Print only the summary and problems, not one line per segment.
    #[arg(long)]
    pub quiet: bool,
}

/// Prints the report of the log in `args.dir`. Never modifies a file.
///
/// Errors when the directory cannot be read or when the log has a problem that stops
/// `Log::open` (the message names the file, byte offset and sequence). A torn tail is
/// reported but is not an error: the next open cuts it.
pub fn run(args: &InspectLogArgs) -> anyhow::Result<()> {
    let report = inspect(&args.dir)?;
    print!("{}", render(&report, args.quiet));
    if let Some(problem) = &report.problem {
        bail!(
            "the log in {} cannot be opened: {problem}",
            args.dir.display()
        );
    }
    Ok(())
}

/// The human-readable report.
fn render(report: &InspectReport, quiet: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "log {}", report.dir.display());
    match &report.archive_base {
        None if matches!(
            report.problem,
            Some(tally_engine::log::LogError::CorruptArchiveMarker { .. })
        ) =>
        {
            let _ = writeln!(out, "archived: unknown, the archive marker is corrupt");
        }
        None => {
            let _ = writeln!(out, "archived: nothing (the live log starts at sequence 0)");
        }
        Some(base) => {
            let link = if report.archive_link_verified {
                "verified: the first live entry links to it"
            } else {
                "not checked yet: the live log holds no entry"
            };
            let _ = writeln!(
                out,
                "archived: sequences 0..{} (segments 0..{}); last archived entry hash {} ({link})",
                base.first_sequence,
                base.segment_index,
                hex::encode(base.previous_hash)
            );
        }
    }
    for below in &report.segments_below_base {
        let _ = writeln!(
            out,
            "below the archive base, not yet moved {} (ignored by open; the next archive moves it)",
            below.display()
        );
    }
    if !quiet {
        let _ = writeln!(
            out,
            "  {:>6}  {:>12}  {:>12}  {:>10}  {:>14}  {:>12}  file",
            "index", "first seq", "last seq", "entries", "entry bytes", "file bytes"
        );
        for segment in &report.segments {
            let first = segment
                .first_sequence
                .map_or_else(|| "?".to_string(), |s| s.to_string());
            let last = segment
                .last_sequence
                .map_or_else(|| "-".to_string(), |s| s.to_string());
            let entries = if segment.verified {
                segment.entry_count.to_string()
            } else {
                "unverified".to_string()
            };
            let _ = writeln!(
                out,
                "  {:>6}  {first:>12}  {last:>12}  {entries:>10}  {:>14}  {:>12}  {}",
                segment.index,
                segment.entry_bytes,
                segment.file_bytes,
                segment.file.file_name().map_or_else(
                    || segment.file.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            );
        }
    }
    let _ = writeln!(
        out,
        "segments {}, entries {}, entry bytes {}, next sequence {}",
        report.segments.len(),
        report.entry_count,
        report.entry_bytes,
        report.next_sequence
    );
    let _ = writeln!(
        out,
        "last entry hash {}",
        hex::encode(report.last_entry_hash)
    );
    match &report.tail {
        // Where a problem stopped the scan, the tail is unknown.
        _ if report.problem.is_some() => {}
        TailState::Clean => {
            let _ = writeln!(out, "tail: clean");
        }
        TailState::Torn {
            file,
            offset,
            sequence,
            fault,
            garbage_bytes,
            orphan_segments,
        } => {
            let _ = writeln!(
                out,
                "tail: TORN at byte {offset} of {} where entry {sequence} would start ({fault}); \
                 {garbage_bytes} bytes and {} empty later segment(s) will be cut by the next open",
                file.display(),
                orphan_segments.len()
            );
        }
    }
    for temporary in &report.temporary_files {
        let _ = writeln!(
            out,
            "half-created segment {} (no entries; the next open removes it)",
            temporary.display()
        );
    }
    match &report.problem {
        None => {
            let _ = writeln!(out, "chain: verified, the log opens");
        }
        Some(problem) => {
            let _ = writeln!(out, "PROBLEM: {problem}");
        }
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct InspectAuditArgs {
    /// The audit file (`audit.log` in a node's data directory).
    file: std::path::PathBuf,
    /// Print only the verdict and the count, not the events.
    #[arg(long)]
    quiet: bool,
}

/// `tally inspect audit FILE`: checks the chain, prints the events.
pub fn run_audit(args: &InspectAuditArgs) -> anyhow::Result<()> {
    let entries = tally_engine::net::audit::verify(&args.file)?;
    if !args.quiet {
        for entry in &entries {
            println!("{}", serde_json::to_string(entry)?);
        }
    }
    eprintln!(
        "{}: {} events, chain intact",
        args.file.display(),
        entries.len()
    );
    Ok(())
}
