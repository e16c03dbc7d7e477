//! `tally cluster init` and `tally cluster up`: a cluster of validator processes on this
//! machine. The files come from `tally_loadgen::cluster`; `up` starts one `tally node` per
//! validator and supervises them until SIGINT or SIGTERM.

use anyhow::Context;
use crossbeam::channel::RecvTimeoutError;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tally_loadgen::cluster::{self, ClusterFiles, ClusterSpec, ValidatorFiles};
use tally_loadgen::WorkloadName;

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Write a cluster directory: a key, a configuration and a data directory per validator,
    /// and the genesis of a load generator population with these validators. Keeps an
    /// existing cluster of the same size.
    Init(ClusterArgs),
    /// Init if needed, start one `tally node` process per validator, print where each
    /// listens, and supervise them until SIGINT or SIGTERM (forwarded as SIGTERM).
    Up(ClusterArgs),
}

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Validators (4 tolerates one faulty validator).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// The cluster directory.
    #[arg(long)]
    dir: PathBuf,
    /// Validator i takes clients on BASE+i, /metrics on BASE+100+i and validator links on
    /// BASE+200+i (127.0.0.1); 0 chooses a base whose ports are free now.
    #[arg(long, default_value_t = 7400)]
    base_port: u16,
    /// Workload whose population the genesis opens (as `tally loadgen --workload`).
    #[arg(long, default_value = "mixed")]
    workload: WorkloadName,
    /// Seed of the population (as `tally loadgen --seed`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Banks in the population (as `tally loadgen --banks`).
    #[arg(long, default_value_t = 20)]
    banks: usize,
    /// Accounts of the transfer workload's population (as `tally loadgen --accounts`).
    #[arg(long, default_value_t = tally_loadgen::workload::TRANSFER_ACCOUNTS_DEFAULT)]
    accounts: usize,
    /// Who signs for the transfer workload's accounts (as `tally loadgen --custody`): own
    /// (a key each) or bank (their bank's key; opened as ranges, for millions of accounts).
    #[arg(long, default_value = "own")]
    custody: tally_loadgen::population::Custody,
    /// Signature backend of every node: cpu, gpu or auto.
    #[arg(long, default_value = "cpu")]
    backend: tally_engine::node::Backend,
    /// One IP address per validator (comma-separated), for a cluster over several hosts or
    /// network namespaces: validator i takes clients and validator links on the i-th, which
    /// its certificate names; /metrics stays on that host's loopback. Needs --base-port.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    hosts: Vec<std::net::IpAddr>,
}

pub fn run(command: &ClusterCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClusterCommand::Init(args) => {
            let files = init(args)?;
            print_files(&files, args);
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Up(args) => up(args),
    }
}

fn spec(args: &ClusterArgs) -> anyhow::Result<ClusterSpec> {
    tally_loadgen::session::check_population(args.workload, args.accounts, args.custody)
        .map_err(anyhow::Error::msg)?;
    Ok(ClusterSpec {
        validators: args.validators,
        base_port: args.base_port,
        workload: args.workload,
        seed: args.seed,
        banks: args.banks,
        accounts: args.accounts,
        custody: args.custody,
        backend: args.backend,
        hosts: args.hosts.clone(),
    })
}

fn init(args: &ClusterArgs) -> anyhow::Result<ClusterFiles> {
    Ok(cluster::init(&args.dir, &spec(args)?)?)
}

fn metrics_url(validator: &ValidatorFiles) -> String {
    match validator.metrics {
        Some(addr) => format!("http://{addr}/metrics"),
        None => "off".to_string(),
    }
}

fn print_files(files: &ClusterFiles, args: &ClusterArgs) {
    println!(
        "cluster of {} validators in {} ({}): genesis {} ({})",
        files.validators.len(),
        files.dir.display(),
        if files.created { "written" } else { "kept" },
        files.genesis.display(),
        hex::encode(files.genesis_hash)
    );
    for validator in &files.validators {
        println!(
            "validator {}: clients {}, metrics {}, validator links {}, config {}",
            validator.index,
            validator.client,
            metrics_url(validator),
            validator.validator_listen,
            validator.config.display()
        );
    }
    print_loadgen_hint(files, args);
}

fn print_loadgen_hint(files: &ClusterFiles, args: &ClusterArgs) {
    let matches = spec(args).is_ok_and(|spec| files.matches_population(&spec));
    if matches {
        let transfer = if args.workload == tally_loadgen::workload::WorkloadName::Transfer {
            format!(
                " --accounts {} --custody {}",
                args.accounts,
                args.custody.name()
            )
        } else {
            String::new()
        };
        println!(
            "load it: tally loadgen --node {} --identity {} --genesis {} --workload {} --seed {} --banks {}{transfer}",
            files.client_list(),
            files.loadgen_identity().display(),
            files.genesis.display(),
            args.workload.name(),
            args.seed,
            args.banks
        );
    } else {
        println!(
            "note: {} was made for another --workload, --seed, --banks, --accounts or --custody than these; pass those to `tally loadgen`",
            files.genesis.display()
        );
    }
}

/// The command that runs validator `validator` (printed for operators).
fn node_command(validator: &ValidatorFiles) -> String {
    format!("tally node --config {}", validator.config.display())
}

