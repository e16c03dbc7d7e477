//! What a node needs to run as a validator, checked against the genesis and built at
//! start (the set of the next height, the consensus machine, the validator links), and the
//! stage's thread: the driver fed from the node's channels on the system clock.

use super::*;
use crate::genesis::Genesis;
use crate::log::Log;
use crate::net::peers::PeerLinks;
use crate::node::checkpointer::CheckpointPlan;
use crate::node::commit::with_checkpoint_writer;
use crate::node::{NodeConfig, NodeError, Recovered};
use crossbeam::channel::bounded;
use std::sync::{Arc, RwLock};
use tally_kernels::sigverify::Verifier;

/// What the consensus stage needs besides the pipeline's channels, built by `Node::start`.
pub(crate) struct ValidatorRuntime {
    pub stage: StageParts,
    pub links: PeerLinks,
    pub peer_events: Receiver<PeerEvent>,
}

/// The stage's parts for a node with `config` and `validator` that recovered `recovered`
/// from `log`: the set in force for the next height (the genesis's, or the one the
/// authorities voted in, kept by the ledger) and the machine, restored from the state file
/// when that is for the next height.
pub(crate) fn stage_parts(
    config: &NodeConfig,
    validator: &ValidatorConfig,
    recovered: &Recovered,
    log: &Arc<RwLock<Log>>,
    verifier: Arc<Verifier>,
) -> Result<StageParts, String> {
    let repairing = !log
        .read()
        .expect("log lock")
        .recovery()
        .awaiting_repair
        .is_empty();
    let (machine, state_file) = machine_at(
        validator,
        &config.data_dir,
        Arc::clone(&config.file_ops),
        recovered.height,
        repairing,
    )?;
    Ok(StageParts {
        config: validator.clone(),
        set: recovered.ledger.validator_schedule().current().clone(),
        machine,
        state_file,
        log: Arc::clone(log),
        data_dir: config.data_dir.clone(),
        file_ops: Arc::clone(&config.file_ops),
        verifier,
    })
}

/// Builds the machine for the height after `log_height`: restored from the state file when
/// the file is for that height, fresh otherwise. While the log's damaged last block, cut at
/// this or an earlier start, is not back (`repairing`), the state may be further ahead (the
/// height after the cut block): the machine is restored there, and the driver takes the
/// missing blocks by sync, each with a certificate, before the machine gets any event.
pub(crate) fn machine_at(
    config: &ValidatorConfig,
    data_dir: &std::path::Path,
    file_ops: Arc<dyn FileOps>,
    log_height: u64,
    repairing: bool,
) -> Result<(Tendermint, state_file::StateFile), String> {
    let machine_config = MachineConfig {
        signing_key: config.signing_key,
        timeouts: config.timeouts,
    };
    let (writer, state) =
        state_file::StateFile::open(data_dir, file_ops).map_err(|error| error.to_string())?;
    let machine = match state {
        Some(state) if state.height == log_height + 1 => Tendermint::restore(machine_config, state),
        Some(state) if repairing && state.height > log_height + 1 => {
            Tendermint::restore(machine_config, state)
        }
        Some(state) if state.height > log_height + 1 => return Err(format!(
            "the consensus state is at height {} but the log ends at block {log_height}: blocks this validator decided are missing from its log; restore the data directory from a backup",
            state.height
        )),
        _ => Tendermint::new(machine_config, log_height + 1),
    };
    Ok((machine, writer))
}

