//! Metric conditions (`successCondition`, `failureCondition`) in the expr-lang syntax that Argo
//! Rollouts evaluates with `github.com/expr-lang/expr`.
//!
//! # Why a small interpreter of our own rather than a CEL crate
//! The maintained Rust expression crates were checked (`cel` 0.15 / `cel-interpreter` 0.10,
//! `evalexpr`). CEL is the closest, but its semantics differ from expr-lang exactly where
//! analysis conditions live, and a textual `and`/`or`/`not` bridge cannot repair that:
//! - expr-lang mixes ints and floats freely (`1 + 0.5`, `result[0] * 100 > 5`); CEL rejects
//!   mixed-type arithmetic with "no such overload".
//! - `/` in expr-lang always divides as floats (`1 / 2 == 0.5`); CEL truncates integers.
//! - `result.missing` on a JSON object is `nil` in expr-lang (what makes `default` and `??`
//!   useful); CEL raises "no such key".
//! - `&&`/`||` short-circuit left to right in expr-lang; CEL's commutative error absorption
//!   changes which conditions error.
//! - expr-lang's `nil`, `len`, `not in`, `contains`, `startsWith`, predicates such as
//!   `all(result, {# > 1})`, negative list indexes, and Argo's `asInt`/`asFloat`/`isNaN`/`isInf`/
//!   `isNil`/`default` have no CEL spelling, and results must carry NaN/±Inf from Prometheus,
//!   which CEL's JSON bridge cannot represent.
//!
//! The grammar actually used by analysis conditions is small (literals, member/index access,
//! calls, unary/binary operators with expr-lang's precedence table, ternary), so a parser of a
//! few hundred lines gives exactly upstream's behaviour, golden-tested below.
//!
//! # Semantics kept from upstream
//! - `isNil(x)` and `default(x, y)` look at the whole `result`, whatever `x` is: Argo binds both
//!   to the measured value (`isNilFunc(resultValue)`, `defaultFunc(resultValue)`), so
//!   `default(result.x, 0)` yields `result` unless `result` itself is nil.
//! - JSON numbers reach the condition as floats (Go's `encoding/json` decodes into `float64`),
//!   which only matters for `%` (integers only, as in expr-lang).
//! - Type errors that expr-lang catches at compile time for statically known types
//!   (`asFloat(result) == "1.1"`, `1 and true`, a non-bool condition such as `1`) are parse
//!   errors here; errors that depend on the measured value surface from [`Condition::eval`].
//! - One divergence: Argo type-checks against the concrete Go type of `result`, so it rejects
//!   `result == "ok"` at compile time when a provider returned a number; Sluice evaluates that to
//!   `false` (expr-lang's runtime equality), which marks the measurement Failed instead of Error.
//! - Not supported (parse error naming the construct): ranges `..`, slices `a[1:2]`, `let`,
//!   pipes `|`, and builtins other than those listed in [`Condition::parse`]'s docs.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// A value a condition operates on. Unlike `serde_json::Value` it keeps ints and floats apart and
/// can hold NaN and ±Inf, which Prometheus returns and `isNaN`/`isInf` test for.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The Go type name expr-lang would print for this value, used in error messages so they
    /// read like upstream's.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    /// Whether the value is nil as Argo's `isNil` sees it (an empty list is not nil).
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            // Go's encoding/json decodes every number into float64; keep that.
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect())
            }
        }
    }
}

/// Formats a float the way Go's `strconv.FormatFloat(f, 'f', -1, 64)` does (Prometheus sample
/// values in measurement strings): shortest round-trip digits, no exponent, `NaN`, `+Inf`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{f}")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&format_float(*x)),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{v}", serde_json::Value::String(k.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Why a condition could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExprError {
    /// The expression is malformed or ill-typed; reported when the AnalysisRun starts.
    #[error("invalid expression {expression:?}: {message}")]
    Parse { expression: String, message: String },
    /// The expression is fine but cannot be applied to this measured value.
    #[error("{0}")]
    Eval(String),
}

/// A parsed condition, ready to be evaluated against many measured values.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    source: String,
    root: Node,
}

impl Condition {
    /// Parses and type-checks a condition once. Supported: `result`, literals (numbers, strings in
    /// `"`/`'`/`` ` ``, `true`, `false`, `nil`, `[..]` lists, `{k: v}` maps), `.field`, `?.field`,
    /// `[i]` (negative counts from the end), `and or not && || !`, `== != < <= > >=`,
    /// `in`/`not in`, `contains startsWith endsWith`, `+ - * / % ** ^`, `??`, `c ? a : b`,
    /// `matches` (regular expression), the functions `len asInt asFloat isNaN isInf isNil
    /// default abs max min sum first last int float string lower upper trim ceil floor round`
    /// plus the predicates
    /// `all any none one filter map count` with `{# ...}` / `{.field ...}` bodies.
    pub fn parse(expression: &str) -> Result<Condition, ExprError> {
        let fail = |message: String| ExprError::Parse {
            expression: expression.to_string(),
            message,
        };
        let tokens = lex(expression).map_err(fail)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            predicate_depth: 0,
            depth: 0,
        };
        let root = parser.parse_top().map_err(fail)?;
        if let Some(tok) = parser.peek() {
            return Err(fail(format!(
                "unexpected token {} at column {}",
                tok, parser.tokens[parser.pos].col
            )));
        }
        match check(&root, 0).map_err(fail)? {
            Ty::Bool | Ty::Unknown => {}
            other => return Err(fail(format!("expected bool, but got {}", other.name()))),
        }
        Ok(Condition {
            source: expression.to_string(),
            root,
        })
    }

    /// The expression text this condition was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition with `result` bound to a JSON value.
    pub fn eval(&self, result: &serde_json::Value) -> Result<bool, ExprError> {
        self.eval_value(&Value::from(result))
    }

    /// Evaluates the condition with `result` bound to `result`.
    pub fn eval_value(&self, result: &Value) -> Result<bool, ExprError> {
        let env = Env {
            result,
            pointer: None,
        };
        match eval(&self.root, &env).map_err(ExprError::Eval)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::Eval(format!(
                "expected bool, but got {}",
                other.type_name()
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum TokKind {
    Number(Value),
    Str(String),
    Ident(String),
    /// Operators and punctuation.
    Op(&'static str),
}

impl fmt::Display for TokKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokKind::Number(v) => write!(f, "{v}"),
            TokKind::Str(s) => write!(f, "{s:?}"),
            TokKind::Ident(s) => write!(f, "{s:?}"),
            TokKind::Op(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokKind,
    col: usize,
}

/// Longest operators first so `**` is not read as two `*`.
const OPERATORS: &[&str] = &[
    "?.", "??", "==", "!=", "<=", ">=", "&&", "||", "**", "..", "<", ">", "!", "+", "-", "*", "/",
    "%", "^", "(", ")", "[", "]", "{", "}", ",", ":", "?", ".", "#", "|",
];

fn lex(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let (value, next) = lex_number(&chars, i)?;
            out.push(Token {
                kind: TokKind::Number(value),
                col,
            });
            i = next;
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Token {
                kind: TokKind::Ident(chars[start..i].iter().collect()),
                col,
            });
            continue;
        }
        if c == '"' || c == '\'' {
            let (s, next) = lex_quoted(&chars, i)?;
            out.push(Token {
                kind: TokKind::Str(s),
                col,
            });
            i = next;
            continue;
        }
        if c == '`' {
            let (s, next) = lex_raw(&chars, i)?;
            out.push(Token {
                kind: TokKind::Str(s),
                col,
            });
            i = next;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
            return Err(format!("unexpected character {c:?} at column {col}"));
        };
        // `?.` before a digit is a ternary followed by a number (`a ?.5 : 1`).
        if *op == "?." && chars.get(i + 2).is_some_and(|c| c.is_ascii_digit()) {
            out.push(Token {
                kind: TokKind::Op("?"),
                col,
            });
            i += 1;
            continue;
        }
        out.push(Token {
            kind: TokKind::Op(op),
            col,
        });
        i += op.chars().count();
    }
    Ok(out)
}

/// A number literal at `start`: decimal, `0x` hex, with `_` separators, a fraction and an
/// exponent. Returns it and the index after it.
fn lex_number(chars: &[char], start: usize) -> Result<(Value, usize), String> {
    let col = start + 1;
    let mut i = start;
    let mut is_float = false;
    if chars[i] == '0' && i + 1 < chars.len() && matches!(chars[i + 1], 'x' | 'X') {
        i += 2;
        while i < chars.len() && (chars[i].is_ascii_hexdigit() || chars[i] == '_') {
            i += 1;
        }
        let digits: String = chars[start + 2..i].iter().filter(|c| **c != '_').collect();
        let n = i64::from_str_radix(&digits, 16)
            .map_err(|_| format!("invalid number literal at column {col}"))?;
        return Ok((Value::Int(n), i));
    }
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
        i += 1;
    }
    // A '.' followed by a digit continues the number; `1..2` is a range, `1.x` is not ours.
    if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
        is_float = true;
        i += 1;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
            i += 1;
        }
    }
    if i < chars.len() && matches!(chars[i], 'e' | 'E') {
        let mut j = i + 1;
        if j < chars.len() && matches!(chars[j], '+' | '-') {
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            is_float = true;
            i = j;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
    let value = if is_float {
        Value::Float(
            text.parse()
                .map_err(|_| format!("invalid number literal {text:?} at column {col}"))?,
        )
    } else {
        Value::Int(
            text.parse()
                .map_err(|_| format!("integer literal {text} out of range at column {col}"))?,
        )
    };
    Ok((value, i))
}

/// A backquoted string at `start`: no escapes. Returns it and the index after it.
fn lex_raw(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut j = start + 1;
    while j < chars.len() && chars[j] != '`' {
        j += 1;
    }
    if j >= chars.len() {
        return Err(format!(
            "unterminated string starting at column {}",
            start + 1
        ));
    }
    Ok((chars[start + 1..j].iter().collect(), j + 1))
}

fn lex_quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else { break };
            i += 2;
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                '\\' | '"' | '\'' | '`' => s.push(e),
                'u' => {
                    let hex: String = chars.get(i..i + 4).unwrap_or_default().iter().collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("invalid \\u escape at column {}", i - 1))?;
                    s.push(ch);
                    i += 4;
                }
                other => {
                    return Err(format!("invalid escape \\{other} at column {}", i - 1));
                }
            }
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(format!(
        "unterminated string starting at column {}",
        start + 1
    ))
}

