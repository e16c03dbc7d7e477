//! The mempool: a bounded lock-free queue (crossbeam `ArrayQueue`) between ingress and the
//! signature stage. When it is full, the client is told `Busy`; nothing is dropped silently.
//!
//! The queue holds units: one transaction, or a whole linked chain. A chain is pushed and
//! drained as one unit, so no other record lands between its members and no drain cuts it.
//! Capacity counts transactions, not units: a count is reserved (one atomic update) before a
//! unit is pushed and released when the unit is drained, and a unit whose transactions do not
//! all fit is refused whole. A single transaction travels without allocating.

use crate::result::ResultCode;
use crate::tx::TxRecord;
use crossbeam::channel::Sender;
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
pub use tally_protocol::submit::Ack;

/// Most transactions in one linked chain a node takes (its linked records and the record that
/// closes it). A node takes less when its mempool or its blocks are smaller: a chain is one
/// mempool unit and never crosses a block boundary. Longer chains are answered
/// `linked_chain_too_long` at ingress.
pub const LINKED_CHAIN_TX_MAX: usize = 512;

/// A transaction waiting in the pipeline, with where to send its acknowledgement.
pub struct PendingTx {
    pub record: TxRecord,
    pub reply: Sender<Ack>,
    pub received_at: Instant,
    /// Which signature batches it is verified in: [`COMMON_LANE`] with everyone's, or the
    /// lane of one identity whose signatures failed recently, verified in batches of that
    /// lane alone so that its bad signatures never split the batches of others (the
    /// verdict of each record is the same either way).
    pub lane: u32,
}

/// The lane of records verified in everyone's signature batches.
pub const COMMON_LANE: u32 = 0;

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

/// What the queue holds: one transaction, or a linked chain kept whole.
// One transaction is held inline (boxing it would allocate per transaction on the hot path);
// only a chain, rarer and already a group, is boxed.
#[allow(clippy::large_enum_variant)]
enum Unit {
    One(PendingTx),
    Chain(Box<[PendingTx]>),
}

impl Unit {
    fn tx_count(&self) -> usize {
        match self {
            Unit::One(_) => 1,
            Unit::Chain(chain) => chain.len(),
        }
    }

    fn move_into(self, out: &mut Vec<PendingTx>) {
        match self {
            Unit::One(tx) => out.push(tx),
            Unit::Chain(chain) => out.extend(chain.into_vec()),
        }
    }
}

/// The bounded queue. Any number of threads push; one thread (the signature stage) drains.
pub struct Mempool {
    /// Never holds more units than `tx_count` says transactions, so it never refuses a push
    /// whose count was reserved.
    queue: ArrayQueue<Unit>,
    /// Transactions reserved by pushes and not yet drained.
    tx_count: AtomicUsize,
    tx_max: usize,
    /// A unit popped by a drain that would have gone over its maximum: the next drain starts
    /// with it, so the order is kept. Only the draining thread takes this lock.
    held_over: Mutex<Option<Unit>>,
}

impl Mempool {
    /// A mempool holding at most `tx_max` transactions.
    pub fn new(tx_max: usize) -> Mempool {
        assert!(tx_max > 0, "mempool needs room for one transaction");
        Mempool {
            queue: ArrayQueue::new(tx_max),
            tx_count: AtomicUsize::new(0),
            tx_max,
            held_over: Mutex::new(None),
        }
    }

