//! Account events: what a client subscribed to its accounts hears, block by block
//! (docs/PROTOCOL.md, "Subscriptions").
//!
//! A client sends `Subscribe` with the accounts it follows and the first block height it
//! wants; the node answers with one `Events` frame per block that holds an event of those
//! accounts, in height order, from that height on: first the blocks it has kept, then each
//! block as it becomes durable. A block's events come whole in one frame, so a client that
//! remembers the last height it processed and subscribes again from the next one, to the
//! same node after a restart or to another validator, hears every event exactly once.

use serde::{Deserialize, Serialize};

/// Most accounts one subscription follows.
pub const SUBSCRIPTION_ACCOUNTS_MAX: usize = 1_024;

/// What a client asks to hear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The accounts followed: an event is sent when it names one of them (payer, payee or
    /// the account that received the tax).
    pub accounts: Vec<u64>,
    /// The first block height whose events are sent (1 is the first block).
    pub from_height: u64,
}

impl Subscription {
    /// Checks the shape of the subscription (not who may follow which account).
    pub fn check(&self) -> Result<(), String> {
        if self.accounts.is_empty() {
            return Err("a subscription follows at least one account".into());
        }
        if self.accounts.len() > SUBSCRIPTION_ACCOUNTS_MAX {
            return Err(format!(
                "a subscription follows at most {SUBSCRIPTION_ACCOUNTS_MAX} accounts, not {}",
                self.accounts.len()
            ));
        }
        if self.from_height == 0 {
            return Err("from_height starts at 1, the first block".into());
        }
        Ok(())
    }
}

/// What happened to a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Settled in its own block: a transfer, a posted reservation, a taxed payment, a pledge
    /// or a redeem.
    Settled,
    /// Taken into an RTGS queue: it waits for liquidity.
    Queued,
    /// A queued payment released from its queue and settled (by a queue retry or by the
    /// liquidity-saving mechanism).
    Released,
    /// A queued payment not settled by the end of its business day (with a business-day
    /// calendar its final status is `end_of_day_unsettled`).
    Expired,
    /// A reservation (two-phase transfer) made.
    Reserved,
    /// A reservation released because it timed out.
    ReservationExpired,
    /// A taxed payment (partly) refunded: the payee paid `amount` back to the payer.
    Refunded,
    /// A payment accepted ahead of its value date: kept until that day's opening, when it
    /// is `settled`, `queued` or `rejected`.
    Warehoused,
    /// A warehoused payment refused at its value date's opening (no liquidity for a payment
    /// that cannot queue, a suspended party, a cut-off...): nothing moved.
    Rejected,
    /// A queued payment cancelled by its payer (a queue cancel settled): it leaves the queue
    /// and nothing moved.
    Cancelled,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Settled,
        EventKind::Queued,
        EventKind::Released,
        EventKind::Expired,
        EventKind::Reserved,
        EventKind::ReservationExpired,
        EventKind::Refunded,
        EventKind::Warehoused,
        EventKind::Rejected,
        EventKind::Cancelled,
    ];

    /// Its code in the node's event journal.
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The kind for a journal code.
    pub fn from_code(code: u8) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Settled => "settled",
            EventKind::Queued => "queued",
            EventKind::Released => "released",
            EventKind::Expired => "expired",
            EventKind::Reserved => "reserved",
            EventKind::ReservationExpired => "reservation_expired",
            EventKind::Refunded => "refunded",
            EventKind::Warehoused => "warehoused",
            EventKind::Rejected => "rejected",
            EventKind::Cancelled => "cancelled",
        }
    }
}

/// One event of one transaction. A subscriber's own holds, reprioritisations and voids are
/// not events: their sender hears their results as for any transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEvent {
    pub kind: EventKind,
    /// The transaction it happened to (for `refunded`, the refund; its `related_id` is the
    /// payment refunded).
    pub id: u128,
    /// For `refunded`, the payment refunded.
    pub related_id: Option<u128>,
    /// The account debited (the payer).
    pub payer: u64,
    /// The account credited (the payee).
    pub payee: u64,
    /// Minor units moved, queued or reserved.
    pub amount: u64,
    /// A taxed payment's tax and the account that received it; for a refund, the tax it
    /// reversed and the account that paid it back.
    pub tax: Option<u64>,
    pub tax_account: Option<u64>,
    /// For a taxed payment (`settled`, `released`) and a refund of one: whether it was taxed
    /// on the exclusive basis (the payer paid the tax on top of `amount`).
    pub exclusive: bool,
    /// The balances at the end of the event's block of its payer, its payee and, when it has
    /// one, its tax account (minor units): what the ledger holds once the whole block is
    /// applied, so a follower that booked the block checks its books against them.
    pub payer_balance: i64,
    pub payee_balance: i64,
    pub tax_account_balance: Option<i64>,
}

impl AccountEvent {
    /// Whether the event names `account`.
    pub fn names(&self, account: u64) -> bool {
        self.payer == account || self.payee == account || self.tax_account == Some(account)
    }

    /// The balance of `account` at the end of the event's block, if the event names it.
    pub fn balance_of(&self, account: u64) -> Option<i64> {
        if self.payer == account {
            Some(self.payer_balance)
        } else if self.payee == account {
            Some(self.payee_balance)
        } else if self.tax_account == Some(account) {
            self.tax_account_balance
        } else {
            None
        }
    }
}

/// What every block's events are stamped with: the block's time (the timestamp consensus
/// agreed, as the ledger applied it) and the business day whose end the block applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStamp {
    pub time_ms: u64,
    /// The business day (days since 1970-01-01 with a calendar; else counted from the first
    /// daily cut-off) that ended at this block: the block is the first of a later business
    /// day. The block's `expired` events close that day's queue; its other events belong to
    /// the new day.
    pub day_ended: Option<u64>,
}

/// Most events in one `Events` frame: a block with more for one subscription comes in
/// several frames (each under the frame maximum), the last one marked `complete`.
pub const EVENTS_PER_FRAME_MAX: usize = 4_096;

/// The events of one block that a subscription follows (or a part of them: see
/// `complete`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    pub height: u64,
    /// The block's time and the business day it ended. A block that ends a business day is
    /// sent to every subscription, with no events when none names its accounts.
    pub stamp: BlockStamp,
    pub events: Vec<AccountEvent>,
    /// Whether this frame ends the block's events (false: more of the same block follow).
    /// A follower counts a block as handled only once its complete frame arrived.
    #[serde(default = "complete_by_default")]
    pub complete: bool,
}

fn complete_by_default() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_codes_that_read_back() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(EventKind::from_code(0), None);
        assert_eq!(EventKind::from_code(EventKind::ALL.len() as u8 + 1), None);
    }

    #[test]
    fn a_subscription_is_checked_for_its_shape() {
        let ok = Subscription {
            accounts: vec![1],
            from_height: 1,
        };
        assert_eq!(ok.check(), Ok(()));
        let none = Subscription {
            accounts: vec![],
            ..ok.clone()
        };
        assert!(none.check().unwrap_err().contains("at least one"));
        let many = Subscription {
            accounts: (0..SUBSCRIPTION_ACCOUNTS_MAX as u64 + 1).collect(),
            ..ok.clone()
        };
        assert!(many.check().unwrap_err().contains("at most 1024"));
        let zero = Subscription {
            from_height: 0,
            ..ok
        };
        assert!(zero.check().unwrap_err().contains("starts at 1"));
    }
}
