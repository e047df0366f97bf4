//! Field errors as the apiserver reports them (`k8s.io/apimachinery/pkg/util/validation/field`):
//! a path such as `spec.template.spec.containers[0].resources.requests[memory]`, an error type
//! that becomes a cause `reason` (`FieldValueInvalid`), the bad value and a detail. kubectl and
//! Argo CD print these strings verbatim, so their rendering follows the apiserver's exactly:
//! `Invalid value: "web_1": <detail>`, `Required value`, `Unsupported value: "HTTP": supported
//! values: "SCTP", "TCP", "UDP"`, `Duplicate value: "app"`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// One step of a field path.
#[derive(Debug)]
enum Segment {
    Field(Cow<'static, str>),
    Index(usize),
    Key(String),
}

#[derive(Debug)]
struct Node {
    parent: Option<Path>,
    segment: Segment,
}

/// Where in an object a field error is (`field.Path`). Validation builds a path for every
/// field it looks at and renders one only for an error, so a child is one small allocation
/// pointing at its parent.
#[derive(Debug, Clone)]
pub struct Path(Arc<Node>);

impl Path {
    /// A path starting at `root`, which may itself hold dots (`spec.template`).
    pub fn new(root: impl Into<Cow<'static, str>>) -> Path {
        Path(Arc::new(Node {
            parent: None,
            segment: Segment::Field(root.into()),
        }))
    }

    fn push(&self, segment: Segment) -> Path {
        Path(Arc::new(Node {
            parent: Some(self.clone()),
            segment,
        }))
    }

    /// The path of a child field.
    pub fn child(&self, name: &'static str) -> Path {
        self.push(Segment::Field(Cow::Borrowed(name)))
    }

    /// The path of a list element.
    pub fn index(&self, i: usize) -> Path {
        self.push(Segment::Index(i))
    }

    /// The path of a map entry.
    pub fn key(&self, k: &str) -> Path {
        self.push(Segment::Key(k.to_string()))
    }

    /// The segments from the root.
    fn segments(&self) -> Vec<&Segment> {
        let mut out = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            out.push(&p.0.segment);
            at = p.0.parent.as_ref();
        }
        out.reverse();
        out
    }

    /// The path as a user edits it in YAML: map keys as fields (`requests.memory` where the
    /// apiserver writes `requests[memory]`). Sluice's own InvalidSpec messages use this form.
    pub fn json_path(&self) -> String {
        let mut s = String::new();
        for seg in self.segments() {
            match seg {
                Segment::Field(f) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(f);
                }
                Segment::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Segment::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

/// The apiserver's rendering: fields joined by dots, `[0]` for indexes, `[key]` for map keys.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.segments().into_iter().enumerate() {
            match seg {
                Segment::Field(name) if n == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Key(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

/// Paths are equal when they name the same field.
impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Path {}

/// What kind of problem a field has (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
}

impl ErrorType {
    /// The cause `reason` in a 422's `details.causes`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
        }
    }

    fn text(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
        }
    }

    /// Required, Forbidden and TooLong never print the value.
    fn shows_value(self) -> bool {
        !matches!(
            self,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong
        )
    }
}

/// The offending value, printed the way Go's `ErrorBody` prints its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    /// A Go string: quoted (`"web_1"`).
    Str(String),
    /// A Go integer: bare (`70000`).
    Int(i64),
    /// Anything printed as is: Go's `%#v` of a map (`map[string]string{"app":"x"}`) or a
    /// `String()` method's output.
    Raw(String),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Str(s) => f.write_str(&go_quote(s)),
            BadValue::Int(i) => write!(f, "{i}"),
            BadValue::Raw(r) => f.write_str(r),
        }
    }
}

/// One field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub type_: ErrorType,
    pub field: Path,
    pub value: BadValue,
    pub detail: String,
}

impl FieldError {
    fn new(type_: ErrorType, field: Path, value: BadValue, detail: impl Into<String>) -> Self {
        FieldError {
            type_,
            field,
            value,
            detail: detail.into(),
        }
    }

