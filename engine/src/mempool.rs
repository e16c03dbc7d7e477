//! The mempool: a bounded lock-free queue (crossbeam `ArrayQueue`) between ingress and the
//! signature stage. When it is full, the client is told `Busy`; nothing is dropped silently.

use crate::result::ResultCode;
use crate::tx::TxRecord;
use crossbeam::channel::Sender;
use crossbeam::queue::ArrayQueue;
use std::time::Instant;

/// What a client hears about one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub id: u128,
    pub code: ResultCode,
    /// Height of the durable block that holds the transaction; `None` when it was rejected
    /// before a block (malformed, bad signature).
    pub height: Option<u64>,
}

/// A transaction waiting in the pipeline, with where to send its acknowledgement.
pub struct PendingTx {
    pub record: TxRecord,
    pub reply: Sender<Ack>,
    pub received_at: Instant,
}

impl PendingTx {
    /// Sends the acknowledgement; a client that went away is not an error of the node.
    pub fn acknowledge(&self, code: ResultCode, height: Option<u64>) {
        let _ = self.reply.send(Ack {
            id: self.record.id(),
            code,
            height,
        });
    }
}

/// The bounded queue.
pub struct Mempool {
    queue: ArrayQueue<PendingTx>,
}

impl Mempool {
    /// A mempool holding at most `tx_max` transactions.
    pub fn new(tx_max: usize) -> Mempool {
        assert!(tx_max > 0, "mempool needs room for one transaction");
        Mempool {
            queue: ArrayQueue::new(tx_max),
        }
    }

    /// Adds one transaction, or hands it back when the mempool is full.
    // The transaction comes back by value, as with `ArrayQueue::push`: boxing it would
    // allocate per transaction on the hot path.
    #[allow(clippy::result_large_err)]
    pub fn push(&self, tx: PendingTx) -> Result<(), PendingTx> {
        self.queue.push(tx)
    }

    /// Moves up to `max` transactions into `out`; returns how many.
    pub fn drain_into(&self, out: &mut Vec<PendingTx>, max: usize) -> usize {
        let mut moved = 0;
        while moved < max {
            match self.queue.pop() {
                Some(tx) => {
                    out.push(tx);
                    moved += 1;
                }
                None => break,
            }
        }
        moved
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
}
