//! Tax arithmetic: the basis a category's rate applies to, the rounding rule that takes the
//! tax to the minor unit, and the one function that computes a tax (docs/SETTLEMENT.md,
//! "Tax"). The executor settles with [`tax_on`]; a client (a participant's gateway, a till)
//! can compute the same amount before it submits, for example what the payer of a
//! tax-exclusive invoice will be debited.
//!
//! Exact integer arithmetic in 128 bits, no floating point: a tax is the exact rational value
//! `amount * rate_bp / 10_000` (levy on the gross, tax-exclusive VAT) or
//! `amount * rate_bp / (10_000 + rate_bp)` (tax-inclusive VAT, the "tax fraction"), rounded to
//! the minor unit by the category's rule.

use crate::genesis::BASIS_POINTS_ONE;
use serde::{Deserialize, Serialize};

/// What a category's rate applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TaxBasis {
    /// VAT/GST in a tax-inclusive price: the payment's amount is the price including tax;
    /// `tax = amount * rate / (1 + rate)`, the payee gets the rest.
    Inclusive,
    /// VAT/GST added to a net price: the payment's amount is the net; `tax = amount * rate`;
    /// the payer is debited net + tax, the payee credited the net.
    Exclusive,
    /// A levy on the gross (withholding, a transaction tax): `tax = amount * rate`, taken out
    /// of the amount; the payee gets the rest.
    Gross,
}

/// How a tax is taken to the minor unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Rounding {
    /// To the nearest minor unit, a half up (the usual rule for VAT on an invoice).
    HalfUp,
    /// To the nearest minor unit, a half to the even neighbour.
    HalfEven,
    /// Down to the minor unit (the fraction is dropped).
    Down,
}

impl TaxBasis {
    /// Every basis, in wire order (the code is the position plus one).
    pub const ALL: [TaxBasis; 3] = [TaxBasis::Inclusive, TaxBasis::Exclusive, TaxBasis::Gross];