/// Checks a validator's configuration against the genesis and builds what its consensus
/// stage needs: the validator set, the machine (restored from the state file when it is for
/// the next height) and the validator links; proposals are verified with the node's own
/// `verifier`, the one its signature stage uses.
pub(crate) fn runtime(
    genesis: &Genesis,
    config: &NodeConfig,
    validator: &ValidatorConfig,
    recovered: &Recovered,
    log: &Arc<RwLock<Log>>,
    verifier: Arc<Verifier>,
) -> Result<ValidatorRuntime, NodeError> {
    use crate::net::peers::PeerConfig;
    // The set in force for the next height: the genesis's, or the one the authorities
    // voted in (kept by the ledger).
    let set = recovered.ledger.validator_schedule().current().clone();
    let own = crate::keys::public_key_of(&validator.signing_key);
    if set.index_of(&own).is_none() {
        if !validator.candidate {
            return Err(NodeError::Config(format!(
                "the validator key {} is not a validator of epoch {} (set `candidate = true` in [validator] to follow the chain until the authorities vote it in)",
                hex::encode(own),
                set.epoch()
            )));
        }
        tracing::info!(
            key = %hex::encode(own),
            epoch = set.epoch(),
            "not a validator of this epoch: following the chain until the authorities vote this key in"
        );
    }
    for key in set.public_keys().iter().filter(|key| **key != own) {
        if !validator.peers.iter().any(|peer| peer.public_key == *key) {
            return Err(NodeError::Config(format!(
                "validator {} of epoch {} has no address among the peers: list every other validator",
                hex::encode(key),
                set.epoch()
            )));
        }
    }
    // Blocks take whole signature batches (a batch never splits a linked chain).
    if config.sigverify_batch_tx_max > VALIDATOR_BLOCK_TX_MAX {
        return Err(NodeError::Config(format!(
            "sigverify_batch_tx_max {} is above a validator block's maximum {}",
            config.sigverify_batch_tx_max, VALIDATOR_BLOCK_TX_MAX
        )));
    }
    let stage =
        stage_parts(config, validator, recovered, log, verifier).map_err(NodeError::Validator)?;
    let (events_tx, peer_events) = bounded(PEER_EVENTS_MAX);
    let peer_config = PeerConfig {
        listen: validator.listen,
        peers: validator.peers.clone(),
        network_id: genesis.network_id,
        genesis_hash: genesis.hash(),
        backoff_min: validator.backoff_min,
        backoff_max: validator.backoff_max,
        out_bytes_max: validator.peer_out_bytes_max,
        tls: validator.tls.clone(),
    };
    let links = match &validator.listener {
        Some(listener) => PeerLinks::start_with_listener(
            listener.try_clone().map_err(|source| NodeError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?,
            peer_config,
            validator.signing_key,
            events_tx,
        )?,
        None => PeerLinks::start(peer_config, validator.signing_key, events_tx)?,
    };
    Ok(ValidatorRuntime {
        stage,
        links,
        peer_events,
    })
}

/// The consensus stage: runs until the signature stage ends (node stopping) and this node's
/// clients' transactions are decided (or [`SHUTDOWN_GRACE`] passed), or a fatal error.
/// A validator commits its blocks itself (it waits for each to be durable before the next
/// height anyway), with the log stage's own commit step.
pub(crate) fn consensus_stage(
    shared: &Arc<Shared>,
    recovered: Recovered,
    limits: ExecutorLimits,
    runtime: ValidatorRuntime,
    verified: &Receiver<VerifiedBatch>,
) -> Ledger {
    let ValidatorRuntime {
        stage,
        links,
        peer_events,
    } = runtime;
    shared.metrics.set_peer_stats(links.stats_handle());
    let verify_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name(|index| format!("tally-proposal-verify-{index}"))
        .build()
        .map_err(|error| tracing::warn!(%error, "proposals are verified on the shared pool"))
        .ok();
    let mut driver = Driver::new(DriverParts {
        shared: Arc::clone(shared),
        limits,
        recovered,
        stage,
        verify_pool,
        clock: SystemClock,
        links,
    });
    // Checkpoints are written by a writer thread, off the consensus thread.
    let CheckpointPlan::Inline(store) =
        std::mem::replace(&mut driver.plan, CheckpointPlan::Stopped)
    else {
        unreachable!("a new driver writes its checkpoints inline");
    };
    let log = Arc::clone(&driver.log);
    with_checkpoint_writer(shared, &log, store, |plan| {
        driver.plan = plan;
        if let Err(reason) = driver.run(verified, &peer_events) {
            shared.set_fatal(reason);
        }
        // Drops the writer's queue: it finishes what it writes, then stops.
        driver.plan = CheckpointPlan::Stopped;
    });
    driver.ledger
}

impl Driver<SystemClock, PeerLinks> {
    /// The stage's loop: verified batches, peer events and ledger queries as they come,
    /// timeouts and re-gossip between them.
    fn run(
        &mut self,
        verified: &Receiver<VerifiedBatch>,
        peer_events: &Receiver<PeerEvent>,
    ) -> Result<(), Fatal> {
        let never = crossbeam::channel::never();
        let mut verified_open = true;
        let mut stop_deadline: Option<Instant> = None;
        loop {
            if !verified_open {
                let now = self.now();
                let deadline = *stop_deadline.get_or_insert(now + SHUTDOWN_GRACE);
                if self.host.pool.local.is_empty() || now >= deadline {
                    if !self.host.pool.local.is_empty() {
                        tracing::warn!(
                            transactions = self.host.pool.local.len(),
                            "stopping with client transactions not yet decided: clients must query their status"
                        );
                    }
                    return Ok(());
                }
            }
            self.maybe_start_height()?;
            let wait = self.next_wake().saturating_duration_since(self.now());
            let verified_now = if verified_open && self.host.pool.has_room() {
                verified
            } else {
                &never
            };
            crossbeam::select! {
                recv(verified_now) -> batch => match batch {
                    Ok(batch) => {
                        self.add_local(batch);
                        // What is verified now goes into the next block (a height takes
                        // milliseconds, batches come every few), but only what is queued
                        // now: under a burst, batches keep coming, and consensus must run.
                        for _ in 0..verified.len() {
                            if !self.host.pool.has_room() {
                                break;
                            }
                            match verified.try_recv() {
                                Ok(batch) => self.add_local(batch),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(_) => verified_open = false,
                },
                recv(peer_events) -> event => {
                    if let Ok(event) = event {
                        self.on_peer_event(event)?;
                    }
                }
                recv(self.shared.ledger_queries.1) -> query => {
                    if let Ok(query) = query {
                        query(&self.ledger);
                    }
                }
                default(wait) => {}
            }
            self.fire_timers()?;
            self.regossip();
            self.shared
                .metrics
                .verified_queue_batches
                .set(verified.len() as i64);
        }
    }
}