// ---------------------------------------------------------------------------------------------
// Syntax tree and parser

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Contains => "contains",
            BinOp::StartsWith => "startsWith",
            BinOp::EndsWith => "endsWith",
            BinOp::Matches => "matches",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Pow => "**",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Len,
    AsInt,
    AsFloat,
    IsNaN,
    IsInf,
    IsNil,
    Default,
    Abs,
    Max,
    Min,
    Sum,
    First,
    Last,
    Int,
    Float,
    Str,
    Lower,
    Upper,
    Trim,
    Ceil,
    Floor,
    Round,
}

impl Func {
    /// The function, its minimum and maximum argument count.
    fn lookup(name: &str) -> Option<(Func, usize, usize)> {
        Some(match name {
            "len" => (Func::Len, 1, 1),
            "asInt" => (Func::AsInt, 1, 1),
            "asFloat" => (Func::AsFloat, 1, 1),
            "isNaN" => (Func::IsNaN, 1, 1),
            "isInf" => (Func::IsInf, 1, 1),
            "isNil" => (Func::IsNil, 1, 1),
            "default" => (Func::Default, 2, 2),
            "abs" => (Func::Abs, 1, 1),
            "max" => (Func::Max, 1, usize::MAX),
            "min" => (Func::Min, 1, usize::MAX),
            "sum" => (Func::Sum, 1, 1),
            "first" => (Func::First, 1, 1),
            "last" => (Func::Last, 1, 1),
            "int" => (Func::Int, 1, 1),
            "float" => (Func::Float, 1, 1),
            "string" => (Func::Str, 1, 1),
            "lower" => (Func::Lower, 1, 1),
            "upper" => (Func::Upper, 1, 1),
            "trim" => (Func::Trim, 1, 1),
            "ceil" => (Func::Ceil, 1, 1),
            "floor" => (Func::Floor, 1, 1),
            "round" => (Func::Round, 1, 1),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pred {
    All,
    Any,
    None,
    One,
    Filter,
    Map,
    Count,
}

impl Pred {
    fn lookup(name: &str) -> Option<Pred> {
        Some(match name {
            "all" => Pred::All,
            "any" => Pred::Any,
            "none" => Pred::None,
            "one" => Pred::One,
            "filter" => Pred::Filter,
            "map" => Pred::Map,
            "count" => Pred::Count,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Result,
    /// `#`: the element a predicate body is looking at.
    Pointer,
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
    Member {
        obj: Box<Node>,
        name: String,
        optional: bool,
    },
    Index {
        obj: Box<Node>,
        index: Box<Node>,
        optional: bool,
    },
    Not(Box<Node>),
    Neg(Box<Node>),
    Plus(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Coalesce(Box<Node>, Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
    Predicate(Pred, Box<Node>, Box<Node>),
}

/// A binary operator as the parser sees it, with expr-lang's precedence.
#[derive(Clone, Copy)]
enum Infix {
    And,
    Or,
    Coalesce,
    Bin(BinOp),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    predicate_depth: usize,
    /// Current nesting, bounded by [`MAX_DEPTH`] so hostile input cannot overflow the stack.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&TokKind> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn peek_at(&self, offset: usize) -> Option<&TokKind> {
        self.tokens.get(self.pos + offset).map(|t| &t.kind)
    }

    fn col(&self) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => format!("column {}", t.col),
            None => "end of expression".to_string(),
        }
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(TokKind::Op(o)) if *o == op)
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Some(TokKind::Ident(w)) if w == word)
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.is_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected {op:?} but found {t} at {}", self.col()),
                None => format!("expected {op:?} but the expression ended"),
            })
        }
    }

    fn parse_top(&mut self) -> Result<Node, String> {
        let cond = self.parse_expr(0)?;
        if self.is_op("?") {
            self.pos += 1;
            let then = self.parse_top()?;
            self.expect_op(":")?;
            let otherwise = self.parse_top()?;
            return Ok(Node::Cond(
                Box::new(cond),
                Box::new(then),
                Box::new(otherwise),
            ));
        }
        Ok(cond)
    }

    /// The infix operator at the cursor, its precedence, right associativity, and token length.
    fn peek_infix(&self) -> Option<(Infix, u16, bool, usize)> {
        let tok = self.peek()?;
        Some(match tok {
            TokKind::Op("||") => (Infix::Or, 10, false, 1),
            TokKind::Op("&&") => (Infix::And, 15, false, 1),
            TokKind::Op("==") => (Infix::Bin(BinOp::Eq), 20, false, 1),
            TokKind::Op("!=") => (Infix::Bin(BinOp::Ne), 20, false, 1),
            TokKind::Op("<") => (Infix::Bin(BinOp::Lt), 20, false, 1),
            TokKind::Op("<=") => (Infix::Bin(BinOp::Le), 20, false, 1),
            TokKind::Op(">") => (Infix::Bin(BinOp::Gt), 20, false, 1),
            TokKind::Op(">=") => (Infix::Bin(BinOp::Ge), 20, false, 1),
            TokKind::Op("+") => (Infix::Bin(BinOp::Add), 30, false, 1),
            TokKind::Op("-") => (Infix::Bin(BinOp::Sub), 30, false, 1),
            TokKind::Op("*") => (Infix::Bin(BinOp::Mul), 60, false, 1),
            TokKind::Op("/") => (Infix::Bin(BinOp::Div), 60, false, 1),
            TokKind::Op("%") => (Infix::Bin(BinOp::Rem), 60, false, 1),
            TokKind::Op("**") | TokKind::Op("^") => (Infix::Bin(BinOp::Pow), 100, true, 1),
            TokKind::Op("??") => (Infix::Coalesce, 500, false, 1),
            TokKind::Ident(w) => match w.as_str() {
                "or" => (Infix::Or, 10, false, 1),
                "and" => (Infix::And, 15, false, 1),
                "in" => (Infix::Bin(BinOp::In), 20, false, 1),
                "contains" => (Infix::Bin(BinOp::Contains), 20, false, 1),
                "startsWith" => (Infix::Bin(BinOp::StartsWith), 20, false, 1),
                "endsWith" => (Infix::Bin(BinOp::EndsWith), 20, false, 1),
                "matches" => (Infix::Bin(BinOp::Matches), 20, false, 1),
                "not" if matches!(self.peek_at(1), Some(TokKind::Ident(n)) if n == "in") => {
                    (Infix::Bin(BinOp::NotIn), 20, false, 2)
                }
                _ => return None,
            },
            _ => return None,
        })
    }

    fn parse_expr(&mut self, min_prec: u16) -> Result<Node, String> {
        let mut lhs = self.parse_unary()?;
        while let Some((op, prec, right_assoc, len)) = self.peek_infix() {
            if prec < min_prec {
                break;
            }
            self.pos += len;
            let rhs = self.parse_expr(if right_assoc { prec } else { prec + 1 })?;
            lhs = match op {
                Infix::And => Node::And(Box::new(lhs), Box::new(rhs)),
                Infix::Or => Node::Or(Box::new(lhs), Box::new(rhs)),
                Infix::Coalesce => Node::Coalesce(Box::new(lhs), Box::new(rhs)),
                Infix::Bin(b) => Node::Binary(b, Box::new(lhs), Box::new(rhs)),
            };
        }
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression is nested too deeply".to_string());
        }
        let node = self.parse_unary_inner();
        self.depth -= 1;
        node
    }

