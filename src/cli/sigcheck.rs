//! `tally sigcheck`: verifies JSON lines `{"pk": hex, "msg": hex, "sig": hex}` and prints one
//! JSON line per input line, in order: `{"valid": true|false}`, or `{"line": N, "error": ...}`
//! for a malformed line (the other lines still run). Verification runs in batches of
//! [`SIGCHECK_BATCH_ITEMS_MAX`] items on the chosen backend.

use anyhow::Context;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use tally_kernels::sigverify::{Backend, SigItem, Verifier};

/// Most items verified in one batch (bounds the memory held for one batch).
pub const SIGCHECK_BATCH_ITEMS_MAX: usize = 16384;
/// Longest accepted input line; longer lines are reported as errors.
pub const SIGCHECK_LINE_BYTES_MAX: usize = 1 << 20;

#[derive(clap::Args, Debug)]
pub struct SigcheckArgs {
    /// Signature backend: cpu, gpu or auto.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// File of JSON lines {"pk": hex, "msg": hex, "sig": hex}.
    file: PathBuf,
}

#[derive(serde::Deserialize)]
struct Line {
    pk: String,
    msg: String,
    sig: String,
}

struct Parsed {
    pk: [u8; 32],
    msg: Vec<u8>,
    sig: [u8; 64],
}

/// One input line: parsed, or the error to report for it.
enum Entry {
    Item(Parsed),
    Error(String),
}

fn parse(text: &str) -> Result<Parsed, String> {
    if text.len() > SIGCHECK_LINE_BYTES_MAX {
        return Err(format!("line longer than {SIGCHECK_LINE_BYTES_MAX} bytes"));
    }
    let line: Line = serde_json::from_str(text)
        .map_err(|e| format!("not a JSON object with pk, msg, sig: {e}"))?;
    let pk = hex::decode(&line.pk).map_err(|e| format!("pk is not hex: {e}"))?;
    let msg = hex::decode(&line.msg).map_err(|e| format!("msg is not hex: {e}"))?;
    let sig = hex::decode(&line.sig).map_err(|e| format!("sig is not hex: {e}"))?;
    let pk: [u8; 32] = pk
        .try_into()
        .map_err(|v: Vec<u8>| format!("pk must be 32 bytes, got {}", v.len()))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|v: Vec<u8>| format!("sig must be 64 bytes, got {}", v.len()))?;
    Ok(Parsed { pk, msg, sig })
}

/// Runs the subcommand; writes to stdout.
///
/// Errors: an unknown backend name, `--backend gpu` without a usable GPU, an unreadable file,
/// a failed write to stdout. Malformed lines are not errors: they get an error line.
pub fn run(args: &SigcheckArgs) -> anyhow::Result<()> {
    let backend: Backend = args.backend.parse()?;
    let verifier = Verifier::new(backend)?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut entries: Vec<Entry> = Vec::with_capacity(SIGCHECK_BATCH_ITEMS_MAX);
    let mut first_line_number = 1usize;
    let mut lines = BufReader::new(file).lines();
    loop {
        let next = lines.next();
        let at_end = next.is_none();
        if let Some(line) = next {
            let line = line.with_context(|| format!("cannot read {}", args.file.display()))?;
            entries.push(match parse(line.trim()) {
                Ok(parsed) => Entry::Item(parsed),
                Err(error) => Entry::Error(error),
            });
        }
        if entries.len() == SIGCHECK_BATCH_ITEMS_MAX || (at_end && !entries.is_empty()) {
            flush(&verifier, &entries, first_line_number, &mut out)?;
            first_line_number += entries.len();
            entries.clear();
        }
        if at_end {
            break;
        }
    }
    out.flush()?;
    Ok(())
}

fn flush(
    verifier: &Verifier,
    entries: &[Entry],
    first_line_number: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let items: Vec<SigItem<'_>> = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Item(p) => Some(SigItem {
                public_key: &p.pk,
                message: &p.msg,
                signature: &p.sig,
            }),
            Entry::Error(_) => None,
        })
        .collect();
    let mut verdicts = vec![false; items.len()];
    verifier.verify_batch(&items, &mut verdicts);
    let mut verdicts = verdicts.into_iter();
    for (offset, entry) in entries.iter().enumerate() {
        let line = match entry {
            Entry::Item(_) => serde_json::json!({ "valid": verdicts.next().unwrap_or(false) }),
            Entry::Error(error) => {
                serde_json::json!({ "line": first_line_number + offset, "error": error })
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}