    /// The name in a genesis, reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TaxBasis::Inclusive => "inclusive",
            TaxBasis::Exclusive => "exclusive",
            TaxBasis::Gross => "gross",
        }
    }

    /// The code in the state root, snapshots and tax records: 1, 2, 3.
    pub fn code(self) -> u8 {
        match self {
            TaxBasis::Inclusive => 1,
            TaxBasis::Exclusive => 2,
            TaxBasis::Gross => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<TaxBasis> {
        TaxBasis::ALL.into_iter().find(|basis| basis.code() == code)
    }
}

impl Rounding {
    /// Every rule, in wire order (the code is the position plus one).
    pub const ALL: [Rounding; 3] = [Rounding::HalfUp, Rounding::HalfEven, Rounding::Down];

    /// The name in a genesis, reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Rounding::HalfUp => "half_up",
            Rounding::HalfEven => "half_even",
            Rounding::Down => "down",
        }
    }

    /// The code in the state root, snapshots and tax records: 1, 2, 3.
    pub fn code(self) -> u8 {
        match self {
            Rounding::HalfUp => 1,
            Rounding::HalfEven => 2,
            Rounding::Down => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Rounding> {
        Rounding::ALL.into_iter().find(|rule| rule.code() == code)
    }

    /// `numerator / denominator` rounded to an integer by this rule (`denominator > 0`).
    pub fn divide(self, numerator: u128, denominator: u128) -> u128 {
        let quotient = numerator / denominator;
        let remainder = numerator % denominator;
        // remainder < denominator <= u128::MAX / 2 for every denominator used here
        let twice = remainder * 2;
        let up = match self {
            Rounding::Down => false,
            Rounding::HalfUp => twice >= denominator,
            Rounding::HalfEven => {
                twice > denominator || (twice == denominator && quotient % 2 == 1)
            }
        };
        quotient + u128::from(up)
    }
}

/// The accepted names, for error messages.
pub const TAX_BASIS_NAMES: &str = "\"inclusive\" (VAT/GST inside a tax-inclusive price), \
\"exclusive\" (VAT/GST added to a net price) or \"gross\" (a levy on the gross: withholding, \
a transaction tax)";
/// The accepted names, for error messages.
pub const ROUNDING_NAMES: &str = "\"half_up\", \"half_even\" or \"down\"";

impl std::str::FromStr for TaxBasis {
    type Err = String;
    fn from_str(text: &str) -> Result<TaxBasis, String> {
        TaxBasis::ALL
            .into_iter()
            .find(|basis| basis.name() == text)
            .ok_or_else(|| format!("unknown tax basis {text:?}: expected {TAX_BASIS_NAMES}"))
    }
}

impl std::str::FromStr for Rounding {
    type Err = String;
    fn from_str(text: &str) -> Result<Rounding, String> {
        Rounding::ALL
            .into_iter()
            .find(|rule| rule.name() == text)
            .ok_or_else(|| format!("unknown rounding rule {text:?}: expected {ROUNDING_NAMES}"))
    }
}

impl TryFrom<String> for TaxBasis {
    type Error = String;
    fn try_from(text: String) -> Result<TaxBasis, String> {
        text.parse()
    }
}

impl TryFrom<String> for Rounding {
    type Error = String;
    fn try_from(text: String) -> Result<Rounding, String> {
        text.parse()
    }
}

impl From<TaxBasis> for String {
    fn from(basis: TaxBasis) -> String {
        basis.name().to_string()
    }
}

impl From<Rounding> for String {
    fn from(rule: Rounding) -> String {
        rule.name().to_string()
    }
}

impl std::fmt::Display for TaxBasis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Rounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The tax on `amount` (minor units) at `rate_bp` basis points on `basis`, rounded by
/// `rounding`:
///
/// - [`TaxBasis::Inclusive`]: `amount * rate_bp / (10_000 + rate_bp)` (the price includes
///   the tax);
/// - [`TaxBasis::Exclusive`] and [`TaxBasis::Gross`]: `amount * rate_bp / 10_000`.
///
/// `rate_bp` is at most 10_000 (100%: the genesis and the rate record refuse more), so the
/// tax is at most `amount` and the products fit 128 bits with room to spare.
pub fn tax_on(amount: u64, rate_bp: u32, basis: TaxBasis, rounding: Rounding) -> u64 {
    assert!(
        rate_bp <= BASIS_POINTS_ONE,
        "a rate is at most 100% ({BASIS_POINTS_ONE} bp), got {rate_bp}"
    );
    let numerator = u128::from(amount) * u128::from(rate_bp);
    let denominator = match basis {
        TaxBasis::Inclusive => u128::from(BASIS_POINTS_ONE) + u128::from(rate_bp),
        TaxBasis::Exclusive | TaxBasis::Gross => u128::from(BASIS_POINTS_ONE),
    };
    let tax = rounding.divide(numerator, denominator);
    u64::try_from(tax).expect("a rate of at most 100% keeps the tax at most the amount")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_rounds_halves_and_the_rest_as_named() {
        // n / 10: 0.4, 0.5, 0.6, 1.5, 2.5
        let cases = [
            (4, 0, 0, 0),
            (5, 1, 0, 0),
            (6, 1, 1, 0),
            (15, 2, 2, 1),
            (25, 3, 2, 2),
        ];
        for (n, half_up, half_even, down) in cases {
            assert_eq!(Rounding::HalfUp.divide(n, 10), half_up, "{n}/10 half up");
            assert_eq!(
                Rounding::HalfEven.divide(n, 10),
                half_even,
                "{n}/10 half even"
            );
            assert_eq!(Rounding::Down.divide(n, 10), down, "{n}/10 down");
        }
    }

    #[test]
    fn the_tax_fraction_and_the_rate_on_the_net() {
        // 19.99 including 9% GST holds 19.99 * 9/109 = 1.6505 of tax
        assert_eq!(
            tax_on(1_999, 900, TaxBasis::Inclusive, Rounding::HalfUp),
            165
        );
        // the same price taxed on the gross: 1.7991
        assert_eq!(tax_on(1_999, 900, TaxBasis::Gross, Rounding::Down), 179);
        assert_eq!(tax_on(1_999, 900, TaxBasis::Gross, Rounding::HalfUp), 180);
        // a net of 12.34 at 20%: 2.468
        assert_eq!(
            tax_on(1_234, 2_000, TaxBasis::Exclusive, Rounding::HalfUp),
            247
        );
        assert_eq!(
            tax_on(1_234, 2_000, TaxBasis::Exclusive, Rounding::Down),
            246
        );
        // the extremes: 0% and 100%, and the largest amount
        for basis in TaxBasis::ALL {
            for rule in Rounding::ALL {
                assert_eq!(tax_on(u64::MAX, 0, basis, rule), 0);
            }
        }
        assert_eq!(
            tax_on(u64::MAX, 10_000, TaxBasis::Gross, Rounding::Down),
            u64::MAX
        );
        assert_eq!(
            tax_on(u64::MAX, 10_000, TaxBasis::Inclusive, Rounding::HalfEven),
            u64::MAX / 2 + 1
        );
    }

    #[test]
    fn names_round_trip_and_a_wrong_name_lists_the_right_ones() {
        for basis in TaxBasis::ALL {
            assert_eq!(basis.name().parse::<TaxBasis>(), Ok(basis));
            assert_eq!(TaxBasis::from_code(basis.code()), Some(basis));
        }
        for rule in Rounding::ALL {
            assert_eq!(rule.name().parse::<Rounding>(), Ok(rule));
            assert_eq!(Rounding::from_code(rule.code()), Some(rule));
        }
        assert_eq!(TaxBasis::from_code(0), None);
        assert_eq!(Rounding::from_code(4), None);
        let error = "vat".parse::<TaxBasis>().unwrap_err();
        assert!(
            error.contains("\"vat\"") && error.contains("\"inclusive\""),
            "{error}"
        );
        let error = "nearest".parse::<Rounding>().unwrap_err();
        assert!(
            error.contains("\"nearest\"") && error.contains("\"half_even\""),
            "{error}"
        );
    }
}