    fn parse_unary_inner(&mut self) -> Result<Node, String> {
        if self.is_op("!") || (self.is_ident("not") && !self.is_not_in()) {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.parse_expr(50)?)));
        }
        if self.is_op("-") {
            self.pos += 1;
            return Ok(Node::Neg(Box::new(self.parse_expr(90)?)));
        }
        if self.is_op("+") {
            self.pos += 1;
            return Ok(Node::Plus(Box::new(self.parse_expr(90)?)));
        }
        let primary = self.parse_primary()?;
        self.parse_postfix(primary)
    }

    fn is_not_in(&self) -> bool {
        self.is_ident("not") && matches!(self.peek_at(1), Some(TokKind::Ident(n)) if n == "in")
    }

    fn parse_postfix(&mut self, mut node: Node) -> Result<Node, String> {
        loop {
            if self.is_op(".") || self.is_op("?.") {
                let optional = self.is_op("?.");
                self.pos += 1;
                if optional && self.is_op("[") {
                    self.pos += 1;
                    let index = self.parse_top()?;
                    self.expect_op("]")?;
                    node = Node::Index {
                        obj: Box::new(node),
                        index: Box::new(index),
                        optional,
                    };
                    continue;
                }
                let name = match self.peek() {
                    Some(TokKind::Ident(n)) => n.clone(),
                    _ => return Err(format!("expected a field name at {}", self.col())),
                };
                self.pos += 1;
                if self.is_op("(") {
                    return Err(format!("method calls are not supported: {name}()"));
                }
                node = Node::Member {
                    obj: Box::new(node),
                    name,
                    optional,
                };
            } else if self.is_op("[") {
                self.pos += 1;
                if self.is_op(":") {
                    return Err("slices (a[i:j]) are not supported".to_string());
                }
                let index = self.parse_top()?;
                if self.is_op(":") {
                    return Err("slices (a[i:j]) are not supported".to_string());
                }
                self.expect_op("]")?;
                node = Node::Index {
                    obj: Box::new(node),
                    index: Box::new(index),
                    optional: false,
                };
            } else {
                return Ok(node);
            }
        }
    }

    fn parse_args(&mut self) -> Result<Vec<Node>, String> {
        self.expect_op("(")?;
        let mut args = Vec::new();
        if self.is_op(")") {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.parse_top()?);
            if self.is_op(",") {
                self.pos += 1;
                continue;
            }
            self.expect_op(")")?;
            return Ok(args);
        }
    }

    fn parse_primary(&mut self) -> Result<Node, String> {
        let Some(tok) = self.tokens.get(self.pos).cloned() else {
            return Err("unexpected end of expression".to_string());
        };
        self.pos += 1;
        match tok.kind {
            TokKind::Number(v) => Ok(Node::Lit(v)),
            TokKind::Str(s) => Ok(Node::Lit(Value::String(s))),
            TokKind::Op("(") => {
                let inner = self.parse_top()?;
                self.expect_op(")")?;
                Ok(inner)
            }
            TokKind::Op("[") => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.parse_top()?);
                    if self.is_op(",") {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect_op("]")?;
                Ok(Node::List(items))
            }
            TokKind::Op("{") => {
                let mut entries = Vec::new();
                while !self.is_op("}") {
                    let key = match self.peek().cloned() {
                        Some(TokKind::Ident(k)) | Some(TokKind::Str(k)) => k,
                        _ => return Err(format!("expected a map key at {}", self.col())),
                    };
                    self.pos += 1;
                    self.expect_op(":")?;
                    entries.push((key, self.parse_top()?));
                    if self.is_op(",") {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect_op("}")?;
                Ok(Node::Map(entries))
            }
            TokKind::Op("#") if self.predicate_depth > 0 => Ok(Node::Pointer),
            TokKind::Op(".") if self.predicate_depth > 0 => match self.peek().cloned() {
                Some(TokKind::Ident(name)) => {
                    self.pos += 1;
                    Ok(Node::Member {
                        obj: Box::new(Node::Pointer),
                        name,
                        optional: false,
                    })
                }
                _ => Err(format!("expected a field name at {}", self.col())),
            },
            TokKind::Op("..") => Err("ranges (a..b) are not supported".to_string()),
            TokKind::Op("|") => Err("pipes (|) are not supported".to_string()),
            TokKind::Op(op) => Err(format!("unexpected token {op:?} at column {}", tok.col)),
            TokKind::Ident(word) => self.parse_ident(word, tok.col),
        }
    }

    fn parse_ident(&mut self, word: String, col: usize) -> Result<Node, String> {
        match word.as_str() {
            "true" => return Ok(Node::Lit(Value::Bool(true))),
            "false" => return Ok(Node::Lit(Value::Bool(false))),
            "nil" => return Ok(Node::Lit(Value::Nil)),
            "result" => return Ok(Node::Result),
            "let" => return Err("let bindings are not supported".to_string()),
            _ => {}
        }
        let is_call = self.is_op("(");
        if let Some((func, min_args, max_args)) = Func::lookup(&word) {
            if !is_call {
                return Err(format!(
                    "{word} is a function and must be called: {word}(...)"
                ));
            }
            let args = self.parse_args()?;
            if args.len() < min_args {
                return Err(format!("not enough arguments to call {word}"));
            }
            if args.len() > max_args {
                return Err(format!("too many arguments to call {word}"));
            }
            return Ok(Node::Call(func, args));
        }
        if let Some(pred) = Pred::lookup(&word) {
            if !is_call {
                return Err(format!(
                    "{word} is a function and must be called: {word}(...)"
                ));
            }
            self.pos += 1;
            let list = self.parse_top()?;
            self.expect_op(",")?;
            let braced = self.is_op("{");
            if braced {
                self.pos += 1;
            }
            self.predicate_depth += 1;
            let body = self.parse_top();
            self.predicate_depth -= 1;
            let body = body?;
            if braced {
                self.expect_op("}")?;
            }
            self.expect_op(")")?;
            return Ok(Node::Predicate(pred, Box::new(list), Box::new(body)));
        }
        if is_call {
            Err(format!("unknown func {word} (at column {col})"))
        } else {
            Err(format!("unknown name {word}"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Static type check: reject what expr-lang rejects at compile time for known types.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Unknown,
    Nil,
    Bool,
    Int,
    Float,
    String,
    List,
    Map,
}

impl Ty {
    fn of(v: &Value) -> Ty {
        match v {
            Value::Nil => Ty::Nil,
            Value::Bool(_) => Ty::Bool,
            Value::Int(_) => Ty::Int,
            Value::Float(_) => Ty::Float,
            Value::String(_) => Ty::String,
            Value::List(_) => Ty::List,
            Value::Map(_) => Ty::Map,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Unknown => "interface {}",
            Ty::Nil => "<nil>",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Float => "float64",
            Ty::String => "string",
            Ty::List => "[]interface {}",
            Ty::Map => "map[string]interface {}",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }

    fn known(self) -> bool {
        self != Ty::Unknown
    }
}

fn mismatched(op: &str, l: Ty, r: Ty) -> String {
    format!(
        "invalid operation: {op} (mismatched types {} and {})",
        l.name(),
        r.name()
    )
}

/// Bounded recursion: conditions are short, and a pathological one must not overflow the stack.
const MAX_DEPTH: usize = 200;

fn check(node: &Node, depth: usize) -> Result<Ty, String> {
    if depth > MAX_DEPTH {
        return Err("expression is nested too deeply".to_string());
    }
    let d = depth + 1;
    Ok(match node {
        Node::Lit(v) => Ty::of(v),
        Node::Result | Node::Pointer => Ty::Unknown,
        Node::List(items) => {
            for item in items {
                check(item, d)?;
            }
            Ty::List
        }
        Node::Map(entries) => {
            for (_, v) in entries {
                check(v, d)?;
            }
            Ty::Map
        }
        Node::Member { obj, name, .. } => {
            let t = check(obj, d)?;
            if t.known() && !matches!(t, Ty::Map | Ty::Nil) {
                return Err(format!("type {} has no field {name}", t.name()));
            }
            Ty::Unknown
        }
        Node::Index { obj, index, .. } => {
            let t = check(obj, d)?;
            check(index, d)?;
            if t.known() && !matches!(t, Ty::Map | Ty::List | Ty::String | Ty::Nil) {
                return Err(format!("type {} does not support indexing", t.name()));
            }
            Ty::Unknown
        }
        Node::Not(e) => check_not(check(e, d)?)?,
        Node::Neg(e) | Node::Plus(e) => check_sign(check(e, d)?)?,
        Node::And(l, r) => check_logical("and", check(l, d)?, check(r, d)?)?,
        Node::Or(l, r) => check_logical("or", check(l, d)?, check(r, d)?)?,
        Node::Coalesce(l, r) => {
            let (lt, rt) = (check(l, d)?, check(r, d)?);
            if lt == Ty::Nil { rt } else { Ty::Unknown }
        }
        Node::Cond(c, a, b) => {
            let ct = check(c, d)?;
            if ct.known() && ct != Ty::Bool {
                return Err(format!(
                    "non-bool expression (type {}) used as condition",
                    ct.name()
                ));
            }
            let (at, bt) = (check(a, d)?, check(b, d)?);
            if at == bt { at } else { Ty::Unknown }
        }
        Node::Binary(op, l, r) => {
            let (lt, rt) = (check(l, d)?, check(r, d)?);
            if *op == BinOp::Matches
                && let Node::Lit(Value::String(pattern)) = r.as_ref()
            {
                regex::Regex::new(pattern)
                    .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))?;
            }
            check_binary(*op, lt, rt)?
        }
        Node::Call(func, args) => {
            let ts = args
                .iter()
                .map(|a| check(a, d))
                .collect::<Result<Vec<_>, _>>()?;
            check_call(*func, &ts)?
        }
        Node::Predicate(pred, list, body) => check_predicate(*pred, list, body, d)?,
    })
}

fn check_not(t: Ty) -> Result<Ty, String> {
    if t.known() && t != Ty::Bool {
        return Err(format!(
            "invalid operation: ! (mismatched type {})",
            t.name()
        ));
    }
    Ok(Ty::Bool)
}

/// Unary `-` and `+` take a number (the error says `-` for both).
fn check_sign(t: Ty) -> Result<Ty, String> {
    if t.known() && !t.numeric() {
        return Err(format!(
            "invalid operation: - (mismatched type {})",
            t.name()
        ));
    }
    Ok(t)
}

fn check_logical(op: &str, lt: Ty, rt: Ty) -> Result<Ty, String> {
    if (lt.known() && lt != Ty::Bool) || (rt.known() && rt != Ty::Bool) {
        return Err(mismatched(op, lt, rt));
    }
    Ok(Ty::Bool)
}

/// The type a builtin returns, given its arguments' types; an argument of a known type the
/// builtin rejects is an error.
fn check_call(func: Func, ts: &[Ty]) -> Result<Ty, String> {
    Ok(match func {
        Func::Len => {
            if ts[0].known() && !matches!(ts[0], Ty::String | Ty::List | Ty::Map) {
                return Err(format!("invalid argument for len (type {})", ts[0].name()));
            }
            Ty::Int
        }
        Func::AsInt => Ty::Int,
        Func::AsFloat => Ty::Float,
        Func::IsNaN | Func::IsInf => {
            if ts[0].known() && !ts[0].numeric() {
                let name = if func == Func::IsNaN {
                    "isNaN"
                } else {
                    "isInf"
                };
                return Err(format!(
                    "cannot use {} as argument (type float64) to call {name}",
                    ts[0].name()
                ));
            }
            Ty::Bool
        }
        Func::IsNil => Ty::Bool,
        Func::Default => Ty::Unknown,
        Func::Abs => {
            if ts[0].known() && !ts[0].numeric() {
                return Err(format!("invalid argument for abs (type {})", ts[0].name()));
            }
            ts[0]
        }
        Func::Max | Func::Min | Func::Sum | Func::First | Func::Last => Ty::Unknown,
        Func::Int => Ty::Int,
        Func::Float | Func::Ceil | Func::Floor | Func::Round => Ty::Float,
        Func::Str | Func::Lower | Func::Upper | Func::Trim => Ty::String,
    })
}

/// A predicate iterates over a list and its body returns a bool (`map` excepted).
fn check_predicate(pred: Pred, list: &Node, body: &Node, d: usize) -> Result<Ty, String> {
    let lt = check(list, d)?;
    if lt.known() && !matches!(lt, Ty::List | Ty::Nil) {
        return Err(format!("cannot iterate over {}", lt.name()));
    }
    let bt = check(body, d)?;
    if pred != Pred::Map && bt.known() && bt != Ty::Bool {
        return Err(format!(
            "predicate should return boolean (got {})",
            bt.name()
        ));
    }
    Ok(match pred {
        Pred::Filter | Pred::Map => Ty::List,
        Pred::Count => Ty::Int,
        _ => Ty::Bool,
    })
}

fn check_binary(op: BinOp, lt: Ty, rt: Ty) -> Result<Ty, String> {
    let both = lt.known() && rt.known();
    let sym = op.symbol();
    Ok(match op {
        BinOp::Eq | BinOp::Ne => {
            if both && lt != rt && !(lt.numeric() && rt.numeric()) && lt != Ty::Nil && rt != Ty::Nil
            {
                return Err(mismatched(sym, lt, rt));
            }
            Ty::Bool
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let orderable = |t: Ty| !t.known() || t.numeric() || t == Ty::String;
            if !orderable(lt)
                || !orderable(rt)
                || (both && !(lt.numeric() && rt.numeric()) && lt != rt)
            {
                return Err(mismatched(sym, lt, rt));
            }
            Ty::Bool
        }
        BinOp::In | BinOp::NotIn => {
            if rt.known() && !matches!(rt, Ty::List | Ty::Map | Ty::Nil) {
                return Err(mismatched(sym, lt, rt));
            }
            Ty::Bool
        }
        BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith | BinOp::Matches => {
            if (lt.known() && lt != Ty::String) || (rt.known() && rt != Ty::String) {
                return Err(mismatched(sym, lt, rt));
            }
            Ty::Bool
        }
        BinOp::Add => {
            if both {
                if lt.numeric() && rt.numeric() {
                    if lt == Ty::Int && rt == Ty::Int {
                        Ty::Int
                    } else {
                        Ty::Float
                    }
                } else if lt == rt && matches!(lt, Ty::String | Ty::List) {
                    lt
                } else {
                    return Err(mismatched(sym, lt, rt));
                }
            } else {
                Ty::Unknown
            }
        }
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Rem => {
            let ok = |t: Ty| {
                if op == BinOp::Rem {
                    !t.known() || t == Ty::Int
                } else {
                    !t.known() || t.numeric()
                }
            };
            if !ok(lt) || !ok(rt) {
                return Err(mismatched(sym, lt, rt));
            }
            match op {
                BinOp::Div | BinOp::Pow => Ty::Float,
                BinOp::Rem => Ty::Int,
                _ if both && lt == Ty::Int && rt == Ty::Int => Ty::Int,
                _ if both => Ty::Float,
                _ => Ty::Unknown,
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluation

struct Env<'a> {
    result: &'a Value,
    pointer: Option<&'a Value>,
}

fn eval(node: &Node, env: &Env<'_>) -> Result<Value, String> {
    Ok(match node {
        Node::Lit(v) => v.clone(),
        Node::Result => env.result.clone(),
        Node::Pointer => env
            .pointer
            .cloned()
            .ok_or_else(|| "# used outside a predicate".to_string())?,
        Node::List(items) => Value::List(
            items
                .iter()
                .map(|i| eval(i, env))
                .collect::<Result<_, _>>()?,
        ),
        Node::Map(entries) => {
            let mut m = BTreeMap::new();
            for (k, v) in entries {
                m.insert(k.clone(), eval(v, env)?);
            }
            Value::Map(m)
        }
        Node::Member {
            obj,
            name,
            optional,
        } => {
            let o = eval(obj, env)?;
            fetch_field(&o, name, *optional)?
        }
        Node::Index {
            obj,
            index,
            optional,
        } => {
            let o = eval(obj, env)?;
            if o.is_nil() && *optional {
                return Ok(Value::Nil);
            }
            let i = eval(index, env)?;
            fetch_index(&o, &i)?
        }
        Node::Not(e) => not(eval(e, env)?)?,
        Node::Neg(e) => negate(eval(e, env)?)?,
        Node::Plus(e) => plus(eval(e, env)?)?,
        Node::And(l, r) => logical(true, l, r, env)?,
        Node::Or(l, r) => logical(false, l, r, env)?,
        Node::Coalesce(l, r) => match eval(l, env)? {
            Value::Nil => eval(r, env)?,
            v => v,
        },
        Node::Cond(c, a, b) => conditional(c, a, b, env)?,
        Node::Binary(op, l, r) => {
            let lv = eval(l, env)?;
            let rv = eval(r, env)?;
            binary(*op, &lv, &rv)?
        }
        Node::Call(func, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<Vec<_>, _>>()?;
            call(*func, &vals, env.result)?
        }
        Node::Predicate(pred, list, body) => {
            let lv = eval(list, env)?;
            let items = match lv {
                Value::List(items) => items,
                other => return Err(format!("cannot iterate over {}", other.type_name())),
            };
            predicate(*pred, &items, body, env)?
        }
    })
}

/// `c ? a : b`: only the branch taken is evaluated.
fn conditional(c: &Node, a: &Node, b: &Node, env: &Env<'_>) -> Result<Value, String> {
    match eval(c, env)? {
        Value::Bool(true) => eval(a, env),
        Value::Bool(false) => eval(b, env),
        other => Err(format!(
            "non-bool expression (type {}) used as condition",
            other.type_name()
        )),
    }
}

fn not(v: Value) -> Result<Value, String> {
    match v {
        Value::Bool(b) => Ok(Value::Bool(!b)),
        other => Err(format!(
            "invalid operation: ! (mismatched type {})",
            other.type_name()
        )),
    }
}

fn plus(v: Value) -> Result<Value, String> {
    match v {
        v @ (Value::Int(_) | Value::Float(_)) => Ok(v),
        other => Err(format!(
            "invalid operation: + (mismatched type {})",
            other.type_name()
        )),
    }
}

fn negate(v: Value) -> Result<Value, String> {
    match v {
        Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
        Value::Float(f) => Ok(Value::Float(-f)),
        other => Err(format!(
            "invalid operation: - (mismatched type {})",
            other.type_name()
        )),
    }
}

/// `and` (`is_and`) or `or`: both sides must be bools; `false and _` and `true or _`
/// short-circuit as in expr-lang, so the right side is then not evaluated at all.
fn logical(is_and: bool, l: &Node, r: &Node, env: &Env<'_>) -> Result<Value, String> {
    let op = if is_and { "and" } else { "or" };
    let lv = eval(l, env)?;
    let Value::Bool(lb) = lv else {
        return Err(format!(
            "invalid operation: {op} (mismatched type {})",
            lv.type_name()
        ));
    };
    if lb != is_and {
        return Ok(Value::Bool(lb));
    }
    match eval(r, env)? {
        Value::Bool(rb) => Ok(Value::Bool(rb)),
        other => Err(format!(
            "invalid operation: {op} (mismatched type {})",
            other.type_name()
        )),
    }
}

fn fetch_field(o: &Value, name: &str, optional: bool) -> Result<Value, String> {
    match o {
        Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Nil)),
        Value::Nil if optional => Ok(Value::Nil),
        other => Err(format!("cannot fetch {name} from {}", other.type_name())),
    }
}

fn fetch_index(o: &Value, i: &Value) -> Result<Value, String> {
    match o {
        Value::Map(m) => match i {
            Value::String(k) => Ok(m.get(k).cloned().unwrap_or(Value::Nil)),
            other => Err(format!(
                "cannot use {} as index to map[string]interface {{}}",
                other.type_name()
            )),
        },
        Value::List(items) => {
            let idx = list_index(i, items.len())?;
            Ok(items[idx].clone())
        }
        Value::String(s) => {
            let chars: Vec<char> = s.chars().collect();
            let idx = list_index(i, chars.len())?;
            Ok(Value::String(chars[idx].to_string()))
        }
        other => Err(format!("cannot fetch {i} from {}", other.type_name())),
    }
}

/// Resolves an index the way expr-lang does: ints (or floats, truncated), negative from the end.
fn list_index(i: &Value, len: usize) -> Result<usize, String> {
    let raw = match i {
        Value::Int(n) => *n,
        Value::Float(f) => *f as i64,
        other => {
            return Err(format!(
                "cannot use {} as index to []interface {{}}",
                other.type_name()
            ));
        }
    };
    let len_i = len as i64;
    let idx = if raw < 0 { raw + len_i } else { raw };
    if idx < 0 || idx >= len_i {
        return Err(format!("index out of range: {raw} (array length is {len})"));
    }
    Ok(idx as usize)
}

/// expr-lang's runtime equality: numbers compare across int/float, other kinds must match.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => false,
    }
}

fn binary(op: BinOp, l: &Value, r: &Value) -> Result<Value, String> {
    let sym = op.symbol();
    let bad = || {
        format!(
            "invalid operation: {sym} (mismatched types {} and {})",
            l.type_name(),
            r.type_name()
        )
    };
    Ok(match op {
        BinOp::Eq => Value::Bool(equal(l, r)),
        BinOp::Ne => Value::Bool(!equal(l, r)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            Value::Bool(compare(op, l, r).ok_or_else(bad)?)
        }
        BinOp::In | BinOp::NotIn => {
            let found = match r {
                Value::List(items) => items.iter().any(|x| equal(l, x)),
                Value::Map(m) => match l {
                    Value::String(k) => m.contains_key(k),
                    _ => return Err(bad()),
                },
                Value::Nil => false,
                _ => return Err(format!("operator {sym} not defined on {}", r.type_name())),
            };
            Value::Bool(found == (op == BinOp::In))
        }
        BinOp::Matches => match (l, r) {
            (Value::String(a), Value::String(pattern)) => {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))?;
                Value::Bool(re.is_match(a))
            }
            _ => return Err(bad()),
        },
        BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith => match (l, r) {
            (Value::String(a), Value::String(b)) => Value::Bool(match op {
                BinOp::Contains => a.contains(b.as_str()),
                BinOp::StartsWith => a.starts_with(b.as_str()),
                _ => a.ends_with(b.as_str()),
            }),
            _ => return Err(bad()),
        },
        BinOp::Add => match (l, r) {
            (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_add(*y)),
            (Value::String(x), Value::String(y)) => Value::String(format!("{x}{y}")),
            (Value::List(x), Value::List(y)) => Value::List(x.iter().chain(y).cloned().collect()),
            _ => Value::Float(float_pair(l, r).ok_or_else(bad).map(|(x, y)| x + y)?),
        },
        BinOp::Sub => match (l, r) {
            (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_sub(*y)),
            _ => Value::Float(float_pair(l, r).ok_or_else(bad).map(|(x, y)| x - y)?),
        },
        BinOp::Mul => match (l, r) {
            (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_mul(*y)),
            _ => Value::Float(float_pair(l, r).ok_or_else(bad).map(|(x, y)| x * y)?),
        },
        // expr-lang divides as floats even for two ints.
        BinOp::Div => Value::Float(float_pair(l, r).ok_or_else(bad).map(|(x, y)| x / y)?),
        BinOp::Pow => Value::Float(float_pair(l, r).ok_or_else(bad).map(|(x, y)| x.powf(y))?),
        BinOp::Rem => match (l, r) {
            (Value::Int(_), Value::Int(0)) => return Err("integer divide by zero".to_string()),
            (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_rem(*y)),
            _ => return Err(bad()),
        },
    })
}

/// `<`, `<=`, `>`, `>=` on two numbers (ints, floats or both) or two strings; `None` for
/// other types.
fn compare(op: BinOp, l: &Value, r: &Value) -> Option<bool> {
    let ord = match (l, r) {
        (Value::Int(x), Value::Int(y)) => x.partial_cmp(y),
        (Value::String(x), Value::String(y)) => x.partial_cmp(y),
        _ => {
            let (x, y) = float_pair(l, r)?;
            x.partial_cmp(&y)
        }
    };
    use std::cmp::Ordering::*;
    // NaN compares false with everything, as in Go.
    Some(match (op, ord) {
        (_, None) => false,
        (BinOp::Lt, Some(o)) => o == Less,
        (BinOp::Le, Some(o)) => o != Greater,
        (BinOp::Gt, Some(o)) => o == Greater,
        (_, Some(o)) => o != Less,
    })
}

fn float_pair(l: &Value, r: &Value) -> Option<(f64, f64)> {
    Some((l.as_f64()?, r.as_f64()?))
}

/// A builtin applied to its evaluated arguments (arity was checked at parse time).
fn call(func: Func, args: &[Value], result: &Value) -> Result<Value, String> {
    let arg = &args[0];
    match func {
        Func::Len => len(arg),
        Func::AsInt => as_int(arg),
        Func::AsFloat => as_float(arg),
        Func::IsNaN | Func::IsInf => is_nan_or_inf(func, arg),
        // Upstream binds these to the measured value, not to their argument.
        Func::IsNil => Ok(Value::Bool(result.is_nil())),
        Func::Default => Ok(if result.is_nil() {
            args[1].clone()
        } else {
            result.clone()
        }),
        Func::Abs => abs(arg),
        Func::Max | Func::Min => extremum(func, args),
        Func::Sum => sum(arg),
        Func::First | Func::Last => first_or_last(func, arg),
        Func::Int => to_int(arg),
        Func::Float => to_float(arg),
        Func::Str => Ok(Value::String(match arg {
            Value::String(s) => s.clone(),
            Value::Nil => "<nil>".to_string(),
            other => other.to_string(),
        })),
        Func::Lower | Func::Upper | Func::Trim => string_case(func, arg),
        Func::Ceil | Func::Floor | Func::Round => rounding(func, arg),
    }
}

fn len(arg: &Value) -> Result<Value, String> {
    Ok(Value::Int(match arg {
        Value::String(s) => s.chars().count() as i64,
        Value::List(l) => l.len() as i64,
        Value::Map(m) => m.len() as i64,
        other => {
            return Err(format!(
                "invalid argument for len (type {})",
                other.type_name()
            ));
        }
    }))
}

/// Argo's `asInt`: strings parse strictly (Go's `strconv.ParseInt`).
fn as_int(arg: &Value) -> Result<Value, String> {
    Ok(Value::Int(match arg {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::String(s) => s
            .parse()
            .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))?,
        other => {
            return Err(format!(
                "asInt() not supported on {} {other}",
                other.type_name()
            ));
        }
    }))
}

