//! Resource quantities (`k8s.io/apimachinery/pkg/api/resource`): which strings the apiserver
//! accepts (`ParseQuantity`, with its error messages), their value (for "request must
//! not exceed limit" and "must not be negative") and their canonical form, which is how the
//! apiserver prints a quantity in its messages (`0.5` → `500m`, `1.5Gi` → `1536Mi`).
//!
//! A JSON number is a quantity too (`cpu: 1` sends `1`); callers pass its text.
//!
//! Values are held exactly in nano-units, the precision the apiserver rounds to (up, away
//! from zero). Beyond ±1.7·10²⁹ units a value saturates: such quantities still parse (as they
//! do upstream) but compare equal to each other.

use std::cmp::Ordering;
use std::fmt;

/// The regular expression the apiserver names when a quantity has the wrong shape.
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Why a string is not a quantity, with the apiserver's exact messages. (Its third error,
/// `ErrNumeric`, needs a value of more than 18 digits that its decimal parser then refuses;
/// such values are accepted here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    /// `ErrFormatWrong`.
    FormatWrong,
    /// `ErrSuffix`.
    Suffix,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantityError::FormatWrong => write!(
                f,
                "quantities must match the regular expression '{QUANTITY_REGEX}'"
            ),
            QuantityError::Suffix => f.write_str("unable to parse quantity's suffix"),
        }
    }
}

impl std::error::Error for QuantityError {}

/// How a quantity is written back: the suffix family it was parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `12e6`.
    DecimalExponent,
    /// `12Mi`.
    BinarySI,
    /// `12M`, `500m`.
    DecimalSI,
}

/// A parsed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    /// The value in units of 10⁻⁹, rounded up in magnitude.
    nanos: i128,
    format: Format,
}

const NANO: i128 = 1_000_000_000;
/// `2^63 - 1` units: the cap of binary-suffixed quantities.
const MAX_BINARY_NANOS: i128 = (i64::MAX as i128) * NANO;

impl Quantity {
    /// `ParseQuantity` after the JSON decoder's trimming of surrounding whitespace.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        if s == "0" {
            return Ok(Quantity {
                nanos: 0,
                format: Format::DecimalSI,
            });
        }
        let parts = scan(s)?;
        let (base, exponent, format) = interpret(parts.suffix).ok_or(QuantityError::Suffix)?;
        let digits = format!("{}{}", parts.num, parts.denom);
        let digits = digits.trim_start_matches('0');
        let magnitude = if base == 10 {
            decimal_nanos(digits, i64::from(exponent) - parts.denom.len() as i64 + 9)
        } else {
            binary_nanos(digits, exponent, parts.denom.len())
        };
        let mut format = format;
        let mut magnitude = magnitude;
        if format == Format::BinarySI {
            magnitude = magnitude.min(MAX_BINARY_NANOS);
            if magnitude > 0 && magnitude < NANO {
                format = Format::DecimalSI;
            }
        }
        Ok(Quantity {
            nanos: if parts.positive {
                magnitude
            } else {
                -magnitude
            },
            format,
        })
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whether the value is a whole number (`MilliValue() % 1000 == 0`).
    pub fn is_integer(&self) -> bool {
        self.nanos % NANO == 0
    }

    /// The format the quantity was written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The canonical form (`Quantity.String()`): no fractional digits, the largest exponent
    /// or suffix that loses nothing, binary quantities in powers of 1024 when they are whole.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let format = match self.format {
            Format::BinarySI if magnitude < 1024 * NANO as u128 => Format::DecimalSI,
            Format::BinarySI if !magnitude.is_multiple_of(NANO as u128) => Format::DecimalSI,
            f => f,
        };
        if format == Format::BinarySI {
            let mut units = magnitude / NANO as u128;
            let mut power = 0usize;
            while units.is_multiple_of(1024) && power < BINARY_SUFFIXES.len() - 1 {
                units /= 1024;
                power += 1;
            }
            return format!("{sign}{units}{}", BINARY_SUFFIXES[power]);
        }
        let mut mantissa = magnitude;
        let mut exponent: i64 = -9;
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exponent += 1;
        }
        let down = exponent.rem_euclid(3);
        mantissa = mantissa.saturating_mul(10u128.pow(down as u32));
        exponent -= down;
        let suffix = match format {
            Format::DecimalExponent if exponent == 0 => String::new(),
            Format::DecimalExponent => format!("e{exponent}"),
            _ => {
                // Above exa the apiserver has no suffix; keep the value exact in exa.
                while exponent > 18 {
                    mantissa = mantissa.saturating_mul(1000);
                    exponent -= 3;
                }
                decimal_suffix(exponent).to_string()
            }
        };
        format!("{sign}{mantissa}{suffix}")
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// By value, whatever the format (`1Gi` > `1G`, `1000m` == `1`).
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

fn decimal_suffix(exponent: i64) -> &'static str {
    match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => "",
    }
}

/// The pieces `parseQuantityString` splits a quantity into.
struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// The apiserver's scanner: sign, digits, optional fraction, then a suffix of letters from
/// `eEinumkKMGTP` optionally followed by a signed integer. Leading zeros are dropped.
fn scan(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    if pos >= end {
        return Ok(Parts {
            positive,
            num,
            denom: "",
            suffix: "",
        });
    }
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
        if pos >= end {
            return Ok(Parts {
                positive,
                num,
                denom,
                suffix: "",
            });
        }
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// `(base, exponent, format)` of a suffix, or `None` when the apiserver does not know it.
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = decimal {
        return Some((10, e, Format::DecimalSI));
    }
    if let Some(i) = BINARY_SUFFIXES[1..].iter().position(|s| *s == suffix) {
        return Some((2, 10 * (i as i32 + 1), Format::BinarySI));
    }
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    if rest.is_empty() {
        return None;
    }
    // Go's ParseInt to 64 bits, then a conversion to 32 that keeps the low bits.
    let parsed: i64 = rest.parse().ok()?;
    Some((10, parsed as i32, Format::DecimalExponent))
}

