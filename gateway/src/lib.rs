//! Tally's ISO 20022 gateway (docs/ISO20022.md): it runs for one participant, holding that
//! bank's signing key and a client identity for the nodes, takes ISO 20022 XML from the
//! bank's payment hub over HTTP and answers in ISO 20022.
//!
//! - `iso`: the documents read and written, as serde types for quick-xml;
//! - `translate`: a message in -> records (or a refusal with an ISO reason), BICs to accounts,
//!   amounts in the currency's decimals, record ids from sender BIC, message id and
//!   end-to-end id;
//! - `reasons`: result codes -> ISO status reasons (the table);
//! - `books`: the followed accounts' entries and balances -> camt.054, camt.052, camt.053;
//! - `service`: the gateway itself (sending, waiting, pacs.002, following events);
//! - `store`: the books on disk (`--data-dir`), reloaded at start;
//! - `server`: the HTTP listener;
//! - `bench`: the gateway against direct record submission (`tally gateway bench`).

pub mod bench;
pub mod books;
pub mod iso;
pub mod reasons;
pub mod server;
pub mod service;
pub mod store;
pub mod translate;

pub use server::{Server, ServerLimits};
pub use service::{Gateway, GatewayConfig, GatewayError};

/// A genesis for the crate's tests: the central bank `CENTDEFF` (1), the tax authority (2),
/// banks `BKAADEFF` (10) and `BKBBDEFF` (11), a consumer of bank 10 (100) and a merchant of
/// bank 11 (200); EUR with 2 decimals; tax category 1 at 19% inclusive.
#[cfg(test)]
pub(crate) fn test_genesis() -> tally_protocol::genesis::Genesis {
    use tally_protocol::keys::{generate_key, public_key_of};
    let key = || hex::encode(public_key_of(&generate_key()));
    let text = format!(
        r#"
network_id = 7
ledger = 978

[currency]
code = "EUR"
minor_unit_digits = 2

[[validators]]
name = "v0"
public_key = "{v0}"

[[tax_rates]]
category = 1
rate_bp = 1900
basis = "inclusive"
rounding = "half_up"

[[accounts]]
id = 1
name = "central bank"
role = "central_bank"
owner = "{k1}"
bic = "CENTDEFF"

[[accounts]]
id = 2
name = "tax authority"
role = "tax_authority"
owner = "{k2}"

[[accounts]]
id = 10
name = "bank a"
role = "bank"
owner = "{k10}"
balance = 100000
bic = "BKAADEFF"

[[accounts]]
id = 11
name = "bank b"
role = "bank"
owner = "{k11}"
balance = 100000
bic = "BKBBDEFFXXX"

[[accounts]]
id = 100
name = "consumer"
role = "consumer"
owner = "{k10}"
bank = 10
balance = 50000

[[accounts]]
id = 200
name = "merchant"
role = "merchant"
owner = "{k11}"
bank = 11
"#,
        v0 = key(),
        k1 = key(),
        k2 = key(),
        k10 = key(),
        k11 = key(),
    );
    tally_protocol::genesis::Genesis::from_toml(&text).expect("the test genesis is valid")
}