fn as_float(arg: &Value) -> Result<Value, String> {
    Ok(Value::Float(match arg {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::String(s) => s
            .parse()
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))?,
        other => {
            return Err(format!(
                "asFloat() not supported on {} {other}",
                other.type_name()
            ));
        }
    }))
}

fn is_nan_or_inf(func: Func, arg: &Value) -> Result<Value, String> {
    let name = if func == Func::IsNaN {
        "isNaN"
    } else {
        "isInf"
    };
    let f = arg.as_f64().ok_or_else(|| {
        format!(
            "cannot use {} as argument (type float64) to call {name}",
            arg.type_name()
        )
    })?;
    Ok(Value::Bool(if func == Func::IsNaN {
        f.is_nan()
    } else {
        f.is_infinite()
    }))
}

fn abs(arg: &Value) -> Result<Value, String> {
    match arg {
        Value::Int(i) => Ok(Value::Int(i.wrapping_abs())),
        Value::Float(f) => Ok(Value::Float(f.abs())),
        other => Err(format!(
            "invalid argument for abs (type {})",
            other.type_name()
        )),
    }
}

/// `max`/`min` of the arguments, or of the elements of a single list argument (as
/// expr-lang 1.17); the winning value keeps its type.
fn extremum(func: Func, args: &[Value]) -> Result<Value, String> {
    let name = if func == Func::Max { "max" } else { "min" };
    let items = match args {
        [Value::List(items)] => items.as_slice(),
        _ => args,
    };
    let mut best: Option<&Value> = None;
    for item in items {
        let f = item
            .as_f64()
            .ok_or_else(|| format!("invalid argument for {name} (type {})", item.type_name()))?;
        let better = best.is_none_or(|b| {
            let bf = b.as_f64().unwrap_or(f64::NAN);
            if func == Func::Max { f > bf } else { f < bf }
        });
        if better {
            best = Some(item);
        }
    }
    Ok(best.cloned().unwrap_or(Value::Nil))
}

