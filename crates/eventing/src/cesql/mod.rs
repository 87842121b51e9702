//! CloudEvents SQL (CESQL) v1: the expression language of a Trigger's `cesql` filter.
//!
//! Why an engine of our own rather than a port of the ANTLR grammar: the grammar is small, a
//! hand-written Pratt parser gives precise error positions for admission, and evaluation can
//! then borrow attribute values straight from the event instead of copying them, which matters
//! because a broker evaluates every trigger's expression on every event.
//!
//! The normative texts are cloudevents/spec `cesql/spec.md` (v1.0.0), its grammar
//! `cesql/CESQLParser.g4` and its test kit `cesql/cesql_tck` (copied into
//! `tests/cesql_tck/` and run by `tests/cesql_tck.rs`). Knative evaluates CESQL with
//! cloudevents/sdk-go `sql/v2`; where the spec is silent we follow that engine. Choices made:
//!
//! - **Precedence is the grammar's**, not classic SQL's: function calls, then the prefix
//!   operators `NOT` and `-` (which bind tightest: `NOT a = b` is `(NOT a) = b`), then `LIKE`,
//!   `IN`, `* / %`, `+ -`, comparisons, and last `AND`/`OR`/`XOR`, which share one level and
//!   group to the right (`a AND b OR c` is `a AND (b OR c)`), exactly as `CESQLParser.g4`
//!   (`<assoc=right>`) and therefore sdk-go parse them. Write parentheses when mixing them.
//! - **Errors follow the TCK's model.** An operator whose operand failed returns the zero value
//!   of its own result type with that error (so `1 / missing` is `0` with a missing-attribute
//!   error, not a math error), and `AND`/`OR` short-circuit. A failed *cast* inside an operator
//!   is different: the operator goes on with the cast's zero value and reports the cast error
//!   (`NOT 10` is `true` with a cast error). Only the first error is returned.
//! - **Implicit casts** follow spec §3.7: `=`/`!=`/`<>` cast the left operand to the right
//!   operand's type, `IN` casts the set elements to the left operand's type, every other
//!   operator and function casts to its parameter types. One exception, required by the TCK
//!   (`NOT 10` must fail): an *implicit* Integer → Boolean cast is refused with a cast error;
//!   the explicit `BOOL(x)` converts (0 is false, anything else true).
//! - **Integer overflow** in `+ - * /` yields `0` with a math error; `-x` and `ABS(x)` of
//!   -2147483648 yield 2147483647 with a math error (the spec's rule for `ABS`). sdk-go wraps
//!   around silently instead.
//! - **Identifiers** are folded to lowercase (CloudEvents attribute names are lowercase;
//!   sdk-go does the same, and the TCK needs `EXISTS SOURCE` to find `source`); keywords and
//!   function names are case-insensitive.
//! - **Literals**: an integer literal must fit 32 bits (`-2147483648` is accepted). In strings,
//!   `\'` (in `'…'`) and `\"` (in `"…"`) stand for the quote, a doubled quote (`'it''s'`) is one
//!   quote as in SQL, and any other backslash is kept as it is, so `LIKE` patterns receive
//!   `\%` and `\_`. In a `LIKE` pattern a backslash escapes only `%` and `_`, as in sdk-go.
//! - **Functions**: the spec's built-ins, the casts `INT` (alias `INTEGER`), `BOOL` and
//!   `STRING` used by the TCK, and sdk-go's `IS_INT`/`IS_BOOL` (true for a value of that type or
//!   a string spelling one). An unknown function or arity parses, and evaluates to `false` with
//!   a missing-function error (spec §3.5; the TCK requires it to parse). Lengths and positions
//!   count characters, not bytes.
//! - **Depth** is limited to [`MAX_DEPTH`] levels so that a hostile expression cannot exhaust
//!   the stack of the admission webhook or the dispatcher; chains of one logical operator
//!   (`a OR b OR c …`) are kept flat and do not count against it.

