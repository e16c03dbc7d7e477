//! RTGS queues and the liquidity-saving mechanism.
//!
//! A payment between two banks that the payer cannot cover waits in the payer's queue
//! instead of failing. Each payer's queue is ordered by priority (urgent first), then by
//! arrival (a ledger-wide counter). A new payment never overtakes a queued, not held payment
//! of the same payer with the same or a higher priority. At the end of every block the
//! queues are retried head first (a head that does not fit blocks the payments behind it);
//! what stays gridlocked goes to the multilateral offsetting below. Queued payments expire at
//! the end of their business day.

use super::{Closed, Ledger, SettlementEvent};
use crate::result::ResultCode;
use crate::tx::{TxKind, TxRecord};
use std::collections::{BTreeMap, BTreeSet};

/// Most payments waiting in all queues together (`queue_full` beyond).
pub const QUEUED_PAYMENTS_MAX: usize = 1 << 20;

/// Priority rank of an urgent payment (settles first).
const RANK_URGENT: u8 = 0;
/// Priority rank of a normal payment.
const RANK_NORMAL: u8 = 1;

/// Where a queued payment stands: its payer, its priority rank (0 urgent, 1 normal) and its
/// arrival number. The queues' order is this key's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    pub payer: u64,
    pub rank: u8,
    pub seq: u64,
}

/// A payment waiting for liquidity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedPayment {
    pub id: u128,
    pub payer: u64,
    pub payee: u64,
    pub amount: u64,
    pub urgent: bool,
    /// Held by its payer: skipped, and blocks nothing, until released.
    pub held: bool,
    /// Arrival number (ledger-wide, increasing).
    pub seq: u64,
    pub queued_height: u64,
    /// Block time at which it expires (the end of its business day).
    pub expires_at_ms: u64,
}

/// Bytes of a queued payment's encoding (state root and snapshots).
pub(super) const QUEUED_BYTES: usize = 16 + 8 * 3 + 1 + 1 + 8 * 3;

impl QueuedPayment {
    pub fn key(&self) -> QueueKey {
        QueueKey {
            payer: self.payer,
            rank: if self.urgent {
                RANK_URGENT
            } else {
                RANK_NORMAL
            },
            seq: self.seq,
        }
    }

    pub(super) fn encode(&self) -> [u8; QUEUED_BYTES] {
        let mut out = [0u8; QUEUED_BYTES];
        out[0..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.payer.to_le_bytes());
        out[24..32].copy_from_slice(&self.payee.to_le_bytes());
        out[32..40].copy_from_slice(&self.amount.to_le_bytes());
        out[40] = u8::from(self.urgent);
        out[41] = u8::from(self.held);
        out[42..50].copy_from_slice(&self.seq.to_le_bytes());
        out[50..58].copy_from_slice(&self.queued_height.to_le_bytes());
        out[58..66].copy_from_slice(&self.expires_at_ms.to_le_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8; QUEUED_BYTES]) -> Option<QueuedPayment> {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let flag = |at: usize| match bytes[at] {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        Some(QueuedPayment {
            id: u128::from_le_bytes(bytes[0..16].try_into().expect("16")),
            payer: u64_at(16),
            payee: u64_at(24),
            amount: u64_at(32),
            urgent: flag(40)?,
            held: flag(41)?,
            seq: u64_at(42),
            queued_height: u64_at(50),
            expires_at_ms: u64_at(58),
        })
    }
}

fn payer_range(payer: u64) -> std::ops::RangeInclusive<QueueKey> {
    QueueKey {
        payer,
        rank: 0,
        seq: 0,
    }..=QueueKey {
        payer,
        rank: u8::MAX,
        seq: u64::MAX,
    }
}

impl Ledger {
    /// Whether `payer` has a queued, not held payment that a new payment of this priority
    /// may not overtake.
    pub(super) fn queue_blocks(&self, payer: u64, urgent: bool) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let rank = if urgent { RANK_URGENT } else { RANK_NORMAL };
        let until = QueueKey {
            payer,
            rank,
            seq: u64::MAX,
        };
        let from = QueueKey {
            payer,
            rank: 0,
            seq: 0,
        };
        self.queue
            .range(from..=until)
            .any(|(_, queued)| !queued.held)
    }

    pub(super) fn enqueue(
        &mut self,
        tx: &TxRecord,
        debit: usize,
        credit: usize,
        amount: i64,
        urgent: bool,
    ) -> Result<ResultCode, ResultCode> {
        if self.queue.len() >= QUEUED_PAYMENTS_MAX {
            return Err(ResultCode::QueueFull);
        }
        let queued = QueuedPayment {
            id: tx.id(),
            payer: self.accounts[debit].id,
            payee: self.accounts[credit].id,
            amount: amount as u64,
            urgent,
            held: false,
            seq: self.next_seq,
            queued_height: self.block.height,
            expires_at_ms: self.end_of_day_ms(self.block.time_ms),
        };
        self.next_seq += 1;
        let key = queued.key();
        self.queue_put(key, queued);
        self.queue_index.insert(queued.id, key);
        self.queue_earliest_expiry_ms = self.queue_earliest_expiry_ms.min(queued.expires_at_ms);
        Ok(ResultCode::Queued)
    }