/// The sum of a list: an int while every element is one, else a float.
fn sum(arg: &Value) -> Result<Value, String> {
    let Value::List(items) = arg else {
        return Err(format!(
            "invalid argument for sum (type {})",
            arg.type_name()
        ));
    };
    let mut int_sum: i64 = 0;
    let mut float_sum: f64 = 0.0;
    let mut any_float = false;
    for item in items {
        match item {
            Value::Int(i) => int_sum = int_sum.wrapping_add(*i),
            Value::Float(f) => {
                any_float = true;
                float_sum += f;
            }
            other => {
                return Err(format!(
                    "invalid argument for sum (type {})",
                    other.type_name()
                ));
            }
        }
    }
    Ok(if any_float {
        Value::Float(float_sum + int_sum as f64)
    } else {
        Value::Int(int_sum)
    })
}

fn first_or_last(func: Func, arg: &Value) -> Result<Value, String> {
    match arg {
        Value::List(items) => {
            let item = if func == Func::First {
                items.first()
            } else {
                items.last()
            };
            Ok(item.cloned().unwrap_or(Value::Nil))
        }
        other => Err(format!(
            "invalid argument for {} (type {})",
            if func == Func::First { "first" } else { "last" },
            other.type_name()
        )),
    }
}

/// expr-lang's `int`: strings are trimmed first (Go's `strconv.Atoi`).
fn to_int(arg: &Value) -> Result<Value, String> {
    Ok(Value::Int(match arg {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))?,
        other => return Err(format!("invalid operation: int({})", other.type_name())),
    }))
}

