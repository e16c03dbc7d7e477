//! The ceiling runner: one table of every figure beside the ceiling measured in the same run,
//! with a hardware manifest, as text, Markdown (for docs/BENCHMARKS.md) and JSON.

use serde::Serialize;
use std::fmt::Write;
use std::time::Duration;
use tally_engine::node::Backend;

/// The second ceiling of the pipeline and finality rows: what the node's own signature stage
/// could do at best.
const OUR_VERIFIER: &str = "our CPU verifier, all cores, batch 4096";

/// Which parts to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Sigverify,
    Merkle,
    Storage,
    Pipeline,
    Executor,
    Checkpoint,
    Finality,
    Access,
    Queries,
    Latency,
    Proof,
    Distance,
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Part, String> {
        match s {
            "sigverify" => Ok(Part::Sigverify),
            "merkle" => Ok(Part::Merkle),
            "storage" => Ok(Part::Storage),
            "pipeline" => Ok(Part::Pipeline),
            "executor" => Ok(Part::Executor),
            "checkpoint" => Ok(Part::Checkpoint),
            "finality" => Ok(Part::Finality),
            "access" => Ok(Part::Access),
            "queries" => Ok(Part::Queries),
            "latency" => Ok(Part::Latency),
            "proof" => Ok(Part::Proof),
            "distance" => Ok(Part::Distance),
            other => Err(format!(
                "unknown bench part {other:?}: expected sigverify, merkle, storage, pipeline, executor, checkpoint, finality, access, queries, latency, proof or distance"
            )),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    pub parts: Vec<Part>,
    /// Smaller sizes and shorter runs (a minute instead of several).
    pub quick: bool,
    /// Measure the GPU paths on whatever adapter exists (llvmpipe included, labelled).
    pub gpu: bool,
    /// Folder for the storage measurement's files (same disk as the node's data).
    pub scratch_dir: std::path::PathBuf,
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub part: String,
    pub figure: String,
    pub value: f64,
    pub unit: String,
    pub ceiling: String,
    pub ceiling_value: f64,
    /// value / ceiling_value (1.0: as fast as the ceiling).
    pub ratio: f64,
    pub note: String,
}

/// The machine the figures came from.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub cpu_model: String,
    pub cpu_flags: Vec<String>,
    /// The curve arithmetic under the CPU signature verifiers (`avx512-ifma`, `avx2`,
    /// `portable`): the build and the CPU decide it.
    pub curve_backend: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub gpu_adapter: String,
    pub commit: String,
    pub os: String,
}

/// The whole result.
#[derive(Clone, Debug, Serialize)]
pub struct Table {
    pub manifest: Manifest,
    pub rows: Vec<Row>,
}

fn row(
    part: &str,
    figure: String,
    value: f64,
    unit: &str,
    ceiling: &str,
    ceiling_value: f64,
    note: String,
) -> Row {
    Row {
        part: part.to_string(),
        figure,
        value,
        unit: unit.to_string(),
        ceiling: ceiling.to_string(),
        ceiling_value,
        ratio: value / ceiling_value,
        note,
    }
}

/// Reads the machine's description.
pub fn manifest(gpu: bool) -> Manifest {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_once(':'))
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_default()
    };
    let interesting = [
        "avx2",
        "avx512f",
        "avx512ifma",
        "sha_ni",
        "bmi2",
        "adx",
        "neon",
        "asimd",
    ];
    let flags = field("flags");
    let flags = if flags.is_empty() {
        field("Features")
    } else {
        flags
    };
    let cpu_flags = flags
        .split_whitespace()
        .filter(|flag| interesting.contains(flag))
        .map(str::to_string)
        .collect();
    let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0.0);
    let gpu_adapter = if gpu {
        match tally_kernels::gpu::GpuContext::new() {
            Ok(context) => format!(
                "{} ({:?}, {:?}){}",
                context.info.name,
                context.info.device_type,
                context.info.backend,
                if context.is_cpu_adapter() {
                    ", a CPU-type adapter: its figures are not GPU figures"
                } else {
                    ""
                }
            ),
            Err(error) => format!("none: {error}"),
        }
    } else {
        "not measured".to_string()
    };
    // The commit this binary was built from (build.rs), not the working directory's.
    let commit = env!("TALLY_BUILD_COMMIT").to_string();
    Manifest {
        cpu_model: field("model name"),
        cpu_flags,
        curve_backend: tally_kernels::sigverify::cpu_curve_backend().to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: memory_kib / (1024.0 * 1024.0),
        gpu_adapter,
        commit,
        os: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string()),
    }
}