    /// `Required value[: detail]`.
    pub fn required(field: Path, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Required,
            field,
            BadValue::Str(String::new()),
            detail,
        )
    }

    /// `Invalid value: <value>: detail`.
    pub fn invalid(field: Path, value: BadValue, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, value, detail)
    }

    /// `Invalid value: "<value>": detail` for a string value.
    pub fn invalid_str(field: Path, value: &str, detail: impl Into<String>) -> Self {
        Self::invalid(field, BadValue::Str(value.to_string()), detail)
    }

    /// `Invalid value: <n>: detail` for an integer value.
    pub fn invalid_int(field: Path, value: i64, detail: impl Into<String>) -> Self {
        Self::invalid(field, BadValue::Int(value), detail)
    }

    /// `Not found: "<value>"`.
    pub fn not_found(field: Path, value: &str) -> Self {
        Self::new(
            ErrorType::NotFound,
            field,
            BadValue::Str(value.to_string()),
            "",
        )
    }

    /// `Duplicate value: "<value>"`.
    pub fn duplicate(field: Path, value: &str) -> Self {
        Self::new(
            ErrorType::Duplicate,
            field,
            BadValue::Str(value.to_string()),
            "",
        )
    }

    /// `Unsupported value: "<value>": supported values: "A", "B"` (in the order given).
    pub fn not_supported(field: Path, value: &str, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            ErrorType::NotSupported,
            field,
            BadValue::Str(value.to_string()),
            detail,
        )
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: Path, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Forbidden,
            field,
            BadValue::Str(String::new()),
            detail,
        )
    }

    /// `Too long: must have at most <max> bytes`.
    pub fn too_long(field: Path, max: usize) -> Self {
        Self::new(
            ErrorType::TooLong,
            field,
            BadValue::Str(String::new()),
            format!("must have at most {max} bytes"),
        )
    }

    /// The message without the field (`ErrorBody`): what a 422 cause's `message` holds.
    pub fn body(&self) -> String {
        let mut s = self.type_.text().to_string();
        if self.type_.shows_value() {
            s.push_str(&format!(": {}", self.value));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A list of field errors, as one validation returns them.
pub type ErrorList = Vec<FieldError>;

/// The list without repeated messages, as the apiserver's `ToAggregate` reports it.
pub fn dedup(errors: ErrorList) -> ErrorList {
    let mut seen = std::collections::HashSet::new();
    errors
        .into_iter()
        .filter(|e| seen.insert(e.to_string()))
        .collect()
}

/// Go's `strconv.Quote`: double quotes, `\"` and `\\`, the short escapes for control
/// characters and `\x`/`\u` for other unprintable ones; printable Unicode is kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_as_the_apiserver_and_as_yaml() {
        let p = Path::new("spec.template")
            .child("spec")
            .child("containers")
            .index(0)
            .child("resources")
            .child("requests")
            .key("memory");
        assert_eq!(
            p.to_string(),
            "spec.template.spec.containers[0].resources.requests[memory]"
        );
        assert_eq!(
            p.json_path(),
            "spec.template.spec.containers[0].resources.requests.memory"
        );
    }

    #[test]
    fn bodies_print_values_as_go_does() {
        let p = || Path::new("spec").child("x");
        let table = [
            (FieldError::required(p(), ""), "spec.x: Required value"),
            (
                FieldError::required(p(), "must specify a handler type"),
                "spec.x: Required value: must specify a handler type",
            ),
            (
                FieldError::invalid_str(p(), "a\"b", "bad"),
                "spec.x: Invalid value: \"a\\\"b\": bad",
            ),
            (
                FieldError::invalid_int(p(), 70000, "must be between 1 and 65535, inclusive"),
                "spec.x: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                FieldError::duplicate(p(), "app"),
                "spec.x: Duplicate value: \"app\"",
            ),
            (
                FieldError::not_found(p(), "data"),
                "spec.x: Not found: \"data\"",
            ),
            (
                FieldError::not_supported(p(), "HTTP", &["SCTP", "TCP", "UDP"]),
                "spec.x: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ),
            (
                FieldError::forbidden(p(), "may not be set"),
                "spec.x: Forbidden: may not be set",
            ),
            (
                FieldError::too_long(p(), 262144),
                "spec.x: Too long: must have at most 262144 bytes",
            ),
        ];
        for (err, want) in table {
            assert_eq!(err.to_string(), want);
        }
        assert_eq!(
            FieldError::required(p(), "").type_.reason(),
            "FieldValueRequired"
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("tab\there"), "\"tab\\there\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
        assert_eq!(go_quote("back\\slash"), "\"back\\\\slash\"");
    }

    #[test]
    fn repeated_messages_are_reported_once() {
        let e = FieldError::required(Path::new("a"), "");
        assert_eq!(dedup(vec![e.clone(), e.clone()]), vec![e]);
    }
}