mod eval;
mod functions;
mod lexer;
mod like;
mod parser;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use eval::{Val, eval};

/// How deeply an expression may nest (parentheses, operators, function arguments).
pub const MAX_DEPTH: usize = 128;

/// A CESQL value: the three primitive types of CESQL v1 (spec §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Boolean(bool),
    Integer(i32),
    String(String),
}

impl Value {
    /// The CESQL type of this value.
    pub fn value_type(&self) -> Type {
        match self {
            Value::Boolean(_) => Type::Boolean,
            Value::Integer(_) => Type::Integer,
            Value::String(_) => Type::String,
        }
    }
}

impl fmt::Display for Value {
    /// The value as `STRING(x)` would render it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => f.write_str(s),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Integer(i)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

/// A CESQL primitive type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Boolean,
    Integer,
    String,
}

impl Type {
    /// The type's zero value (spec §3.1), returned alongside errors.
    pub fn zero(self) -> Value {
        match self {
            Type::Boolean => Value::Boolean(false),
            Type::Integer => Value::Integer(0),
            Type::String => Value::String(String::new()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Type::Boolean => "Boolean",
            Type::Integer => "Integer",
            Type::String => "String",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An expression that is not valid CESQL: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {position})")]
pub struct ParseError {
    /// Byte offset into the source where the problem was found (the source length when the
    /// expression ended too early).
    pub position: usize,
    pub message: String,
}

impl ParseError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        ParseError {
            position,
            message: message.into(),
        }
    }
}

/// The error kinds of spec §3.3 that evaluation can raise (parse errors are [`ParseError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvalErrorKind {
    Math,
    Cast,
    MissingAttribute,
    MissingFunction,
    FunctionEvaluation,
    /// Part of the spec's vocabulary; this engine never raises it.
    Generic,
}

impl EvalErrorKind {
    /// The name the CESQL test kit uses for this kind (`math`, `missingAttribute`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EvalErrorKind::Math => "math",
            EvalErrorKind::Cast => "cast",
            EvalErrorKind::MissingAttribute => "missingAttribute",
            EvalErrorKind::MissingFunction => "missingFunction",
            EvalErrorKind::FunctionEvaluation => "functionEvaluation",
            EvalErrorKind::Generic => "generic",
        }
    }
}

impl fmt::Display for EvalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error raised while evaluating; it always comes with a value (spec §3.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} error: {message}")]
pub struct EvalError {
    pub kind: EvalErrorKind,
    pub message: String,
}

/// A parsed CESQL expression, ready to be evaluated any number of times.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: String,
    root: parser::Node,
}

impl Expression {
    /// Parses `src`; keywords and function names are case-insensitive.
    pub fn parse(src: &str) -> Result<Expression, ParseError> {
        let root = parser::parse(src)?;
        Ok(Expression {
            source: src.to_owned(),
            root,
        })
    }

    /// The text this expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against an event whose attributes `attr` returns by (lowercase) name, `None`
    /// when the event lacks one. Returns the value and the first error raised, if any.
    pub fn evaluate(&self, attr: &dyn Fn(&str) -> Option<Value>) -> (Value, Option<EvalError>) {
        let out = eval(&self.root, &|name: &str| attr(name).map(Val::from_value));
        (out.val.into_value(), out.fault.map(eval::Fault::into_error))
    }

    /// The Subscriptions API reading of the expression as a filter (spec §1.2): `true` only if
    /// it evaluates to Boolean `true` without any error. Attributes are given as strings, the
    /// way they arrive over HTTP, and are borrowed rather than copied.
    pub fn matches<'e>(&self, attr: &dyn Fn(&str) -> Option<&'e str>) -> bool {
        let out = eval(&self.root, &|name: &str| {
            attr(name).map(|s| Val::Str(Cow::Borrowed(s)))
        });
        out.fault.is_none() && out.val == Val::Bool(true)
    }
}

impl FromStr for Expression {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Expression::parse(s)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