/// Runs the chosen parts. `progress` is told what is being measured.
pub fn run(options: &RunnerOptions, mut progress: impl FnMut(&str)) -> Table {
    let mut rows = Vec::new();
    let manifest = manifest(options.gpu);
    for part in &options.parts {
        match part {
            Part::Sigverify => {
                progress("signature verification");
                let sizes: &[usize] = if options.quick {
                    &[64, 1_024, 16_384]
                } else {
                    &[64, 256, 1_024, 4_096, 16_384, 65_536]
                };
                let measured = crate::sigverify::measure(sizes, options.gpu);
                if options.gpu {
                    rows.push(auto_crossover_row(&measured));
                }
                for figures in measured {
                    let n = figures.batch_items;
                    let ceiling = "ed25519-zebra batch, all cores";
                    rows.push(row(
                        "sigverify",
                        format!("ed25519-zebra single, batch of {n}"),
                        figures.zebra_single_per_s,
                        "sig/s",
                        ceiling,
                        figures.zebra_batch_per_s,
                        String::new(),
                    ));
                    rows.push(row(
                        "sigverify",
                        format!("tally cpu, batch of {n}"),
                        figures.cpu_per_s,
                        "sig/s",
                        ceiling,
                        figures.zebra_batch_per_s,
                        format!("zebra best chunk {}", figures.zebra_batch_chunk_items),
                    ));
                    if let Some(gpu) = figures.gpu_per_s {
                        rows.push(row(
                            "sigverify",
                            format!("tally gpu, batch of {n}"),
                            gpu,
                            "sig/s",
                            ceiling,
                            figures.zebra_batch_per_s,
                            figures.gpu_note.clone(),
                        ));
                    } else if options.gpu {
                        rows.push(row(
                            "sigverify",
                            format!("tally gpu, batch of {n}"),
                            f64::NAN,
                            "sig/s",
                            ceiling,
                            figures.zebra_batch_per_s,
                            figures.gpu_note.clone(),
                        ));
                    }
                }
            }
            Part::Merkle => {
                progress("merkle trees");
                let counts: &[usize] = if options.quick {
                    &[1 << 16]
                } else {
                    &[1 << 16, 1 << 20]
                };
                for &count in counts {
                    let figures = crate::merkle::measure(count, 192, options.gpu);
                    let ceiling = "blake3 crate, leaves alone, all cores";
                    rows.push(row(
                        "merkle",
                        format!("tally cpu tree, {count} leaves of 192 B"),
                        figures.cpu_tree_leaves_per_s,
                        "leaves/s",
                        ceiling,
                        figures.blake3_leaves_per_s,
                        "target ratio >= 0.91 (time <= 1.1x)".into(),
                    ));
                    if let Some(gpu) = &figures.gpu {
                        let note = if gpu.cpu_type_adapter {
                            format!("{} is a CPU-type adapter: not a GPU figure", gpu.adapter)
                        } else {
                            gpu.adapter.clone()
                        };
                        rows.push(row(
                            "merkle",
                            format!("tally gpu tree, {count} leaves of 192 B"),
                            gpu.tree_leaves_per_s,
                            "leaves/s",
                            ceiling,
                            figures.blake3_leaves_per_s,
                            note,
                        ));
                    } else if let Some(reason) = &figures.gpu_unavailable {
                        rows.push(row(
                            "merkle",
                            format!("tally gpu tree, {count} leaves of 192 B"),
                            f64::NAN,
                            "leaves/s",
                            ceiling,
                            figures.blake3_leaves_per_s,
                            reason.clone(),
                        ));
                    }
                }
                if options.gpu {
                    // Signatures and tree of one block over one upload, beside the separate
                    // GPU calls on the same records (few records: llvmpipe verifies slowly).
                    let count = if options.quick { 256 } else { 1024 };
                    let figure = format!(
                        "GPU block (signatures + tree, one upload), {count} records of 192 B"
                    );
                    let ceiling = "the two separate GPU calls on the same records";
                    match crate::merkle::measure_gpu_block(count) {
                        Ok(block) => {
                            let adapter = if block.cpu_type_adapter {
                                format!("{} is a CPU-type adapter: not a GPU figure", block.adapter)
                            } else {
                                block.adapter.clone()
                            };
                            rows.push(row(
                                "merkle",
                                figure,
                                block.block_records_per_s,
                                "records/s",
                                ceiling,
                                block.separate_records_per_s,
                                format!(
                                    "uploaded {:.0} B/record vs {:.0} B/record; {adapter}",
                                    block.block_upload_bytes_per_record,
                                    block.separate_upload_bytes_per_record
                                ),
                            ));
                        }
                        Err(reason) => rows.push(row(
                            "merkle",
                            figure,
                            f64::NAN,
                            "records/s",
                            ceiling,
                            f64::NAN,
                            reason,
                        )),
                    }
                }
            }
            Part::Storage => {
                progress("storage");
                let duration = Duration::from_secs(if options.quick { 2 } else { 5 });
                let dir = tempfile::Builder::new()
                    .prefix("tally-bench-storage-")
                    .tempdir_in(&options.scratch_dir)
                    .expect("a scratch directory");
                for (entry_bytes, per_commit) in [(4_096usize, 16usize), (786_432, 1)] {
                    let figures = crate::storage::measure_log_vs_raw(
                        &dir.path().join(format!("{entry_bytes}")),
                        entry_bytes,
                        per_commit,
                        duration,
                    );
                    for (kind, log, how) in [
                        (
                            "",
                            &figures.log,
                            "entries prepared on a producer thread, as in a node",
                        ),
                        (
                            "one thread, ",
                            &figures.log_one_thread,
                            "the whole entry hash on the writer's thread",
                        ),
                    ] {
                        rows.push(row(
                            "storage",
                            format!(
                                "log append+commit, {kind}{entry_bytes} B entries, {per_commit}/commit"
                            ),
                            log.entries_per_second(),
                            "entries/s",
                            "raw write + fdatasync, same disk",
                            figures.raw.entries_per_second(),
                            format!("{how}; commit mean {:.0} us", log.commit_latency_us_mean),
                        ));
                    }
                }
                let tx_count = if options.quick { 100_000 } else { 1_000_000 };
                let replay = crate::storage::measure_replay(dir.path(), tx_count);
                rows.push(row(
                    "storage",
                    format!("restart (open + replay) of a log of {tx_count} tx"),
                    replay.restart().as_secs_f64() * 1e3,
                    "ms",
                    "none",
                    f64::NAN,
                    replay.to_string(),
                ));
            }
            Part::Executor => {
                progress("executor");
                let tx_count = if options.quick { 100_000 } else { 1_000_000 };
                let ceiling = crate::sigverify::measure(&[4_096], false);
                let zebra = ceiling.first().map_or(f64::NAN, |f| f.zebra_batch_per_s);
                for figures in crate::executor::measure(tx_count) {
                    rows.push(row(
                        "executor",
                        format!(
                            "{}, {} tx in blocks of {}",
                            figures.workload.name(),
                            figures.tx_count,
                            crate::executor::BLOCK_TX
                        ),
                        figures.tx_per_s,
                        "tx/s",
                        "ed25519-zebra batch, all cores",
                        zebra,
                        format!(
                            "one thread; ok {}, queued {}, settled from queue {}; state root {:.0}/s",
                            figures.settled,
                            figures.queued,
                            figures.settled_from_queue,
                            figures.state_roots_per_s
                        ),
                    ));
                }
                // A large population against a small one, same run, in turn.
                let (large, scale_tx) = if options.quick {
                    (1_000_000, 50_000)
                } else {
                    (10_000_000, 200_000)
                };
                let scale = crate::executor::measure_scale(&[1_000, large], scale_tx, 3);
                let describe = |f: &crate::executor::ScaleFigures| {
                    format!(
                        "state root {:.0} us per block for {:.0} changed accounts",
                        f.state_root_us_per_block, f.changed_accounts_per_block
                    )
                };
                rows.push(row(
                    "executor",
                    format!(
                        "plain transfers over {} accounts (bank-held ranges), state root per block",
                        scale[1].accounts
                    ),
                    scale[1].tx_per_s,
                    "tx/s",
                    "the same over 1,000 accounts",
                    scale[0].tx_per_s,
                    format!(
                        "best of 3 rounds in turn; {}; with 1,000: {}",
                        describe(&scale[1]),
                        describe(&scale[0])
                    ),
                ));
                // The state root's cost per block against what the block changed, over a
                // small ledger and over a large one with a backlog the blocks leave alone.
                let (large, backlog) = if options.quick {
                    (100_000, 10_000)
                } else {
                    (999_000, 50_000) // the genesis holds at most 1 000 000 accounts
                };
                for (accounts, backlog) in [(1_000, 0), (large, backlog)] {
                    for figures in crate::executor::measure_state_root(
                        accounts,
                        backlog,
                        &[2, 64, 1_024, 8_192],
                    ) {
                        rows.push(row(
                            "state root",
                            format!(
                                "after a block changing {} accounts and {} reservations; {} accounts, {} queued, {} reserved",
                                figures.changed_accounts,
                                figures.changed_entries,
                                figures.accounts,
                                figures.queued,
                                figures.reserved
                            ),
                            figures.root_us,
                            "us",
                            "the same root from scratch",
                            figures.from_scratch_us,
                            "one thread; median of 7 blocks; kept accounts' tree and set digests"
                                .to_string(),
                        ));
                    }
                }
                let (copy_us, encode_us, bytes) =
                    crate::executor::measure_checkpoint_copy(large, backlog);
                rows.push(row(
                    "checkpoint",
                    format!(
                        "copy on the execution thread, {large} consumers, {backlog} queued, {backlog} reserved"
                    ),
                    copy_us,
                    "us",
                    "encoding it (the writer thread)",
                    encode_us,
                    format!("snapshot {bytes} bytes"),
                ));
            }
            Part::Checkpoint => {
                progress("checkpoint: the copy's pause at large populations");
                checkpoint_rows(options.quick, &mut rows);
            }
            Part::Pipeline => {
                progress("single-node pipeline");
                let tx_count = if options.quick { 100_000 } else { 400_000 };
                let mut cpu_pipeline = f64::NAN;
                match crate::pipeline::measure(tx_count, Backend::Cpu, 0) {
                    Ok(figures) => {
                        cpu_pipeline = figures.pipeline_tx_per_s;
                        let figure =
                            format!("1 node, {} tx closed loop, durable acks", figures.tx_count);
                        let note = format!(
                            "latency p50 {:.1} ms, p99 {:.1} ms",
                            figures.latency_ms_p50, figures.latency_ms_p99
                        );
                        rows.push(row(
                            "pipeline",
                            figure.clone(),
                            figures.pipeline_tx_per_s,
                            "tx/s",
                            "ed25519-zebra batch, all cores",
                            figures.zebra_batch_per_s,
                            note.clone(),
                        ));
                        rows.push(row(
                            "pipeline",
                            figure,
                            figures.pipeline_tx_per_s,
                            "tx/s",
                            OUR_VERIFIER,
                            figures.ours_per_s,
                            note,
                        ));
                    }
                    Err(error) => rows.push(row(
                        "pipeline",
                        "1 node".into(),
                        f64::NAN,
                        "tx/s",
                        "ed25519-zebra batch, all cores",
                        f64::NAN,
                        error.to_string(),
                    )),
                }
                if options.gpu {
                    progress("single-node pipeline on the GPU backend");
                    rows.push(gpu_pipeline_row(options.quick, tx_count, cpu_pipeline));
                }
            }
            Part::Finality => {
                progress("finality: 1 and 4 validators");
                finality_rows(options.quick, &mut rows);
            }
            Part::Latency => {
                progress("latency: open loop at 25, 50 and 75% of the maximum");
                latency_rows(options.quick, &mut rows);
            }
            Part::Queries => {
                progress("queries: latency under half the node's maximum load");
                query_rows(options.quick, &mut rows);
            }
            Part::Access => {
                progress("access: TLS against plain TCP, an honest client under attack");
                access_rows(options.quick, &mut rows);
            }
            Part::Proof => {
                progress("proof: size and verification, 4 and 100 validators");
                proof_rows(options.quick, &mut rows);
            }
            Part::Distance => {
                progress("distance: 4 validators with 0, 5, 25 and 50 ms one-way link delay");
                distance_rows(options.quick, &mut rows);
            }
        }
    }
    Table { manifest, rows }
}