    /// Hold, release, cancel or re-prioritise a queued payment, signed by its payer.
    pub(super) fn queue_operation(
        &mut self,
        tx: &TxRecord,
        kind: TxKind,
        debit: usize,
    ) -> Result<ResultCode, ResultCode> {
        if tx.public_key != self.accounts[debit].owner {
            return Err(ResultCode::NotOwner);
        }
        if kind == TxKind::QueueCancel {
            let payer = self.accounts[debit].id;
            if let Some(result) = self.warehouse_cancel(tx.related_id(), payer) {
                return result;
            }
        }
        let Some(&key) = self.queue_index.get(&tx.related_id()) else {
            return Err(ResultCode::QueuedPaymentNotFound);
        };
        if key.payer != self.accounts[debit].id {
            return Err(ResultCode::NotOwner);
        }
        let mut queued = self.queue[&key];
        match kind {
            TxKind::QueueHold | TxKind::QueueRelease => {
                let hold = kind == TxKind::QueueHold;
                match (hold, queued.held) {
                    (true, true) => return Err(ResultCode::QueuedPaymentAlreadyHeld),
                    (false, false) => return Err(ResultCode::QueuedPaymentNotHeld),
                    _ => {}
                }
                self.journal(super::Undo::Queue(key, Some(queued)));
                queued.held = hold;
                self.queue_put(key, queued);
            }
            TxKind::QueueCancel => {
                self.journal(super::Undo::Queue(key, Some(queued)));
                self.queue_take(key);
                self.queue_index.remove(&queued.id);
                self.cancelled_in_block
                    .insert(queued.id, (queued.payer, queued.payee, queued.amount));
                self.close(
                    queued.id,
                    Closed::Cancelled {
                        height: self.block.height,
                    },
                );
            }
            TxKind::QueueReprioritise => {
                let urgent = tx.flags().has(crate::tx::TxFlags::URGENT);
                if urgent == queued.urgent {
                    return Err(ResultCode::QueuedPaymentPriorityUnchanged);
                }
                self.journal(super::Undo::Queue(key, Some(queued)));
                self.queue_take(key);
                queued.urgent = urgent;
                let new_key = queued.key();
                self.journal(super::Undo::Queue(new_key, None));
                self.queue_put(new_key, queued);
                self.queue_index.insert(queued.id, new_key);
            }
            _ => unreachable!("only queue operations come here"),
        }
        Ok(ResultCode::Ok)
    }

