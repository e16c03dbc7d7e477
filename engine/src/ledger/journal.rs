//! Undo records of a linked chain: a chain settles all or nothing, so every change made while
//! one is open is remembered until the chain closes.

use super::{Account, Pending, QueueKey, QueuedPayment, TaxPayment, TaxRate, TaxTotals};
use tally_kernels::merkle::Hash;

/// How to undo one change.
#[derive(Clone, Debug)]
pub(super) enum Undo {
    Account(usize, Account),
    UsedId(u128, u64),
    PendingInserted(u128),
    PendingRemoved(u128, Pending),
    ClosedInserted(u128),
    TaxPaymentInserted(u128),
    TaxPaymentUpdated(u128, TaxPayment),
    TaxTotals(super::tax::TaxTotalsKey, Option<TaxTotals>),
    TaxRate((u32, u64), Option<TaxRate>),
    /// A serial put on the revocation list.
    Revoked(Vec<u8>),
    /// The queue entry at a key before the change (None: there was none).
    Queue(QueueKey, Option<QueuedPayment>),
    /// The warehouse entry at a key before the change (None: there was none).
    Warehouse(super::WarehouseKey, Option<super::WarehousedPayment>),
}

/// An open linked chain.
#[derive(Clone, Debug)]
pub(super) struct Chain {
    /// Index in the block of the chain's first record.
    pub start_index: u32,
    pub undo: Vec<Undo>,
    pub used_ids_digest: Hash,
    pub history_digest: Hash,
    /// A record of the chain failed and the chain was undone: the rest of it fails too.
    pub failed: bool,
}

impl Chain {
    pub fn start(start_index: u32, used_ids_digest: Hash, history_digest: Hash) -> Chain {
        Chain {
            start_index,
            undo: Vec::new(),
            used_ids_digest,
            history_digest,
            failed: false,
        }
    }

    pub fn failed(start_index: u32) -> Chain {
        Chain {
            start_index,
            undo: Vec::new(),
            used_ids_digest: [0; 32],
            history_digest: [0; 32],
            failed: true,
        }
    }
}