fn to_float(arg: &Value) -> Result<Value, String> {
    Ok(Value::Float(match arg {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))?,
        other => return Err(format!("invalid operation: float({})", other.type_name())),
    }))
}

fn string_case(func: Func, arg: &Value) -> Result<Value, String> {
    match arg {
        Value::String(s) => Ok(Value::String(match func {
            Func::Lower => s.to_lowercase(),
            Func::Upper => s.to_uppercase(),
            _ => s.trim().to_string(),
        })),
        other => Err(format!(
            "invalid argument for string function (type {})",
            other.type_name()
        )),
    }
}

fn rounding(func: Func, arg: &Value) -> Result<Value, String> {
    let f = arg
        .as_f64()
        .ok_or_else(|| format!("invalid argument for rounding (type {})", arg.type_name()))?;
    Ok(Value::Float(match func {
        Func::Ceil => f.ceil(),
        Func::Floor => f.floor(),
        _ => f.round(),
    }))
}

fn predicate(pred: Pred, items: &[Value], body: &Node, env: &Env<'_>) -> Result<Value, String> {
    let test = |item: &Value| -> Result<bool, String> {
        let inner = Env {
            result: env.result,
            pointer: Some(item),
        };
        match eval(body, &inner)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!(
                "predicate should return boolean (got {})",
                other.type_name()
            )),
        }
    };
    Ok(match pred {
        Pred::All => {
            for item in items {
                if !test(item)? {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Pred::Any => {
            for item in items {
                if test(item)? {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Pred::None => {
            for item in items {
                if test(item)? {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Pred::One | Pred::Count => {
            let mut n = 0i64;
            for item in items {
                if test(item)? {
                    n += 1;
                }
            }
            if pred == Pred::One {
                Value::Bool(n == 1)
            } else {
                Value::Int(n)
            }
        }
        Pred::Filter => {
            let mut out = Vec::new();
            for item in items {
                if test(item)? {
                    out.push(item.clone());
                }
            }
            Value::List(out)
        }
        Pred::Map => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let inner = Env {
                    result: env.result,
                    pointer: Some(item),
                };
                out.push(eval(body, &inner)?);
            }
            Value::List(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (expression, result, expected): `Ok(bool)` or `Err(substring of the error)`.
    type Case = (&'static str, serde_json::Value, Result<bool, &'static str>);

    fn run_cases(cases: &[Case]) {
        for (expr, result, expected) in cases {
            let got = Condition::parse(expr).and_then(|c| c.eval(result));
            match (expected, &got) {
                (Ok(want), Ok(have)) => {
                    assert_eq!(want, have, "{expr} with result {result}")
                }
                (Err(fragment), Err(e)) => assert!(
                    e.to_string().contains(fragment),
                    "{expr} with result {result}: error {e} does not mention {fragment:?}"
                ),
                _ => panic!("{expr} with result {result}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn golden_conditions_from_argo_documentation_and_tests() {
        run_cases(&[
            ("result == true", json!(true), Ok(true)),
            ("result == false", json!(true), Ok(false)),
            ("result[0] >= 0.95", json!([0.97]), Ok(true)),
            ("result[0] >= 0.95", json!([0.5]), Ok(false)),
            ("result[0] >= 0.95", json!([]), Err("index out of range: 0")),
            ("len(result) > 0", json!([1.0]), Ok(true)),
            ("len(result) > 0", json!([]), Ok(false)),
            ("len(result) == 2", json!("ab"), Ok(true)),
            ("result == \"ok\"", json!("ok"), Ok(true)),
            ("result == 'ok'", json!("nope"), Ok(false)),
            (
                "result.status == 200 and result.ok",
                json!({"status": 200, "ok": true}),
                Ok(true),
            ),
            (
                "result.status == 200 and result.ok",
                json!({"status": 500, "ok": true}),
                Ok(false),
            ),
            (
                "result.status == 200 && result.ok",
                json!({"status": 200, "ok": false}),
                Ok(false),
            ),
            ("result.missing == nil", json!({"a": 1}), Ok(true)),
            ("result.a.b", json!(null), Err("cannot fetch a from <nil>")),
            ("result?.a == nil", json!(null), Ok(true)),
            ("2 in result", json!([2.0, 2.0]), Ok(true)),
            ("3 not in result", json!([2.0]), Ok(true)),
            ("'x' in result", json!({"x": 1}), Ok(true)),
            ("result > 1", json!(5.0), Ok(true)),
            (
                "all(result.service_apdex.values.values, {# > 1})",
                json!({"service_apdex": {"label": null, "values": {"values": [2.0, 2.0]}}}),
                Ok(true),
            ),
            (
                "any(result, {.code == 500})",
                json!([{"code": 200}, {"code": 500}]),
                Ok(true),
            ),
            ("count(result, # > 1) == 2", json!([1, 2, 3]), Ok(true)),
            (
                "len(filter(result, # > 1)) == 2",
                json!([1, 2, 3]),
                Ok(true),
            ),
            ("map(result, # * 2)[2] == 6", json!([1, 2, 3]), Ok(true)),
            (
                "none(result, # > 5) and one(result, # == 3)",
                json!([1, 2, 3]),
                Ok(true),
            ),
        ]);
    }

    #[test]
    fn golden_numeric_semantics_match_expr_lang() {
        run_cases(&[
            ("1 == 1.0", json!(null), Ok(true)),
            ("result == 1", json!(1), Ok(true)),
            ("result < 2", json!(1.5), Ok(true)),
            ("1 / 2 == 0.5", json!(null), Ok(true)),
            ("7 % 3 == 1", json!(null), Ok(true)),
            ("result % 2 == 0", json!(4), Err("invalid operation: %")),
            ("1 % 0 == 0", json!(null), Err("integer divide by zero")),
            ("1 + 0.5 == 1.5", json!(null), Ok(true)),
            ("result[0] * 100 > 5", json!([0.06]), Ok(true)),
            ("2 ** 3 == 8", json!(null), Ok(true)),
            ("-2 ** 2 == -4", json!(null), Ok(true)),
            ("2 + 3 * 4 == 14", json!(null), Ok(true)),
            ("(2 + 3) * 4 == 20", json!(null), Ok(true)),
            ("10 - 2 - 3 == 5", json!(null), Ok(true)),
            ("result[-1] == 3", json!([1, 2, 3]), Ok(true)),
            ("1_000 == 1e3", json!(null), Ok(true)),
            ("0x10 == 16", json!(null), Ok(true)),
            ("result < 'b'", json!("a"), Ok(true)),
            (
                "result < 1",
                json!("a"),
                Err("invalid operation: < (mismatched types string and int)"),
            ),
            ("result == 'ok'", json!(200), Ok(false)),
        ]);
    }

    #[test]
    fn golden_argo_helper_functions() {
        run_cases(&[
            ("asInt(result) == 1", json!("1"), Ok(true)),
            ("asInt(result) == 1", json!(1), Ok(true)),
            ("asInt(result) == 1", json!(1.123), Ok(true)),
            (
                "asInt(result) == 1",
                json!("1.1"),
                Err("strconv.ParseInt: parsing \"1.1\""),
            ),
            ("asFloat(result) == 1.1", json!("1.1"), Ok(true)),
            ("asFloat(result) >= 1.1", json!("1.1"), Ok(true)),
            ("asFloat(result) == 1", json!(1), Ok(true)),
            ("asFloat(\"1.5\") == 1.5", json!(null), Ok(true)),
            (
                "asFloat(result) == 1.1",
                json!("NotANum"),
                Err("strconv.ParseFloat: parsing \"NotANum\": invalid syntax"),
            ),
            (
                "asFloat(result) == \"1.1\"",
                json!("1.1"),
                Err("invalid operation: == (mismatched types float64 and string)"),
            ),
            (
                "asInt(result) == 1",
                json!([1]),
                Err("asInt() not supported on []interface {}"),
            ),
            ("isNaN(asFloat(result))", json!("NaN"), Ok(true)),
            ("isNaN(result)", json!(1.0), Ok(false)),
            (
                "isNaN(result)",
                json!([1.0]),
                Err("cannot use []interface {} as argument"),
            ),
            ("isInf(asFloat(result))", json!("+Inf"), Ok(true)),
            ("isNil(result)", json!(null), Ok(true)),
            ("isNil(result)", json!([]), Ok(false)),
            ("default(result, 0) == 0", json!(null), Ok(true)),
            ("default(result, 0) == 5", json!(5), Ok(true)),
            // Upstream binds default/isNil to the whole result, not to their argument.
            ("default(result.x, 0) == 0", json!({"y": 1}), Ok(false)),
            ("isNil(result.x)", json!({"y": 1}), Ok(false)),
            ("(result.x ?? 7) == 7", json!({"y": 1}), Ok(true)),
            ("abs(-2) == 2", json!(null), Ok(true)),
            (
                "result.ok ? result.n > 1 : false",
                json!({"ok": true, "n": 2}),
                Ok(true),
            ),
            (
                "result contains 'ell' and result startsWith 'h' and result endsWith 'o'",
                json!("hello"),
                Ok(true),
            ),
        ]);
    }

    #[test]
    fn golden_boolean_operators_and_keywords() {
        run_cases(&[
            ("not result", json!(false), Ok(true)),
            ("!result", json!(true), Ok(false)),
            ("not (result == 1)", json!(2), Ok(true)),
            ("true or false and false", json!(null), Ok(true)),
            ("(true or false) and false", json!(null), Ok(false)),
            ("false and result.x.y", json!(null), Ok(false)),
            ("true || result.x.y", json!(null), Ok(true)),
            (
                "result and true",
                json!(1),
                Err("invalid operation: and (mismatched type float64)"),
            ),
            ("result", json!(true), Ok(true)),
            ("result", json!("yes"), Err("expected bool, but got string")),
            ("result in [1, 2, 3]", json!(2), Ok(true)),
            ("result.a in {a: 1}", json!({"a": "a"}), Ok(true)),
            ("result == nil", json!(null), Ok(true)),
            ("result == [1, 2]", json!([1, 2]), Ok(true)),
            ("result == {'a': 1}", json!({"a": 1}), Ok(true)),
            ("`raw\\n` == 'raw\\\\n'", json!(null), Ok(true)),
            ("'\\u00e9' == \"é\"", json!(null), Ok(true)),
        ]);
    }

    #[test]
    fn malformed_or_ill_typed_conditions_fail_at_parse_time_naming_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("invalidVariable", "unknown name invalidVariable"),
            ("a == true", "unknown name a"),
            ("foo(1)", "unknown func foo"),
            ("1", "expected bool, but got int"),
            ("result +", "unexpected end of expression"),
            ("result ==", "unexpected end of expression"),
            ("(result == 1", "expected \")\""),
            ("result == 1)", "unexpected token \")\""),
            ("result.Name() == 'hi'", "method calls are not supported"),
            ("asInt()", "not enough arguments to call asInt"),
            ("default(result)", "not enough arguments to call default"),
            ("isNaN(1, 2)", "too many arguments to call isNaN"),
            (
                "asFloat(result) == \"1.1\"",
                "mismatched types float64 and string",
            ),
            (
                "1 and true",
                "invalid operation: and (mismatched types int and bool)",
            ),
            ("'a' < 1", "invalid operation: <"),
            ("len(1) > 0", "invalid argument for len (type int)"),
            ("result matches '('", "invalid regular expression"),
            ("max()", "not enough arguments to call max"),
            ("'unterminated", "unterminated string"),
            ("result @ 1", "unexpected character '@'"),
            ("result[1:2] == nil", "slices"),
            ("asInt", "must be called"),
            ("", "unexpected end of expression"),
        ];
        for (expr, fragment) in cases {
            let err = Condition::parse(expr).expect_err(expr);
            let text = err.to_string();
            assert!(matches!(err, ExprError::Parse { .. }), "{expr}: {text}");
            assert!(text.contains(fragment), "{expr}: {text} lacks {fragment:?}");
            assert!(
                text.contains(&format!("{expr:?}")),
                "{text} names the expression"
            );
        }
    }

    #[test]
    fn nan_and_infinity_from_prometheus_reach_is_nan_and_comparisons() {
        let nan = Condition::parse("isNaN(result[0])").unwrap();
        assert_eq!(
            nan.eval_value(&Value::List(vec![Value::Float(f64::NAN)])),
            Ok(true)
        );
        let ge = Condition::parse("result[0] >= 0.95").unwrap();
        assert_eq!(
            ge.eval_value(&Value::List(vec![Value::Float(f64::NAN)])),
            Ok(false)
        );
        let inf = Condition::parse("isInf(result)").unwrap();
        assert_eq!(inf.eval_value(&Value::Float(f64::NEG_INFINITY)), Ok(true));
    }

    #[test]
    fn deeply_nested_expression_is_rejected_not_overflowing() {
        let nested = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
        let err = Condition::parse(&nested).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
        let long_chain = format!("1{} == 1", " + 1".repeat(5000));
        let err = Condition::parse(&long_chain).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
        let modest = format!("{}true{}", "(".repeat(50), ")".repeat(50));
        assert_eq!(
            Condition::parse(&modest).unwrap().eval(&json!(null)),
            Ok(true)
        );
    }

    #[test]
    fn floats_format_like_go_prometheus_sample_values() {
        assert_eq!(format_float(0.99), "0.99");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(
            Value::List(vec![Value::Float(0.5), Value::Float(2.0)]).to_string(),
            "[0.5,2]"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(json!(null)),
                any::<bool>().prop_map(|b| json!(b)),
                (-1e6f64..1e6).prop_map(|f| json!(f)),
                "[a-z]{0,4}".prop_map(|s| json!(s)),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                    prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            /// Hostile or random text never panics the parser.
            #[test]
            fn parse_never_panics(text in "\\PC{0,60}") {
                let _ = Condition::parse(&text);
            }

            /// Expressions built from the supported vocabulary never panic when evaluated,
            /// whatever the measured value.
            #[test]
            fn eval_never_panics(
                tokens in prop::collection::vec(prop::sample::select(vec![
                    "result", "result[0]", "result.a", "len(result)", "asFloat(result)", "asInt(result)",
                    "isNaN(result)", "default(result, 1)", "isNil(result)", "1", "0.5", "-1", "'a'", "nil",
                    "true", "==", "<", ">=", "+", "-", "*", "/", "%", "and", "or", "not", "in", "(", ")",
                    "[1, 2]", "??", "all(result, # > 0)",
                ]), 1..8),
                value in json_value(),
            ) {
                let text = tokens.join(" ");
                if let Ok(cond) = Condition::parse(&text) {
                    let _ = cond.eval(&value);
                }
            }

            /// Comparison results agree with plain float comparison, across int/float literals.
            #[test]
            fn numeric_comparison_matches_f64(a in -1000i64..1000, b in -1000.0f64..1000.0) {
                let eq = Condition::parse("result == asFloat(result)").unwrap();
                prop_assert_eq!(eq.eval(&json!(a)), Ok(true));
                let lt = Condition::parse(&format!("{a} < {b:?}")).unwrap();
                prop_assert_eq!(lt.eval(&json!(null)), Ok((a as f64) < b));
            }
        }
    }
}