    /// Closes queued payments whose business day has ended: with a calendar they are
    /// rejected `end_of_day_unsettled`, without one they expire.
    pub(super) fn expire_queue(&mut self) {
        let now = self.block.time_ms;
        if now < self.queue_earliest_expiry_ms {
            return;
        }
        let expired: Vec<QueueKey> = self
            .queue
            .iter()
            .filter(|(_, queued)| queued.expires_at_ms <= now)
            .map(|(key, _)| *key)
            .collect();
        let end_of_day = self.calendar.is_some();
        let count = expired.len();
        for key in expired {
            let queued = self.queue_take(key).expect("listed above");
            self.queue_index.remove(&queued.id);
            let height = self.block.height;
            let (id, payer, payee, amount) = (queued.id, queued.payer, queued.payee, queued.amount);
            if end_of_day {
                self.close(id, Closed::EndOfDayUnsettled { height });
                self.events.push(SettlementEvent::EndOfDayUnsettled {
                    id,
                    payer,
                    payee,
                    amount,
                });
            } else {
                self.close(id, Closed::Expired { height });
                self.events.push(SettlementEvent::QueueExpired {
                    id,
                    payer,
                    payee,
                    amount,
                });
            }
        }
        if end_of_day && count > 0 {
            tracing::info!(
                height = self.block.height,
                count,
                "end of day: {count} queued payments rejected end_of_day_unsettled"
            );
        }
        self.queue_earliest_expiry_ms = self
            .queue
            .values()
            .map(|queued| queued.expires_at_ms)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Retries the queues, then offsets gridlock, until neither settles anything more.
    pub(super) fn settle_queues(&mut self) {
        while !self.queue.is_empty() {
            self.retry_queues();
            if self.queue.is_empty() || self.offset_gridlock() == 0 {
                break;
            }
        }
    }

    /// Whether a queued payment can take part in settlement now.
    fn is_active(&self, queued: &QueuedPayment) -> bool {
        !queued.held
            && !self.accounts[self.index.at(queued.payer)].suspended
            && !self.accounts[self.index.at(queued.payee)].suspended
    }

    fn settled_from_queue(&mut self, key: QueueKey, via_lsm: bool) {
        let queued = self.queue_take(key).expect("a queued payment");
        self.queue_index.remove(&queued.id);
        self.close(
            queued.id,
            Closed::SettledFromQueue {
                height: self.block.height,
                via_lsm,
            },
        );
        self.events.push(SettlementEvent::SettledFromQueue {
            id: queued.id,
            payer: queued.payer,
            payee: queued.payee,
            amount: queued.amount,
            via_lsm,
        });
    }

    /// Settles each payer's queue from its head while the payer can cover it. A payee that
    /// receives money is retried in turn.
    fn retry_queues(&mut self) {
        let mut work: BTreeSet<u64> = self.queue.keys().map(|key| key.payer).collect();
        let mut keys: Vec<QueueKey> = Vec::new();
        while let Some(payer) = work.pop_first() {
            let payer_index = self.index.at(payer);
            if self.accounts[payer_index].suspended {
                continue;
            }
            keys.clear();
            keys.extend(self.queue.range(payer_range(payer)).map(|(key, _)| *key));
            for &key in &keys {
                let queued = self.queue[&key];
                if !self.is_active(&queued) {
                    continue; // held, or its payee is suspended: waits without blocking
                }
                if self.accounts[payer_index].available() < i128::from(queued.amount) {
                    break; // the head blocks the payments behind it
                }
                let payee_index = self.index.at(queued.payee);
                let amount = queued.amount as i64;
                if self
                    .apply_movements(&[(payer_index, -amount), (payee_index, amount)])
                    .is_err()
                {
                    break;
                }
                self.settled_from_queue(key, false);
                if self.queue.range(payer_range(queued.payee)).next().is_some() {
                    work.insert(queued.payee);
                }
            }
        }
    }

    /// Multilateral offsetting (after Bech and Soramäki): take every active queued payment,
    /// compute each bank's position (what it can pay now, plus what it would receive, less
    /// what it would pay); while a bank's position is negative, drop its last payment in
    /// queue order (lowest priority, latest arrival), which also lowers its payee's position.
    /// What remains is a prefix of every queue that all positions cover: it settles at once.
    /// Returns how many payments settled.
    fn offset_gridlock(&mut self) -> usize {
        let mut selected: BTreeMap<u64, Vec<QueueKey>> = BTreeMap::new();
        let mut positions: BTreeMap<u64, i128> = BTreeMap::new();
        for (key, queued) in &self.queue {
            if !self.is_active(queued) {
                continue;
            }
            for bank in [queued.payer, queued.payee] {
                positions
                    .entry(bank)
                    .or_insert_with(|| self.accounts[self.index.at(bank)].available());
            }
            *positions.get_mut(&queued.payer).expect("inserted") -= i128::from(queued.amount);
            *positions.get_mut(&queued.payee).expect("inserted") += i128::from(queued.amount);
            selected.entry(queued.payer).or_default().push(*key);
        }
        let mut deficit: BTreeSet<u64> = positions
            .iter()
            .filter(|(_, position)| **position < 0)
            .map(|(bank, _)| *bank)
            .collect();
        while let Some(bank) = deficit.pop_first() {
            while positions[&bank] < 0 {
                let Some(key) = selected.get_mut(&bank).and_then(Vec::pop) else {
                    break;
                };
                let queued = self.queue[&key];
                *positions.get_mut(&bank).expect("a position") += i128::from(queued.amount);
                let payee = positions.get_mut(&queued.payee).expect("a position");
                *payee -= i128::from(queued.amount);
                if *payee < 0 {
                    deficit.insert(queued.payee);
                }
            }
        }
        let settling: Vec<QueueKey> = selected.into_values().flatten().collect();
        if settling.is_empty() {
            return 0;
        }
        // net each bank's movements and apply them all at once
        let mut net: BTreeMap<u64, i128> = BTreeMap::new();
        for key in &settling {
            let queued = &self.queue[key];
            *net.entry(queued.payer).or_default() -= i128::from(queued.amount);
            *net.entry(queued.payee).or_default() += i128::from(queued.amount);
        }
        let mut balances = Vec::with_capacity(net.len());
        for (bank, delta) in &net {
            let index = self.index.at(*bank);
            let Ok(balance) = i64::try_from(i128::from(self.accounts[index].balance) + delta)
            else {
                return 0;
            };
            balances.push((index, balance));
        }
        for (index, balance) in balances {
            self.account_tree.mark(index);
            self.set_balance(index, balance);
        }
        let count = settling.len();
        let mut settling = settling;
        settling.sort_unstable();
        for key in settling {
            self.settled_from_queue(key, true);
        }
        count
    }
}