struct Running {
    validator: ValidatorFiles,
    child: Child,
    /// Set once the child has exited (reported, not restarted).
    exited: Option<ExitStatus>,
}

fn spawn(exe: &std::path::Path, validator: &ValidatorFiles) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&validator.log_file)
        .with_context(|| format!("cannot open {}", validator.log_file.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("cannot open {}", validator.log_file.display()))?;
    let child = {
        use std::os::unix::process::CommandExt as _;
        Command::new(exe)
            .arg("node")
            .arg("--config")
            .arg(&validator.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C at the terminal reaches the supervisor only,
            // which stops the validators in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", node_command(validator)))?
    };
    std::fs::write(&validator.pid_file, format!("{}\n", child.id()))
        .with_context(|| format!("cannot write {}", validator.pid_file.display()))?;
    Ok(child)
}

fn sigterm(child: &Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        // It may have exited already: nothing to do then.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => format!("{status}"),
    }
}

/// The validators whose pid file names a live process: (index, pid).
fn already_running(files: &ClusterFiles) -> Vec<(usize, i32)> {
    files
        .validators
        .iter()
        .filter_map(|validator| {
            let text = std::fs::read_to_string(&validator.pid_file).ok()?;
            let raw: i32 = text.trim().parse().ok()?;
            let pid = rustix::process::Pid::from_raw(raw)?;
            match rustix::process::test_kill_process(pid) {
                Ok(()) | Err(rustix::io::Errno::PERM) => Some((validator.index, raw)),
                Err(_) => None, // a stale file: that process is gone
            }
        })
        .collect()
}

fn up(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let files = init(args)?;
    let running = already_running(&files);
    if !running.is_empty() {
        let list: Vec<String> = running
            .iter()
            .map(|(index, pid)| format!("validator {index} as pid {pid}"))
            .collect();
        anyhow::bail!(
            "this cluster already runs ({}, from the node-i.pid files in {}): stop it first, or remove the pid files if those processes are not tally nodes",
            list.join(", "),
            files.dir.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find the tally executable")?;
    // Signals are caught before any child starts, so none is left behind by an early one.
    let signals = super::StopSignals::install()?;

    println!(
        "cluster of {} validators in {} ({}), genesis {}",
        files.validators.len(),
        files.dir.display(),
        if files.created { "written" } else { "kept" },
        hex::encode(files.genesis_hash)
    );
    let mut running: Vec<Running> = Vec::with_capacity(files.validators.len());
    for validator in &files.validators {
        match spawn(&exe, validator) {
            Ok(child) => {
                println!(
                    "validator {}: clients {}, metrics {}, pid {}, log {}",
                    validator.index,
                    validator.client,
                    metrics_url(validator),
                    child.id(),
                    validator.log_file.display()
                );
                running.push(Running {
                    validator: validator.clone(),
                    child,
                    exited: None,
                });
            }
            Err(error) => {
                eprintln!("error: {error:#}; stopping the validators already started");
                stop_all(&mut running);
                signals.close();
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    print_loadgen_hint(&files, args);
    println!("supervising; SIGINT or SIGTERM stops every validator");
    let _ = std::io::stdout().flush();

    let cause = loop {
        match signals.received.recv_timeout(Duration::from_millis(200)) {
            Ok(signal) => break format!("signal {signal}"),
            Err(RecvTimeoutError::Disconnected) => break "signal handler ended".to_string(),
            Err(RecvTimeoutError::Timeout) => {}
        }
        for run in running.iter_mut().filter(|r| r.exited.is_none()) {
            if let Ok(Some(status)) = run.child.try_wait() {
                run.exited = Some(status);
                let _ = std::fs::remove_file(&run.validator.pid_file);
                println!(
                    "validator {} (pid {}) {}; see {}; not restarted: restart it with `{}`",
                    run.validator.index,
                    run.child.id(),
                    describe(status),
                    run.validator.log_file.display(),
                    node_command(&run.validator)
                );
                let _ = std::io::stdout().flush();
            }
        }
        if running.iter().all(|r| r.exited.is_some()) {
            break "every validator has exited".to_string();
        }
    };
    println!("stopping ({cause}): SIGTERM to every validator");
    let _ = std::io::stdout().flush();
    let clean = stop_all(&mut running);
    signals.close();
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// SIGTERM to every running validator, then waits for each and prints how it ended.
/// Whether every validator exited 0.
fn stop_all(running: &mut [Running]) -> bool {
    for run in running.iter().filter(|r| r.exited.is_none()) {
        sigterm(&run.child);
    }
    let started = Instant::now();
    let mut clean = true;
    for run in running.iter_mut() {
        let status = match run.exited {
            Some(status) => status,
            None => match run.child.wait() {
                Ok(status) => {
                    let _ = std::fs::remove_file(&run.validator.pid_file);
                    status
                }
                Err(error) => {
                    println!(
                        "validator {} (pid {}): cannot wait for it: {error}",
                        run.validator.index,
                        run.child.id()
                    );
                    clean = false;
                    continue;
                }
            },
        };
        clean &= status.success();
        println!(
            "validator {} (pid {}): {}",
            run.validator.index,
            run.child.id(),
            describe(status)
        );
    }
    println!(
        "stopped {} validators in {:.1} s",
        running.len(),
        started.elapsed().as_secs_f64()
    );
    clean
}