/// What a checkpoint costs the execution thread at 1 and 10 million accounts (quick: 0.1
/// and 1 million): the copy against a deep copy of the accounts, the blocks executed while
/// the copy is held against those without; then the executor's throughput at the larger
/// population against 1 000 accounts, same run, in turn.
fn checkpoint_rows(quick: bool, rows: &mut Vec<Row>) {
    let sizes: [u64; 2] = if quick {
        [100_000, 1_000_000]
    } else {
        [1_000_000, 10_000_000]
    };
    for accounts in sizes {
        let pause = crate::executor::measure_checkpoint_pause(accounts);
        rows.push(row(
            "checkpoint",
            format!(
                "copy for a checkpoint on the execution thread, {} accounts",
                pause.accounts
            ),
            pause.copy_us,
            "us",
            "a deep copy of the accounts",
            pause.deep_copy_us,
            "copy-on-write chunks of accounts: one pointer a chunk".to_string(),
        ));
        rows.push(row(
            "checkpoint",
            format!(
                "first block of {} transfers with its state root while the copy is held, {} accounts",
                crate::executor::BLOCK_TX,
                pause.accounts
            ),
            pause.block_after_copy_us[0],
            "us",
            "the median block with no copy held",
            pause.block_us,
            format!(
                "second block while held {:.0} us; a held copy makes a block copy the chunks it changes",
                pause.block_after_copy_us[1]
            ),
        ));
    }
    let (large, scale_tx) = (sizes[1], if quick { 50_000 } else { 200_000 });
    let scale = crate::executor::measure_scale(&[1_000, large], scale_tx, 3);
    rows.push(row(
        "checkpoint",
        format!(
            "executor, plain transfers over {} accounts (bank-held ranges), state root per block",
            scale[1].accounts
        ),
        scale[1].tx_per_s,
        "tx/s",
        "the same over 1,000 accounts",
        scale[0].tx_per_s,
        "best of 3 rounds in turn".to_string(),
    ));
}

