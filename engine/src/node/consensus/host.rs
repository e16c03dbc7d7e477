//! The host side of the consensus machine: proposals from the pool and the deterministic
//! validity check of a proposal as the next block (header against the chain, records well
//! formed, signatures not verified here before).

use super::*;

/// The host side of the machine: proposals, validity, the pool.
pub(super) struct Host<C, L> {
    pub(super) network_id: u64,
    pub(super) set: ValidatorSet,
    pub(super) own_index: Option<usize>,
    /// The last durable block.
    pub(super) tip: ChainTip,
    pub(super) block_tx_max: usize,
    pub(super) pool: Pool,
    /// Proposal bodies received or built, by id (this height and the next only).
    pub(super) proposals: HashMap<BlockId, ProposalBody>,
    pub(super) valid_cache: HashMap<BlockId, bool>,
    pub(super) verifier: Arc<Verifier>,
    /// Threads of their own for verifying proposals: on the shared pool, a proposal would
    /// wait behind every signature batch the node's signature stage has queued (a burst of
    /// load stalled heights for seconds that way).
    pub(super) verify_pool: Option<rayon::ThreadPool>,
    pub(super) clock: C,
    pub(super) links: L,
    #[cfg(feature = "simulator")]
    pub(super) injected_bug: Option<InjectedBug>,
}

impl<C: Clock, L: Links> Application for Host<C, L> {
    fn propose_value(&mut self, height: u64, _round: u32) -> BlockId {
        let records = self.pool.take_for_block(self.block_tx_max);
        assert_eq!(
            height,
            self.tip.height + 1,
            "the machine proposes the next height"
        );
        let proposer = self.own_index.unwrap_or(0) as u32;
        let header = seal::propose(
            &self.tip,
            self.network_id,
            self.clock.wall_ms(),
            proposer,
            &records,
        );
        let body = ProposalBody { header, records };
        let id = body.id();
        // Sent before the machine's proposal message, on the same links: peers have the
        // body by the time they read the proposal.
        self.links
            .broadcast(wire::KIND_PROPOSAL_BODY, &body.encode());
        self.proposals.insert(id, body);
        self.valid_cache.insert(id, true);
        id
    }

    fn is_valid(&mut self, height: u64, value: &BlockId) -> bool {
        if let Some(&known) = self.valid_cache.get(value) {
            return known;
        }
        let Some(body) = self.proposals.get(value) else {
            return false; // not here yet: fed again when it arrives
        };
        let verdict = self.check_proposal(height, body);
        if let Err(reason) = &verdict {
            tracing::warn!(height, %reason, "refusing a proposal");
        }
        self.valid_cache.insert(*value, verdict.is_ok());
        verdict.is_ok()
    }
}

impl<C: Clock, L: Links> Host<C, L> {
    /// Deterministic checks of a proposal as the next block (the clock is not consulted).
    pub(super) fn check_proposal(&self, height: u64, body: &ProposalBody) -> Result<(), String> {
        let header = &body.header;
        if header.height() != height {
            return Err(format!(
                "the proposal for height {height} carries a header of height {}",
                header.height()
            ));
        }
        #[cfg(feature = "simulator")]
        let skip_header = self.injected_bug == Some(InjectedBug::SkipProposalHeaderCheck);
        #[cfg(not(feature = "simulator"))]
        let skip_header = false;
        if !skip_header {
            seal::check_header(
                &self.tip,
                self.network_id,
                header,
                body.records.len(),
                VALIDATOR_BLOCK_TX_MAX,
            )
            .map_err(|error| error.to_string())?;
        }
        seal::check_timestamp(&self.tip, header).map_err(|error| error.to_string())?;
        if u32::from_le_bytes(header.proposer) as usize >= self.set.len() {
            return Err("proposer index outside the validator set".into());
        }
        for (index, record) in body.records.iter().enumerate() {
            record
                .validate()
                .map_err(|error| format!("record {index}: {error}"))?;
        }
        // Signatures not verified here before.
        let unseen: Vec<&TxRecord> = body
            .records
            .iter()
            .filter(|r| self.pool.pending.get(&r.id()) != Some(*r))
            .collect();
        if !unseen.is_empty() {
            let mut messages = Vec::with_capacity(unseen.len());
            let records = unseen.iter().copied();
            let (verifier, network_id) = (&self.verifier, self.network_id);
            let verify = || verify_signatures(verifier, network_id, records, &mut messages);
            let verdicts = match &self.verify_pool {
                Some(pool) => pool.install(verify),
                None => verify(),
            };
            if let Some(bad) = verdicts.iter().position(|ok| !ok) {
                return Err(format!(
                    "transaction {:032x} has a bad signature",
                    unseen[bad].id()
                ));
            }
        }
        Ok(())
    }
}