    /// Reserves room for `count` transactions; false when they do not all fit.
    fn reserve(&self, count: usize) -> bool {
        self.tx_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(count)
                    .filter(|&total| total <= self.tx_max)
            })
            .is_ok()
    }

    #[allow(clippy::result_large_err)] // handed back by value, as `push` does
    fn push_unit(&self, unit: Unit) -> Result<(), Unit> {
        let count = unit.tx_count();
        if !self.reserve(count) {
            return Err(unit);
        }
        // The queue holds at most as many units as reserved transactions, and its capacity
        // is `tx_max`: a reserved push always finds room. Hand the unit back all the same
        // should that ever fail, rather than lose it.
        self.queue.push(unit).inspect_err(|_| {
            self.tx_count.fetch_sub(count, Ordering::AcqRel);
        })
    }

    /// Adds one transaction, or hands it back when the mempool is full.
    // The transaction comes back by value, as with `ArrayQueue::push`: boxing it would
    // allocate per transaction on the hot path.
    #[allow(clippy::result_large_err)]
    pub fn push(&self, tx: PendingTx) -> Result<(), PendingTx> {
        self.push_unit(Unit::One(tx)).map_err(|unit| match unit {
            Unit::One(tx) => tx,
            Unit::Chain(_) => unreachable!("pushed one transaction"),
        })
    }

    /// Adds a linked chain as one unit: all of it, or (when its transactions do not all fit)
    /// none of it, handed back. The chain is drained whole and in order.
    pub fn push_chain(&self, chain: Box<[PendingTx]>) -> Result<(), Box<[PendingTx]>> {
        assert!(!chain.is_empty(), "a chain has at least one transaction");
        self.push_unit(Unit::Chain(chain))
            .map_err(|unit| match unit {
                Unit::Chain(chain) => chain,
                Unit::One(_) => unreachable!("pushed a chain"),
            })
    }

    /// Moves whole units, in order, into `out` while they fit in `max` transactions; returns
    /// how many transactions moved. A unit is never split: the first one moves even when it
    /// alone is larger than `max`, later ones wait for the next call. Called by one thread.
    pub fn drain_into(&self, out: &mut Vec<PendingTx>, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let mut held_over = self.held_over.lock().expect("mempool drain lock");
        let mut moved = 0;
        loop {
            let Some(unit) = held_over.take().or_else(|| self.queue.pop()) else {
                break;
            };
            let count = unit.tx_count();
            if moved > 0 && moved + count > max {
                *held_over = Some(unit);
                break;
            }
            unit.move_into(out);
            moved += count;
            if moved >= max {
                break;
            }
        }
        // Released once per drain: until then the count errs on the full side, never over.
        if moved > 0 {
            self.tx_count.fetch_sub(moved, Ordering::AcqRel);
        }
        moved
    }

    /// Transactions in the mempool (reserved by pushes under way included).
    pub fn len(&self) -> usize {
        self.tx_count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most transactions the mempool holds.
    pub fn capacity(&self) -> usize {
        self.tx_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::TxFields;
    use crossbeam::channel::unbounded;

    fn pending(id: u128, reply: &Sender<Ack>) -> PendingTx {
        PendingTx {
            record: TxRecord::new(&TxFields::transfer(id, 1_000, 1_001, 1, 702).valid_until(1_000)),
            reply: reply.clone(),
            received_at: Instant::now(),
            lane: COMMON_LANE,
        }
    }

    fn chain(ids: std::ops::RangeInclusive<u128>, reply: &Sender<Ack>) -> Box<[PendingTx]> {
        ids.map(|id| pending(id, reply)).collect()
    }

    fn ids(out: &[PendingTx]) -> Vec<u128> {
        out.iter().map(|tx| tx.record.id()).collect()
    }

    #[test]
    fn capacity_counts_transactions_and_a_chain_is_taken_whole_or_not_at_all() {
        let (reply, _acks) = unbounded();
        let mempool = Mempool::new(6);
        assert!(mempool.push(pending(1, &reply)).is_ok());
        assert!(mempool.push_chain(chain(2..=4, &reply)).is_ok());
        assert_eq!(mempool.len(), 4);
        // three more do not fit in the two left: handed back whole, nothing reserved
        let back = mempool
            .push_chain(chain(5..=7, &reply))
            .expect_err("full for three");
        assert_eq!(ids(&back), vec![5, 6, 7]);
        assert_eq!(mempool.len(), 4);
        assert!(mempool.push_chain(chain(5..=6, &reply)).is_ok());
        assert_eq!(mempool.len(), 6);
        let back = mempool.push(pending(8, &reply)).expect_err("full");
        assert_eq!(back.record.id(), 8);
        let mut out = Vec::new();
        assert_eq!(mempool.drain_into(&mut out, 100), 6);
        assert_eq!(ids(&out), vec![1, 2, 3, 4, 5, 6]);
        assert!(mempool.is_empty());
    }

    #[test]
    fn a_drain_never_splits_a_chain_and_goes_over_its_maximum_only_for_a_first_large_one() {
        let (reply, _acks) = unbounded();
        let mempool = Mempool::new(64);
        assert!(mempool.push(pending(1, &reply)).is_ok());
        assert!(mempool.push_chain(chain(2..=5, &reply)).is_ok());
        assert!(mempool.push(pending(6, &reply)).is_ok());
        assert!(mempool.push_chain(chain(7..=16, &reply)).is_ok());
        assert!(mempool.push(pending(17, &reply)).is_ok());
        let mut out = Vec::new();
        // 1 fits, the chain 2..=5 would make 5 > 3: it waits, in front
        assert_eq!(mempool.drain_into(&mut out, 3), 1);
        assert_eq!(ids(&out), vec![1]);
        assert_eq!(mempool.len(), 16);
        out.clear();
        assert_eq!(
            mempool.drain_into(&mut out, 3),
            4,
            "a first unit alone moves whole"
        );
        assert_eq!(ids(&out), vec![2, 3, 4, 5]);
        out.clear();
        assert_eq!(mempool.drain_into(&mut out, 8), 1);
        assert_eq!(ids(&out), vec![6]);
        out.clear();
        assert_eq!(mempool.drain_into(&mut out, 11), 11);
        assert_eq!(ids(&out), (7..=17).collect::<Vec<_>>());
        assert!(mempool.is_empty());
        out.clear();
        assert_eq!(mempool.drain_into(&mut out, 11), 0);
    }

    #[test]
    fn many_producers_lose_nothing_and_chains_arrive_contiguous() {
        let (reply, _acks) = unbounded();
        let mempool = Mempool::new(32);
        let producers = 4u128;
        let chains_each = 500u128;
        std::thread::scope(|scope| {
            for producer in 0..producers {
                let (mempool, reply) = (&mempool, reply.clone());
                scope.spawn(move || {
                    for c in 0..chains_each {
                        let base = (producer * chains_each + c) * 10;
                        // chains of 1 to 3, and a single record
                        let length = c % 3 + 1;
                        let mut unit = chain(base + 1..=base + length, &reply);
                        while let Err(back) = mempool.push_chain(unit) {
                            unit = back;
                            std::thread::yield_now();
                        }
                        let mut one = pending(base + 9, &reply);
                        while let Err(back) = mempool.push(one) {
                            one = back;
                            std::thread::yield_now();
                        }
                    }
                });
            }
            let expected: usize = (0..chains_each)
                .map(|c| (c % 3) as usize + 2)
                .sum::<usize>()
                * producers as usize;
            let mut out = Vec::new();
            while out.len() < expected {
                mempool.drain_into(&mut out, 5);
                assert!(mempool.len() <= 32);
            }
            assert_eq!(out.len(), expected);
            // every chain's members are adjacent and in order
            let mut index = 0;
            while index < out.len() {
                let id = out[index].record.id();
                if id % 10 == 9 {
                    index += 1;
                    continue;
                }
                let base = id - 1;
                let length = ((base / 10) % chains_each % 3) as usize + 1;
                for offset in 0..length {
                    assert_eq!(out[index + offset].record.id(), base + 1 + offset as u128);
                }
                index += length;
            }
        });
        assert!(mempool.is_empty());
    }
}