/// Rows of the client port under TLS and under a bad-signature attacker
/// ([`crate::access`]): TLS against plain TCP with the same load in the same run, and an
/// honest client attacked against the same client alone.
fn access_rows(quick: bool, rows: &mut Vec<Row>) {
    let options = crate::access::AccessOptions::new(quick);
    let closed = format!(
        "1 node, client port, closed loop ({} in flight, {} connections, {:?} x2)",
        options.in_flight_tx_max, options.connections, options.duration
    );
    match crate::access::measure(&options) {
        Ok(f) => {
            rows.push(row(
                "access",
                format!("TLS 1.3, {closed}"),
                f.tls_tx_per_s,
                "tx/s",
                "same load over plain TCP (--insecure-plaintext)",
                f.plaintext_tx_per_s,
                "runs in the order plain, TLS, TLS, plain".into(),
            ));
            rows.push(row(
                "access",
                format!(
                    "honest client attacked: a second identity open loop at {} tx/s, 20% bad signatures; {closed}",
                    options.attack_rate_per_s
                ),
                f.attacked_tx_per_s,
                "tx/s",
                "the same client alone",
                f.alone_tx_per_s,
                format!(
                    "attacker: {} sent, {} acknowledged ({} bad_signature), {} refused over suspect_submit_tx_per_s; {} records verified in its own lane; {} common-lane batches with a bad signature",
                    f.attacker_sent,
                    f.attacker_acknowledged,
                    f.attacker_bad_signatures,
                    f.attacker_over_quota,
                    f.isolated_tx,
                    f.common_failed_batches
                ),
            ));
        }
        Err(error) => rows.push(row(
            "access",
            "client port".into(),
            f64::NAN,
            "tx/s",
            "plain TCP / the client alone",
            f64::NAN,
            error.to_string(),
        )),
    }
}