/// `digits · 10^exponent`, rounded up to a whole number; saturates at `i128::MAX`.
fn decimal_nanos(digits: &str, exponent: i64) -> i128 {
    if digits.is_empty() {
        return 0;
    }
    if exponent >= 0 {
        if digits.len() as i64 + exponent > 38 {
            return i128::MAX;
        }
        let base: i128 = digits.parse().unwrap_or(i128::MAX);
        return base.saturating_mul(10i128.pow(exponent as u32));
    }
    let cut = (-exponent) as usize;
    if cut >= digits.len() {
        return 1;
    }
    let (whole, fraction) = digits.split_at(digits.len() - cut);
    let rounded_up = fraction.bytes().any(|d| d != b'0');
    if whole.len() > 38 {
        return i128::MAX;
    }
    let whole: i128 = whole.parse().unwrap_or(i128::MAX);
    whole.saturating_add(i128::from(rounded_up))
}

/// `digits · 2^exponent / 10^decimals`, in nano-units rounded up; saturates.
fn binary_nanos(digits: &str, exponent: i32, decimals: usize) -> i128 {
    if digits.is_empty() {
        return 0;
    }
    if digits.len() > 38 {
        return i128::MAX;
    }
    let base: i128 = digits.parse().unwrap_or(i128::MAX);
    let scaled = base.checked_mul(1i128 << exponent);
    let Some(scaled) = scaled else {
        return i128::MAX;
    };
    let shift = 9 - decimals as i64;
    if shift >= 0 {
        return scaled.saturating_mul(10i128.pow(shift as u32));
    }
    let divisor = 10i128.checked_pow((-shift) as u32);
    match divisor {
        Some(d) => scaled / d + i128::from(scaled % d != 0),
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_apiserver_accepts_and_canonicalizes_these() {
        // (written, canonical form as the apiserver prints it)
        let table = [
            ("0", "0"),
            ("1", "1"),
            ("100m", "100m"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000m", "1"),
            ("2000m", "2"),
            ("1000", "1k"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("12e6", "12e6"),
            ("1e3", "1e3"),
            ("100e-3", "100e-3"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1024Mi", "1Gi"),
            ("1000Mi", "1000Mi"),
            ("1.1Ki", "1126400m"),
            ("0.1n", "1n"),
            ("-1", "-1"),
            ("-0.5", "-500m"),
            ("+3", "3"),
            ("1.0", "1"),
            (" 64Mi ", "64Mi"),
            ("007", "7"),
            (".5", "500m"),
            ("5.", "5"),
            ("1E", "1E"),
            ("1E3", "1e3"),
        ];
        for (text, want) in table {
            let q = Quantity::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(q.canonical(), want, "{text:?}");
        }
    }

    #[test]
    fn malformed_quantities_get_the_apiservers_errors() {
        let table = [
            ("", QuantityError::FormatWrong),
            ("invalid", QuantityError::FormatWrong),
            ("abc", QuantityError::FormatWrong),
            ("1.5.5", QuantityError::FormatWrong),
            ("1 Gi", QuantityError::FormatWrong),
            ("10Mb", QuantityError::FormatWrong),
            ("1ki", QuantityError::Suffix),
            ("1Mi3", QuantityError::Suffix),
            ("1e", QuantityError::Suffix),
            ("1K", QuantityError::Suffix),
        ];
        for (text, want) in table {
            assert_eq!(Quantity::parse(text), Err(want), "{text:?}");
        }
        assert_eq!(
            QuantityError::FormatWrong.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            QuantityError::Suffix.to_string(),
            "unable to parse quantity's suffix"
        );
    }

    #[test]
    fn quantities_compare_by_value_across_formats() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1000m").cmp(&q("1")), Ordering::Equal);
        assert!(q("500m") < q("1"));
        assert!(q("-1") < q("0"));
        assert!(q("1e3") == q("1k").max(q("1e3")));
        assert!(q("-1m").is_negative());
        assert!(!q("0").is_negative());
        assert!(q("2").is_integer());
        assert!(!q("1500m").is_integer());
    }

    proptest! {
        /// Whatever is canonical parses back to the same value and prints the same way.
        #[test]
        fn the_canonical_form_is_a_fixed_point(
            n in -1_000_000_000i64..1_000_000_000,
            suffix in prop::sample::select(vec!["", "m", "k", "M", "Ki", "Mi", "Gi", "e3", "e-3", "n", "u"]),
        ) {
            let q = Quantity::parse(&format!("{n}{suffix}")).unwrap();
            let again = Quantity::parse(&q.canonical()).unwrap();
            prop_assert_eq!(q.cmp(&again), Ordering::Equal);
            prop_assert_eq!(again.canonical(), q.canonical());
        }

        /// A string of the regular expression's shape never panics the parser.
        #[test]
        fn any_text_parses_or_errs(text in "[-+0-9.eEinumkKMGTP ]{0,12}") {
            let _ = Quantity::parse(&text);
        }
    }
}
