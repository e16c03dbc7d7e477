//! Amounts as people write them: `125.40` in the ledger's currency units, read into minor
//! units (the integers every record and balance carries) by the currency's number of
//! minor-unit digits (the genesis's `currency.minor_unit_digits`, 2 unless it says), and
//! minor units written back as currency units.

/// Why an amount cannot be read. Each mistake has its own message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is empty")]
    Empty,
    #[error("amount {0:?} is negative: amounts are positive, the kind of transaction says which way money moves")]
    Negative(String),
    #[error("amount {text:?} is not a number: write digits with at most one decimal point, as 125.40 (no sign, no thousands separators, no currency code)")]
    NotANumber { text: String },
    #[error("amount {text:?} has {found} decimals; the currency has {digits} minor-unit digits")]
    TooManyDecimals {
        text: String,
        found: usize,
        digits: u32,
    },
    #[error("amount {text:?} does not fit a record's amount (at most {max} minor units)")]
    TooLarge { text: String, max: u64 },
    #[error("amount {0:?} is zero: a transaction that moves money moves a positive amount")]
    Zero(String),
}

/// Most minor-unit digits a currency may have: 10^18 minor units still fit a u64.
pub const MINOR_UNIT_DIGITS_MAX: u32 = 18;

/// Reads `text` as currency units (`125.40`, `125`, `0.5`) into minor units, for a currency
/// with `digits` minor-unit digits. Zero is refused: every amount a command reads moves money.
pub fn parse_units(text: &str, digits: u32) -> Result<u64, AmountError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AmountError::Empty);
    }
    if trimmed.starts_with('-') {
        return Err(AmountError::Negative(trimmed.to_string()));
    }
    let not_a_number = || AmountError::NotANumber {
        text: trimmed.to_string(),
    };
    let (whole, fraction) = match trimmed.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (trimmed, ""),
    };
    let digits_only = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits_only(whole)
        || !digits_only(fraction)
        || (trimmed.ends_with('.') && fraction.is_empty())
    {
        return Err(not_a_number());
    }
    if fraction.len() > digits as usize {
        return Err(AmountError::TooManyDecimals {
            text: trimmed.to_string(),
            found: fraction.len(),
            digits,
        });
    }
    let too_large = || AmountError::TooLarge {
        text: trimmed.to_string(),
        max: u64::MAX,
    };
    let scale = 10u128.pow(digits);
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u128>().map_err(|_| not_a_number())?
            * 10u128.pow(digits - fraction.len() as u32)
    };
    let minor = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(too_large)?;
    let minor = u64::try_from(minor).map_err(|_| too_large())?;
    if minor == 0 {
        return Err(AmountError::Zero(trimmed.to_string()));
    }
    Ok(minor)
}

/// Reads `text` as a whole number of minor units (`12540`). Zero is refused.
pub fn parse_minor(text: &str) -> Result<u64, AmountError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AmountError::Empty);
    }
    if trimmed.starts_with('-') {
        return Err(AmountError::Negative(trimmed.to_string()));
    }
    if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber {
            text: trimmed.to_string(),
        });
    }
    let minor: u64 = trimmed.parse().map_err(|_| AmountError::TooLarge {
        text: trimmed.to_string(),
        max: u64::MAX,
    })?;
    if minor == 0 {
        return Err(AmountError::Zero(trimmed.to_string()));
    }
    Ok(minor)
}

/// Writes `minor` minor units as currency units with every minor-unit digit
/// (`12540` with 2 digits: `125.40`; negative amounts keep their sign).
pub fn format_units(minor: i128, digits: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10u128.pow(digits);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = digits as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_people_write_them() {
        assert_eq!(parse_units("125.40", 2), Ok(12_540));
        assert_eq!(parse_units("125.4", 2), Ok(12_540));
        assert_eq!(parse_units("125", 2), Ok(12_500));
        assert_eq!(parse_units(".5", 2), Ok(50));
        assert_eq!(parse_units("0.01", 2), Ok(1));
        assert_eq!(parse_units("7", 0), Ok(7));
        assert_eq!(parse_units("1.234", 3), Ok(1_234));
        assert_eq!(parse_minor("12540"), Ok(12_540));
        assert_eq!(format_units(12_540, 2), "125.40");
        assert_eq!(format_units(-5, 2), "-0.05");
        assert_eq!(format_units(7, 0), "7");
        // the largest record amount round-trips
        let max = format_units(u64::MAX as i128, 2);
        assert_eq!(parse_units(&max, 2), Ok(u64::MAX));
    }

    #[test]
    fn each_malformed_amount_gets_its_own_error() {
        assert_eq!(parse_units("", 2), Err(AmountError::Empty));
        assert!(matches!(
            parse_units("-3", 2),
            Err(AmountError::Negative(_))
        ));
        for text in [
            "12,50", "1.2.3", "abc", "1e3", ".", "5.", "1 000", "EUR5", "+5",
        ] {
            assert!(
                matches!(parse_units(text, 2), Err(AmountError::NotANumber { .. })),
                "{text}: {:?}",
                parse_units(text, 2)
            );
        }
        assert_eq!(
            parse_units("1.005", 2),
            Err(AmountError::TooManyDecimals {
                text: "1.005".into(),
                found: 3,
                digits: 2
            })
        );
        assert!(matches!(
            parse_units("1.5", 0),
            Err(AmountError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            parse_units("184467440737095516.16", 2),
            Err(AmountError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_units("99999999999999999999999999999999999999999", 2),
            Err(AmountError::TooLarge { .. })
        ));
        assert!(matches!(parse_units("0.00", 2), Err(AmountError::Zero(_))));
        assert!(matches!(parse_minor("0"), Err(AmountError::Zero(_))));
        assert!(matches!(
            parse_minor("12.5"),
            Err(AmountError::NotANumber { .. })
        ));
        // the message says what to write
        let text = parse_units("12,50", 2).unwrap_err().to_string();
        assert!(text.contains("125.40"), "{text}");
    }
}