/// Where `auto` should move to the GPU: the smallest measured batch from which on the GPU
/// verifier beats our CPU verifier at every larger size too, beside the threshold `auto`
/// uses now (`AUTO_GPU_ITEMS_MIN`). Measured, not assumed (NaN when the GPU never wins).
fn auto_crossover_row(measured: &[crate::sigverify::SigFigures]) -> Row {
    let wins: Vec<(usize, bool)> = measured
        .iter()
        .map(|f| {
            (
                f.batch_items,
                f.gpu_per_s.is_some_and(|gpu| gpu > f.cpu_per_s),
            )
        })
        .collect();
    let crossover = (0..wins.len())
        .find(|&i| wins[i..].iter().all(|(_, win)| *win))
        .map_or(f64::NAN, |i| wins[i].0 as f64);
    let note = measured
        .iter()
        .map(|f| {
            format!(
                "{}: gpu {} / cpu {:.0}",
                f.batch_items,
                f.gpu_per_s.map_or("n/a".to_string(), |g| format!("{g:.0}")),
                f.cpu_per_s
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    row(
        "sigverify",
        "auto crossover: smallest batch from which the GPU beats our CPU verifier".into(),
        crossover,
        "items",
        "the threshold auto uses (AUTO_GPU_ITEMS_MIN)",
        tally_kernels::sigverify::AUTO_GPU_ITEMS_MIN as f64,
        format!("sig/s by batch: {note}"),
    )
}

/// The single node on the GPU backend (signatures and transaction root of each block from
/// one upload, `GpuBlock`) beside the same node on the CPU backend in the same run. On a
/// CPU-type adapter (llvmpipe) a few thousand transactions only, labelled: not a GPU figure.
fn gpu_pipeline_row(quick: bool, cpu_tx_count: usize, cpu_pipeline: f64) -> Row {
    let ceiling = "the same node on the CPU backend, same run";
    let context = match tally_kernels::GpuContext::shared() {
        Ok(context) => context,
        Err(error) => {
            return row(
                "pipeline",
                "1 node, gpu backend".into(),
                f64::NAN,
                "tx/s",
                ceiling,
                cpu_pipeline,
                format!("no GPU adapter: {error}"),
            )
        }
    };
    let cpu_type = context.is_cpu_adapter();
    let tx_count = match (cpu_type, quick) {
        (true, true) => 1_000,
        (true, false) => 4_000,
        (false, _) => cpu_tx_count,
    };
    let adapter = if cpu_type {
        format!(
            "{} is a CPU-type adapter: not a GPU figure",
            context.info.name
        )
    } else {
        context.info.name.clone()
    };
    let figure = format!("1 node, gpu backend (verify + tx root, one upload), {tx_count} tx closed loop, durable acks");
    match crate::pipeline::measure(tx_count, Backend::Gpu, 0) {
        Ok(figures) => row(
            "pipeline",
            figure,
            figures.pipeline_tx_per_s,
            "tx/s",
            ceiling,
            cpu_pipeline,
            format!(
                "latency p50 {:.1} ms, p99 {:.1} ms; {} blocks; {adapter}",
                figures.latency_ms_p50, figures.latency_ms_p99, figures.blocks
            ),
        ),
        Err(error) => row(
            "pipeline",
            figure,
            f64::NAN,
            "tx/s",
            ceiling,
            cpu_pipeline,
            format!("{error}; {adapter}"),
        ),
    }
}

/// Rows of latency at 25, 50 and 75% of the closed-loop maximum, a node alone and four
/// validators in this process ([`crate::latency`]): each row's value is what was
/// acknowledged per second, beside the maximum; its note holds the latency percentiles.
fn latency_rows(quick: bool, rows: &mut Vec<Row>) {
    let duration = Duration::from_secs(if quick { 3 } else { 6 });
    for validators in [0usize, 4] {
        let label = if validators == 0 {
            "1 node alone".to_string()
        } else {
            format!("{validators} validators in one process")
        };
        let closed = if validators == 0 { 1_500_000 } else { 400_000 };
        match crate::latency::measure(validators, duration, closed) {
            Ok(f) => {
                for level in &f.levels {
                    rows.push(row(
                        "latency",
                        format!(
                            "{label}, open loop at {:.0}% of the maximum ({:.0} tx/s), {duration:?}",
                            level.share * 100.0,
                            level.offered_tx_per_s
                        ),
                        level.acknowledged_tx_per_s,
                        "tx/s",
                        "its closed-loop maximum, same run",
                        f.max_tx_per_s,
                        format!(
                            "latency from the intended send time: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms; first node's stages, p50/p99 at most (ms, observations): {}",
                            level.p50_ms, level.p99_ms, level.p999_ms, level.stages_line()
                        ),
                    ));
                }
            }
            Err(error) => rows.push(row(
                "latency",
                label,
                f64::NAN,
                "tx/s",
                "its closed-loop maximum",
                f64::NAN,
                error.to_string(),
            )),
        }
    }
}

/// Rows of 4 validators whose links go through delaying relays ([`crate::distance`]): the
/// closed-loop throughput at each one-way delay beside the same network's at no delay (same
/// run), the note holding the finality latency at a fixed moderate open-loop rate.
fn distance_rows(quick: bool, rows: &mut Vec<Row>) {
    use crate::distance::{measure, DELAYS_MS, JITTER_SHARE};
    let duration = Duration::from_secs(if quick { 4 } else { 10 });
    let closed = if quick { 60_000 } else { 200_000 };
    let open_rate = 2_000.0;
    let seed = rand::random::<u64>();
    let mut zero = f64::NAN;
    for one_way_ms in DELAYS_MS {
        let label = format!(
            "4 validators, links {one_way_ms} ms one way (jitter {:.0}%)",
            JITTER_SHARE * 100.0
        );
        match measure(
            Duration::from_millis(one_way_ms),
            closed,
            open_rate,
            duration,
            seed,
        ) {
            Ok(f) => {
                if one_way_ms == 0 {
                    zero = f.max_tx_per_s;
                }
                rows.push(row(
                    "distance",
                    format!("{label}, closed loop, final + durable acks"),
                    f.max_tx_per_s,
                    "tx/s",
                    "the same network at 0 ms, same run",
                    zero,
                    format!(
                        "at {:.0} tx/s open loop ({:.0} acknowledged): finality latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms; {} blocks in all; jitter seed {seed}",
                        f.open_rate_tx_per_s,
                        f.open_acknowledged_tx_per_s,
                        f.p50_ms,
                        f.p99_ms,
                        f.p999_ms,
                        f.blocks
                    ),
                ));
            }
            Err(error) => rows.push(row(
                "distance",
                label,
                f64::NAN,
                "tx/s",
                "the same network at 0 ms, same run",
                zero,
                error.to_string(),
            )),
        }
    }
}

/// Rows of query latency on a node under half its maximum load, each beside the same query
/// on the idle node of the same run ([`crate::queries`]).
fn query_rows(quick: bool, rows: &mut Vec<Row>) {
    let options = crate::queries::QueryOptions::new(quick);
    match crate::queries::measure(&options) {
        Ok(f) => {
            let load = format!(
                "1 node over TLS at {:.0} tx/s open loop (half of its {:.0} tx/s closed-loop maximum; {:.0} acknowledged/s)",
                f.offered_tx_per_s, f.max_tx_per_s, f.loaded_tx_per_s
            );
            for (index, kind) in crate::queries::KINDS.iter().enumerate() {
                let (idle, loaded) = (f.idle[index], f.loaded[index]);
                for (name, value, ceiling) in [
                    ("p50", loaded.p50_ms, idle.p50_ms),
                    ("p99", loaded.p99_ms, idle.p99_ms),
                ] {
                    rows.push(row(
                        "queries",
                        format!("{kind} query {name}, {load}"),
                        value,
                        "ms",
                        &format!("the same query on the idle node ({name})"),
                        ceiling,
                        format!(
                            "{} queries under load, {} idle; ratio above 1: slower under load",
                            loaded.count, idle.count
                        ),
                    ));
                }
            }
        }
        Err(error) => rows.push(row(
            "queries",
            "query latency".into(),
            f64::NAN,
            "ms",
            "the idle node",
            f64::NAN,
            error.to_string(),
        )),
    }
}

/// Rows of proofs that trust no node ([`crate::proof`]): verification time beside as many
/// single signature verifications, and the proof's size, for 4 and 100 validators, with and
/// without a set change.
fn proof_rows(quick: bool, rows: &mut Vec<Row>) {
    let rounds = if quick { 5 } else { 21 };
    for validators in [4usize, 100] {
        for set_changes in [false, true] {
            let f = crate::proof::measure(validators, set_changes, rounds);
            let case = if set_changes {
                format!(
                    "{validators} validators, after one validator added ({} votes, one per block)",
                    f.votes
                )
            } else {
                format!("{validators} validators, genesis set")
            };
            rows.push(row(
                "proof",
                format!("verify offline, {case}"),
                f.verify.as_secs_f64() * 1e3,
                "ms",
                "as many single ed25519-zebra verifications (one key, decompressed once)",
                f.ceiling.as_secs_f64() * 1e3,
                format!(
                    "{} signatures checked; proof {} bytes of JSON; median of {rounds}",
                    f.signatures, f.json_bytes
                ),
            ));
        }
    }
}

/// Rows of finalized transactions per second and finality latency for networks of `1` and
/// `4` validators in this process.
fn finality_rows(quick: bool, rows: &mut Vec<Row>) {
    for validators in [1usize, 4] {
        let tx_count = match (quick, validators) {
            (true, 1) => 40_000,
            (true, _) => 20_000,
            (false, 1) => 200_000,
            (false, _) => 60_000,
        };
        let label = format!(
            "{validators} validator{}",
            if validators == 1 { "" } else { "s" }
        );
        match crate::pipeline::measure(tx_count, Backend::Cpu, validators) {
            Ok(figures) => {
                let figure = format!(
                    "{label}, {} tx closed loop, final + durable acks",
                    figures.tx_count
                );
                let note = format!(
                    "finality latency p50 {:.1} ms, p99 {:.1} ms; {} blocks",
                    figures.latency_ms_p50, figures.latency_ms_p99, figures.blocks
                );
                for (ceiling, value) in [
                    ("ed25519-zebra batch, all cores", figures.zebra_batch_per_s),
                    (OUR_VERIFIER, figures.ours_per_s),
                ] {
                    rows.push(row(
                        "finality",
                        figure.clone(),
                        figures.pipeline_tx_per_s,
                        "tx/s",
                        ceiling,
                        value,
                        note.clone(),
                    ));
                }
            }
            Err(error) => rows.push(row(
                "finality",
                label,
                f64::NAN,
                "tx/s",
                "ed25519-zebra batch, all cores",
                f64::NAN,
                error.to_string(),
            )),
        }
    }
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "n/a".to_string()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

impl Table {
    fn manifest_lines(&self) -> Vec<String> {
        let m = &self.manifest;
        vec![
            format!(
                "CPU: {} ({} cores; {}); curve arithmetic: {}",
                m.cpu_model,
                m.cores,
                m.cpu_flags.join(" "),
                m.curve_backend
            ),
            format!("memory: {:.1} GiB; {}", m.memory_gib, m.os),
            format!("GPU adapter: {}", m.gpu_adapter),
            format!("commit: {}", m.commit),
        ]
    }

    /// A plain-text table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in self.manifest_lines() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<10} {:<58} {:>14} {:<9} {:>14} {:>7}  note",
            "part", "figure", "value", "unit", "ceiling", "ratio"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<10} {:<58} {:>14} {:<9} {:>14} {:>7}  {}",
                r.part,
                r.figure,
                number(r.value),
                r.unit,
                number(r.ceiling_value),
                number(r.ratio),
                r.note
            );
        }
        out
    }

    /// A Markdown table for docs/BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        for line in self.manifest_lines() {
            let _ = writeln!(out, "- {line}");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| part | figure | value | unit | ceiling (same run) | ceiling value | ratio | note |"
        );
        let _ = writeln!(out, "| --- | --- | ---: | --- | --- | ---: | ---: | --- |");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.part,
                r.figure,
                number(r.value),
                r.unit,
                r.ceiling,
                number(r.ceiling_value),
                number(r.ratio),
                r.note.replace('|', "/")
            );
        }
        out
    }

    /// JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a table always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::manifest;

    /// The table names the commit the binary was built from: a commit of this checkout's
    /// history (the test binary is built from it; HEAD itself unless a commit was made
    /// between the build and the run), whatever directory the binary runs in.
    #[test]
    fn the_manifest_names_the_commit_the_binary_was_built_from() {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(env!("CARGO_MANIFEST_DIR"))
                .args(args)
                .output()
                .expect("git runs")
        };
        let commit = manifest(false).commit;
        let built = commit.trim_end_matches("-dirty");
        assert_ne!(built, "unknown", "the tests run in a git checkout");
        let ancestor = git(&["merge-base", "--is-ancestor", built, "HEAD"]);
        assert!(
            ancestor.status.success(),
            "manifest commit {commit} is not in this checkout's history"
        );
    }
}
