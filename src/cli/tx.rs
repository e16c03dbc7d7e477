//! `tally tx KIND ...`: one subcommand per transaction kind an operator or a participant
//! sends. Each builds its record (`tally_engine::tx::TxFields`), signs it with `--key-file`,
//! sends it to a running node (`--node`, repeatable for failover), waits for its final
//! result and prints the result code with its meaning, the block height and the id.

use super::client::{print_sent, ClientArgs, Loaded};
use std::process::ExitCode;
use tally_engine::net::query::Answer;
use tally_engine::net::query::Query;
use tally_engine::tax::{Rounding, TaxBasis};
use tally_engine::tx::{TxFields, TxKind};

#[derive(clap::Args, Debug)]
pub struct TxArgs {
    #[command(subcommand)]
    kind: TxCommand,
}

/// What every kind shares: where and how to send, and how to print.
#[derive(clap::Args, Debug)]
struct Common {
    #[command(flatten)]
    client: ClientArgs,
    /// Read amounts as whole minor units (`12540`) instead of currency units (`125.40`).
    #[arg(long)]
    minor_units: bool,
    /// Return once the node took the record, without waiting for its result.
    #[arg(long)]
    no_wait: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// A payment's accounts, amount and options.
#[derive(clap::Args, Debug)]
struct Payment {
    /// The debit account (the payer).
    #[arg(long)]
    from: u64,
    /// The credit account (the payee).
    #[arg(long)]
    to: u64,
    /// The amount, in currency units as people write them (`125.40`; the genesis's
    /// `currency.minor_unit_digits`, 2 unless it says), or minor units with --minor-units.
    #[arg(long, allow_hyphen_values = true)]
    amount: String,
    /// Settles before normal payments when it waits in an RTGS queue.
    #[arg(long)]
    urgent: bool,
    /// A free reference (an invoice number, decimal u128).
    #[arg(long, default_value_t = 0)]
    reference: u128,
    /// Send it ahead of its value date (`YYYY-MM-DD`): the ledger keeps it and settles it
    /// at that business day's opening (transfers and taxed payments, on a network whose
    /// genesis has a business-day calendar; docs/SETTLEMENT.md, "The business day").
    #[arg(long)]
    value_date: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum TxCommand {
    /// Move money from one account to another (between banks: an RTGS payment, queued when
    /// the payer lacks liquidity).
    Transfer {
        #[command(flatten)]
        payment: Payment,
        #[command(flatten)]
        common: Common,
    },
    /// Two-phase transfer, first phase: reserve the amount until it is posted or voided.
    Pending {
        #[command(flatten)]
        payment: Payment,
        /// Seconds after which an unposted reservation is released (0: never).
        #[arg(long, default_value_t = 0)]
        expires_in_s: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Two-phase transfer: settle (post) a reservation, all of it or --amount of it.
    Post {
        /// The pending transfer's id.
        #[arg(long)]
        pending: u128,
        /// Post less than the reserved amount (default: all of it).
        #[arg(long, allow_hyphen_values = true)]
        amount: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Two-phase transfer: release (void) a reservation.
    Void {
        /// The pending transfer's id.
        #[arg(long)]
        pending: u128,
        #[command(flatten)]
        common: Common,
    },
    /// A payment with tax: the gross from the payer, the tax of the category to the tax
    /// account, the rest to the payee, atomically.
    TaxedPayment {
        #[command(flatten)]
        payment: Payment,
        /// The tax category (a rate of the genesis or set since).
        #[arg(long)]
        category: u32,
        #[command(flatten)]
        common: Common,
    },
    /// The payee of a taxed payment pays part or all of its gross back; the tax is reversed
    /// in proportion. Signed by the payee (--from), paid to the payer (--to).
    Refund {
        /// The taxed payment's id.
        #[arg(long)]
        payment: u128,
        #[command(flatten)]
        refund: Payment,
        #[command(flatten)]
        common: Common,
    },
    /// The central bank mints reserves to a bank (signed with the central bank's key).
    Pledge {
        /// The bank credited.
        #[arg(long)]
        to: u64,
        /// The amount, in currency units (or minor units with --minor-units).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        #[command(flatten)]
        common: Common,
    },
    /// A bank's reserves go back to the central bank: signed with the central bank's key,
    /// sent over a connection whose certificate covers the bank (it debits the bank).
    Redeem {
        /// The bank debited.
        #[arg(long)]
        from: u64,
        /// The amount, in currency units (or minor units with --minor-units).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        #[command(flatten)]
        common: Common,
    },
    /// The central bank suspends a participant: its account neither pays nor is paid.
    Suspend {
        /// The participant's account.
        #[arg(long)]
        account: u64,
        #[command(flatten)]
        common: Common,
    },
    /// The central bank reinstates a suspended participant.
    Reinstate {
        /// The participant's account.
        #[arg(long)]
        account: u64,
        #[command(flatten)]
        common: Common,
    },
    /// The payer holds its queued payment: it stays queued but does not settle.
    QueueHold(QueueOp),
    /// The payer releases its held queued payment.
    QueueRelease(QueueOp),
    /// The payer cancels its queued payment.
    QueueCancel(QueueOp),
    /// The payer changes its queued payment's priority (--urgent, or normal without it).
    QueuePriority {
        #[command(flatten)]
        op: QueueOp,
        /// Make it urgent (without: normal).
        #[arg(long)]
        urgent: bool,
    },
    /// The tax authority sets a category's rate from a time on (signed with its key).
    SetTaxRate {
        /// The tax category.
        #[arg(long)]
        category: u32,
        /// The rate in basis points (900: 9%).
        #[arg(long)]
        rate_bp: u32,
        /// When it takes effect, as block time in Unix milliseconds (default: --effective-in-s
        /// from now). A rate takes effect at or after the block that sets it.
        #[arg(long, conflicts_with = "effective_in_s")]
        effective_from_ms: Option<u64>,
        /// When it takes effect, in seconds from now.
        #[arg(long, default_value_t = 10)]
        effective_in_s: u64,
        /// inclusive, exclusive or gross (default: the basis in force for the category).
        #[arg(long)]
        basis: Option<TaxBasis>,
        /// half_up, half_even or down (default: the rule in force for the category).
        #[arg(long)]
        rounding: Option<Rounding>,
        /// The tax goes to the payee's tax sub-account instead of the tax authority.
        #[arg(long)]
        to_sub_account: bool,
        #[command(flatten)]
        common: Common,
    },
    /// A validator's vote to add or remove a validator (as `tally validator vote`).
    ValidatorVote(super::validator::VoteArgs),
    /// The central bank revokes a certificate on every node (as `tally pki revoke`).
    RevokeCertificate(super::pki::RevokeArgs),
    /// The central bank opens an account at balance zero (signed with its key). With
    /// --overdraft-max or --balance-max a set-limits record follows once the account is open.
    OpenAccount {
        /// The new account's id (free: no account, open or closed, has it).
        #[arg(long)]
        account: u64,
        /// Its role.
        #[arg(long)]
        role: AccountRole,
        /// The bank that holds it (merchants and consumers).
        #[arg(long)]
        bank: Option<u64>,
        /// Its owner key: a public key in hex, or a key file (`tally keygen`).
        #[arg(long)]
        owner: String,
        /// Its overdraft maximum, in currency units (or minor units with --minor-units).
        #[arg(long)]
        overdraft_max: Option<String>,
        /// Its balance maximum (merchants and consumers), in currency units.
        #[arg(long)]
        balance_max: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Close an account at balance zero with nothing reserved or queued: signed by the
    /// central bank, or with --by-bank by the bank that holds the account (with its key).
    CloseAccount {
        /// The account to close.
        #[arg(long)]
        account: u64,
        /// The bank that holds the account signs (its key file), instead of the central bank.
        #[arg(long)]
        by_bank: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Replace an account's owner key: signed with the current owner key, or with
    /// --by-central-bank by the central bank (after a compromise). Records signed with the old
    /// key are refused from the next record on.
    RotateKey {
        /// The account whose key changes.
        #[arg(long)]
        account: u64,
        /// The new owner key: a public key in hex, or a key file (`tally keygen`).
        #[arg(long)]
        new_owner: String,
        /// The central bank signs (its key file) instead of the account's current owner.
        #[arg(long)]
        by_central_bank: bool,
        #[command(flatten)]
        common: Common,
    },
    /// The central bank sets an account's overdraft maximum and balance maximum.
    SetLimits {
        /// The account.
        #[arg(long)]
        account: u64,
        /// How far below zero it may go, in currency units (0: no overdraft).
        #[arg(long, default_value = "0")]
        overdraft_max: String,
        /// Most its balance may hold, in currency units (merchants and consumers; default:
        /// no maximum).
        #[arg(long)]
        balance_max: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// The central bank adds a bank as a participant, with a range of customers held at it
    /// and signed for by its key (as a genesis account range).
    AddBank {
        /// The new bank's account id.
        #[arg(long)]
        bank: u64,
        /// Its owner key: a public key in hex, or a key file (`tally keygen`).
        #[arg(long)]
        owner: String,
        /// Its customers' first account id.
        #[arg(long, requires = "customers")]
        customers_from: Option<u64>,
        /// How many customers it opens with (ids from --customers-from on).
        #[arg(long, requires = "customers_from")]
        customers: Option<u32>,
        /// The customers' role.
        #[arg(long, default_value = "consumer")]
        customer_role: CustomerRole,
        #[command(flatten)]
        common: Common,
    },
}

/// The role of an account opened after the genesis.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AccountRole {
    Bank,
    Merchant,
    Consumer,
    Observer,
}

/// The role of an added bank's customers.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CustomerRole {
    Merchant,
    Consumer,
}

impl AccountRole {
    fn code(self) -> u32 {
        use tally_engine::tx::*;
        match self {
            AccountRole::Bank => ROLE_CODE_BANK,
            AccountRole::Merchant => ROLE_CODE_MERCHANT,
            AccountRole::Consumer => ROLE_CODE_CONSUMER,
            AccountRole::Observer => ROLE_CODE_OBSERVER,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AccountRole::Bank => "bank",
            AccountRole::Merchant => "merchant",
            AccountRole::Consumer => "consumer",
            AccountRole::Observer => "observer",
        }
    }
}

/// An owner key given as hex or as a key file: its public key.
fn owner_key(text: &str, flag: &str) -> anyhow::Result<[u8; 32]> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return tally_engine::keys::decode_hex32(text)
            .map_err(|error| anyhow::anyhow!("{flag}: {error}"));
    }
    let key = tally_engine::keys::read_key_file(std::path::Path::new(text)).map_err(|error| {
        anyhow::anyhow!("{flag}: {text} is neither a hex public key (64 hex digits) nor a readable key file: {error}")
    })?;
    Ok(tally_engine::keys::public_key_of(&key))
}

/// A queue operation on a queued payment; its payer is looked up.
#[derive(clap::Args, Debug)]
struct QueueOp {
    /// The queued payment's id.
    #[arg(long)]
    payment: u128,
    #[command(flatten)]
    common: Common,
}

pub fn run(args: &TxArgs) -> anyhow::Result<ExitCode> {
    match &args.kind {
        TxCommand::ValidatorVote(vote) => super::validator::vote(vote),
        TxCommand::RevokeCertificate(revoke) => super::pki::revoke(revoke),
        other => send(other),
    }
}

/// The amount of `text` by the genesis's currency, or as minor units.
fn amount(text: &str, loaded: &Loaded, common: &Common) -> anyhow::Result<u64> {
    let parsed = if common.minor_units {
        tally_protocol::amount::parse_minor(text)
    } else {
        loaded.genesis.currency.parse(text)
    };
    parsed.map_err(|error| anyhow::anyhow!("--amount: {error}"))
}

/// The fields `build` makes of a payment's accounts and amount, with its reference and
/// priority, and the rows that print them.
fn payment_fields(
    payment: &Payment,
    loaded: &Loaded,
    common: &Common,
    build: impl FnOnce(u64, u64, u64) -> TxFields,
) -> anyhow::Result<(TxFields, Vec<(&'static str, String)>)> {
    let minor = amount(&payment.amount, loaded, common)?;
    let mut fields = build(payment.from, payment.to, minor);
    fields.reference = payment.reference;
    if payment.urgent {
        fields.flags.0 |= tally_engine::tx::TxFlags::URGENT;
    }
    let mut rows = money_rows(payment.from, payment.to, minor, loaded);
    if let Some(date) = &payment.value_date {
        let day = tally_engine::calendar::parse_date(date)
            .map_err(|error| anyhow::anyhow!("--value-date: {error}"))?;
        fields.flags.0 |= tally_engine::tx::TxFlags::WAREHOUSED;
        fields.reserved_a = u32::try_from(day)
            .map_err(|_| anyhow::anyhow!("--value-date: {date} is too far in the future"))?;
        rows.push(("value_date", date.clone()));
    }
    Ok((fields, rows))
}

fn money_rows(from: u64, to: u64, minor: u64, loaded: &Loaded) -> Vec<(&'static str, String)> {
    vec![
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("amount", loaded.genesis.currency.format(i128::from(minor))),
        ("minor_units", minor.to_string()),
    ]
}

/// The common arguments of any kind but the two sent elsewhere.
fn common_of(command: &TxCommand) -> &Common {
    match command {
        TxCommand::Transfer { common, .. }
        | TxCommand::Pending { common, .. }
        | TxCommand::Post { common, .. }
        | TxCommand::Void { common, .. }
        | TxCommand::TaxedPayment { common, .. }
        | TxCommand::Refund { common, .. }
        | TxCommand::Pledge { common, .. }
        | TxCommand::Redeem { common, .. }
        | TxCommand::Suspend { common, .. }
        | TxCommand::Reinstate { common, .. }
        | TxCommand::SetTaxRate { common, .. }
        | TxCommand::OpenAccount { common, .. }
        | TxCommand::CloseAccount { common, .. }
        | TxCommand::RotateKey { common, .. }
        | TxCommand::SetLimits { common, .. }
        | TxCommand::AddBank { common, .. } => common,
        TxCommand::QueueHold(op) | TxCommand::QueueRelease(op) | TxCommand::QueueCancel(op) => {
            &op.common
        }
        TxCommand::QueuePriority { op, .. } => &op.common,
        TxCommand::ValidatorVote(_) | TxCommand::RevokeCertificate(_) => {
            unreachable!("sent by their own commands")
        }
    }
}

/// An open reservation, looked up for a post or a void.
fn pending_of(loaded: &Loaded, common: &Common, id: u128) -> anyhow::Result<(u64, u64, u64)> {
    let Answer::TxStatus(status) = loaded.ask(&common.client, &Query::TxStatus { id })? else {
        anyhow::bail!("the node answered the status of {id} with something else");
    };
    match status.pending {
        Some(pending) => Ok((
            pending.debit_account,
            pending.credit_account,
            pending.amount,
        )),
        None => anyhow::bail!(
            "transaction {id} is not an open pending transfer: its status is {}",
            status.status
        ),
    }
}

/// The payer of a queued payment, looked up for a queue operation.
fn payer_of(loaded: &Loaded, common: &Common, id: u128) -> anyhow::Result<u64> {
    let Answer::TxStatus(status) = loaded.ask(&common.client, &Query::TxStatus { id })? else {
        anyhow::bail!("the node answered the status of {id} with something else");
    };
    match status.queued {
        Some(queued) => Ok(queued.payer),
        None => anyhow::bail!(
            "transaction {id} is not waiting in an RTGS queue: its status is {}",
            status.status
        ),
    }
}

fn send(command: &TxCommand) -> anyhow::Result<ExitCode> {
    let common = common_of(command);
    let loaded = common.client.load()?;
    let (id, ledger) = (loaded.id, loaded.genesis.ledger);
    let issuance = loaded.genesis.central_bank().id;
    let (kind, fields, rows): (TxKind, TxFields, Vec<(&str, String)>) = match command {
        TxCommand::Transfer { payment, .. } => {
            let (fields, rows) = payment_fields(payment, &loaded, common, |from, to, minor| {
                TxFields::transfer(id, from, to, minor, ledger)
            })?;
            (TxKind::Transfer, fields, rows)
        }
        TxCommand::Pending {
            payment,
            expires_in_s,
            ..
        } => {
            let (fields, mut rows) =
                payment_fields(payment, &loaded, common, |from, to, minor| {
                    TxFields::pending_transfer(id, ledger, from, to, minor, *expires_in_s)
                })?;
            rows.push(("expires_in_s", expires_in_s.to_string()));
            (TxKind::Transfer, fields, rows)
        }
        TxCommand::Post {
            pending,
            amount: part,
            ..
        } => {
            let (debit, credit, reserved) = pending_of(&loaded, common, *pending)?;
            let minor = match part {
                Some(text) => amount(text, &loaded, common)?,
                None => reserved,
            };
            let mut rows = money_rows(debit, credit, minor, &loaded);
            rows.push(("pending", pending.to_string()));
            (
                TxKind::Transfer,
                TxFields::post_pending(id, ledger, debit, credit, minor, *pending),
                rows,
            )
        }
        TxCommand::Void { pending, .. } => {
            let (debit, credit, reserved) = pending_of(&loaded, common, *pending)?;
            let mut rows = money_rows(debit, credit, reserved, &loaded);
            rows.push(("pending", pending.to_string()));
            (
                TxKind::Transfer,
                TxFields::void_pending(id, ledger, debit, credit, reserved, *pending),
                rows,
            )
        }
        TxCommand::TaxedPayment {
            payment, category, ..
        } => {
            let (fields, mut rows) =
                payment_fields(payment, &loaded, common, |from, to, minor| {
                    TxFields::taxed_payment(id, ledger, from, to, minor, *category)
                })?;
            rows.push(("category", category.to_string()));
            (TxKind::TaxedPayment, fields, rows)
        }
        TxCommand::Refund {
            payment, refund, ..
        } => {
            let (fields, mut rows) = payment_fields(refund, &loaded, common, |from, to, minor| {
                TxFields::refund(id, ledger, from, to, minor, *payment)
            })?;
            rows.push(("payment", payment.to_string()));
            (TxKind::Refund, fields, rows)
        }
        TxCommand::Pledge {
            to, amount: text, ..
        } => {
            let minor = amount(text, &loaded, common)?;
            (
                TxKind::Pledge,
                TxFields::pledge(id, ledger, issuance, *to, minor),
                money_rows(issuance, *to, minor, &loaded),
            )
        }
        TxCommand::Redeem {
            from, amount: text, ..
        } => {
            let minor = amount(text, &loaded, common)?;
            (
                TxKind::Redeem,
                TxFields::redeem(id, ledger, *from, issuance, minor),
                money_rows(*from, issuance, minor, &loaded),
            )
        }
        TxCommand::Suspend { account, .. } => (
            TxKind::Suspend,
            TxFields::suspend(id, ledger, issuance, *account),
            vec![("account", account.to_string())],
        ),
        TxCommand::Reinstate { account, .. } => (
            TxKind::Reinstate,
            TxFields::reinstate(id, ledger, issuance, *account),
            vec![("account", account.to_string())],
        ),
        TxCommand::QueueHold(op) | TxCommand::QueueRelease(op) | TxCommand::QueueCancel(op) => {
            let kind = match command {
                TxCommand::QueueHold(_) => TxKind::QueueHold,
                TxCommand::QueueRelease(_) => TxKind::QueueRelease,
                _ => TxKind::QueueCancel,
            };
            let payer = payer_of(&loaded, common, op.payment)?;
            (
                kind,
                TxFields::queue_operation(kind, id, ledger, payer, op.payment, false)
                    .expect("a queue operation"),
                vec![
                    ("payer", payer.to_string()),
                    ("payment", op.payment.to_string()),
                ],
            )
        }
        TxCommand::QueuePriority { op, urgent } => {
            let kind = TxKind::QueueReprioritise;
            let payer = payer_of(&loaded, common, op.payment)?;
            (
                kind,
                TxFields::queue_operation(kind, id, ledger, payer, op.payment, *urgent)
                    .expect("a queue operation"),
                vec![
                    ("payer", payer.to_string()),
                    ("payment", op.payment.to_string()),
                    ("priority", if *urgent { "urgent" } else { "normal" }.into()),
                ],
            )
        }
        TxCommand::SetTaxRate {
            category,
            rate_bp,
            effective_from_ms,
            effective_in_s,
            basis,
            rounding,
            to_sub_account,
            ..
        } => {
            let from_ms = effective_from_ms.unwrap_or_else(|| {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_millis() as u64);
                now_ms.saturating_add(effective_in_s.saturating_mul(1_000))
            });
            let tax_authority = loaded.genesis.tax_authority().id;
            (
                TxKind::SetTaxRate,
                TxFields::set_tax_rate(
                    id,
                    ledger,
                    tax_authority,
                    *category,
                    *rate_bp,
                    from_ms,
                    *basis,
                    *rounding,
                    *to_sub_account,
                ),
                vec![
                    ("category", category.to_string()),
                    ("rate_bp", rate_bp.to_string()),
                    ("effective_from_ms", from_ms.to_string()),
                ],
            )
        }
        TxCommand::OpenAccount {
            account,
            role,
            bank,
            owner,
            ..
        } => {
            let key = owner_key(owner, "--owner")?;
            let held = matches!(role, AccountRole::Merchant | AccountRole::Consumer);
            let bank = match (held, bank) {
                (true, Some(bank)) => *bank,
                (true, None) => {
                    anyhow::bail!("--bank: a {} is held at a bank: name it", role.name())
                }
                (false, Some(_)) => {
                    anyhow::bail!("--bank: only a merchant or a consumer is held at a bank")
                }
                (false, None) => 0,
            };
            let mut rows = vec![
                ("account", account.to_string()),
                ("role", role.name().to_string()),
                ("owner", hex::encode(key)),
            ];
            if held {
                rows.push(("bank", bank.to_string()));
            }
            (
                TxKind::OpenAccount,
                TxFields::open_account(id, ledger, issuance, *account, role.code(), bank, &key),
                rows,
            )
        }
        TxCommand::CloseAccount {
            account, by_bank, ..
        } => {
            let authority = by_bank.unwrap_or(issuance);
            (
                TxKind::CloseAccount,
                TxFields::close_account(id, ledger, authority, *account),
                vec![
                    ("account", account.to_string()),
                    ("by", authority.to_string()),
                ],
            )
        }
        TxCommand::RotateKey {
            account,
            new_owner,
            by_central_bank,
            ..
        } => {
            let key = owner_key(new_owner, "--new-owner")?;
            let by = by_central_bank.then_some(issuance);
            (
                TxKind::RotateKey,
                TxFields::rotate_key(id, ledger, *account, by, &key),
                vec![
                    ("account", account.to_string()),
                    ("new_owner", hex::encode(key)),
                    ("by", by.unwrap_or(*account).to_string()),
                ],
            )
        }
        TxCommand::SetLimits {
            account,
            overdraft_max,
            balance_max,
            ..
        } => {
            let (fields, rows) = limits(
                &loaded,
                common,
                id,
                *account,
                overdraft_max,
                balance_max.as_deref(),
            )?;
            (TxKind::SetLimits, fields, rows)
        }
        TxCommand::AddBank {
            bank,
            owner,
            customers_from,
            customers,
            customer_role,
            ..
        } => {
            let key = owner_key(owner, "--owner")?;
            let role = match customer_role {
                CustomerRole::Merchant => AccountRole::Merchant,
                CustomerRole::Consumer => AccountRole::Consumer,
            };
            let range = match (customers_from, customers) {
                (Some(first), Some(count)) if *count > 0 => Some((*first, *count, role.code())),
                _ => None,
            };
            let mut rows = vec![("bank", bank.to_string()), ("owner", hex::encode(key))];
            if let Some((first, count, _)) = range {
                rows.push((
                    "customers",
                    format!(
                        "{count} {}s, ids {first} to {}",
                        role.name(),
                        first + u64::from(count) - 1
                    ),
                ));
            }
            (
                TxKind::AddBank,
                TxFields::add_bank(id, ledger, issuance, *bank, &key, range),
                rows,
            )
        }
        TxCommand::ValidatorVote(_) | TxCommand::RevokeCertificate(_) => {
            unreachable!("sent by their own commands")
        }
    };
    let code = sign_send_print(&loaded, common, kind, fields, rows)?;
    // an account opened with limits: they follow in a record of their own
    if let TxCommand::OpenAccount {
        account,
        overdraft_max,
        balance_max,
        ..
    } = command
    {
        if code == ExitCode::SUCCESS && (overdraft_max.is_some() || balance_max.is_some()) {
            let limits_id = rand::random::<u128>().max(1);
            let overdraft = overdraft_max.as_deref().unwrap_or("0");
            let (fields, rows) = limits(
                &loaded,
                common,
                limits_id,
                *account,
                overdraft,
                balance_max.as_deref(),
            )?;
            return sign_send_print(&loaded, common, TxKind::SetLimits, fields, rows);
        }
    }
    Ok(code)
}

/// A set-limits record's fields and rows.
fn limits(
    loaded: &Loaded,
    common: &Common,
    id: u128,
    account: u64,
    overdraft_max: &str,
    balance_max: Option<&str>,
) -> anyhow::Result<(TxFields, Vec<(&'static str, String)>)> {
    let overdraft = limit(overdraft_max, loaded, common, "--overdraft-max")?;
    let max = balance_max
        .map(|text| limit(text, loaded, common, "--balance-max"))
        .transpose()?;
    let currency = &loaded.genesis.currency;
    let rows = vec![
        ("account", account.to_string()),
        ("overdraft_max", currency.format(i128::from(overdraft))),
        (
            "balance_max",
            max.map_or_else(
                || "none".to_string(),
                |max| currency.format(i128::from(max)),
            ),
        ),
    ];
    let fields = TxFields::set_limits(
        id,
        loaded.genesis.ledger,
        loaded.genesis.central_bank().id,
        account,
        overdraft,
        max,
    );
    Ok((fields, rows))
}

/// A limit of `text` by the genesis's currency, or as minor units: zero is a limit too.
fn limit(text: &str, loaded: &Loaded, common: &Common, flag: &str) -> anyhow::Result<u64> {
    let parsed = if common.minor_units {
        tally_protocol::amount::parse_minor(text)
    } else {
        loaded.genesis.currency.parse(text)
    };
    match parsed {
        Ok(minor) => Ok(minor),
        Err(tally_protocol::amount::AmountError::Zero(_)) => Ok(0),
        Err(error) => Err(anyhow::anyhow!("{flag}: {error}")),
    }
}

/// Signs `fields`, sends the record, waits (unless --no-wait) and prints what became of it.
fn sign_send_print(
    loaded: &Loaded,
    common: &Common,
    kind: TxKind,
    fields: TxFields,
    rows: Vec<(&'static str, String)>,
) -> anyhow::Result<ExitCode> {
    let record = loaded.sign(fields);
    record.validate().map_err(|error| {
        anyhow::anyhow!("the {} would be refused as malformed: {error}", kind.name())
    })?;
    let sent = loaded.send(&common.client, &record, !common.no_wait)?;
    let mut rows = rows;
    rows.push(("signer", loaded.signer()));
    print_sent(&sent, kind.name(), &rows, common.json)
}
