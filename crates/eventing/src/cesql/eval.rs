//! Tree-walking evaluation. Values borrow from the expression (literals) and from the event
//! (attributes) wherever they can, and errors stay unformatted until a caller asks for them,
//! so a filter that only needs "true without error?" allocates nothing for the common
//! operators.
//!
//! The error model (see the `cesql` module docs): an operand's error makes the operator return
//! its own zero value with that error; a cast failure inside the operator does not stop it.

use std::borrow::Cow;

use super::parser::{BinOp, Node};
use super::{EvalError, EvalErrorKind, Type, Value};

/// A value during evaluation; `Str` borrows when it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Int(i32),
    Str(Cow<'a, str>),
}

impl<'a> Val<'a> {
    pub(crate) fn from_value(v: Value) -> Val<'static> {
        match v {
            Value::Boolean(b) => Val::Bool(b),
            Value::Integer(i) => Val::Int(i),
            Value::String(s) => Val::Str(Cow::Owned(s)),
        }
    }

    fn borrowed(v: &'a Value) -> Val<'a> {
        match v {
            Value::Boolean(b) => Val::Bool(*b),
            Value::Integer(i) => Val::Int(*i),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Val::Bool(b) => Value::Boolean(b),
            Val::Int(i) => Value::Integer(i),
            Val::Str(s) => Value::String(s.into_owned()),
        }
    }

    pub(crate) fn ty(&self) -> Type {
        match self {
            Val::Bool(_) => Type::Boolean,
            Val::Int(_) => Type::Integer,
            Val::Str(_) => Type::String,
        }
    }

    pub(crate) fn zero(ty: Type) -> Val<'static> {
        match ty {
            Type::Boolean => Val::Bool(false),
            Type::Integer => Val::Int(0),
            Type::String => Val::Str(Cow::Borrowed("")),
        }
    }
}

/// An evaluation error, kept cheap until it is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault<'a> {
    MissingAttribute(&'a str),
    MissingFunction {
        name: &'a str,
        arity: usize,
    },
    DivisionByZero,
    /// The operator or function whose result does not fit 32 bits.
    Overflow(&'static str),
    Cast {
        value: Val<'a>,
        to: Type,
    },
    Function {
        name: &'static str,
        reason: &'static str,
    },
}

impl Fault<'_> {
    pub(crate) fn into_error(self) -> EvalError {
        let (kind, message) = match self {
            Fault::MissingAttribute(name) => (
                EvalErrorKind::MissingAttribute,
                format!("the event has no attribute {name:?}"),
            ),
            Fault::MissingFunction { name, arity } => (
                EvalErrorKind::MissingFunction,
                format!("no function {name} taking {arity} argument(s)"),
            ),
            Fault::DivisionByZero => (EvalErrorKind::Math, "division by zero".to_owned()),
            Fault::Overflow(what) => (EvalErrorKind::Math, format!("integer overflow in {what}")),
            Fault::Cast { value, to } => {
                let shown = match &value {
                    Val::Str(s) => format!("{s:?}"),
                    Val::Int(i) => i.to_string(),
                    Val::Bool(b) => b.to_string(),
                };
                let from = value.ty();
                let hint = if from == Type::Integer && to == Type::Boolean {
                    " implicitly (use BOOL(x))"
                } else {
                    ""
                };
                (
                    EvalErrorKind::Cast,
                    format!("cannot cast {from} {shown} to {to}{hint}"),
                )
            }
            Fault::Function { name, reason } => (
                EvalErrorKind::FunctionEvaluation,
                format!("{name}: {reason}"),
            ),
        };
        EvalError { kind, message }
    }
}

/// A value and the first error raised while computing it.
pub(crate) struct Out<'a> {
    pub(crate) val: Val<'a>,
    pub(crate) fault: Option<Fault<'a>>,
}

pub(crate) fn out<'a>(val: Val<'a>, fault: Option<Fault<'a>>) -> Out<'a> {
    Out { val, fault }
}

/// Keeps the earlier error.
pub(crate) fn first<'a>(a: Option<Fault<'a>>, b: Option<Fault<'a>>) -> Option<Fault<'a>> {
    a.or(b)
}

/// Evaluates an operand; if it failed, returns `$zero` with its error from the caller.
macro_rules! operand {
    ($node:expr, $env:expr, $zero:expr) => {{
        let o = eval($node, $env);
        if o.fault.is_some() {
            return Out {
                val: $zero,
                fault: o.fault,
            };
        }
        o.val
    }};
}

pub(crate) fn eval<'a>(node: &'a Node, env: &dyn Fn(&str) -> Option<Val<'a>>) -> Out<'a> {
    match node {
        Node::Literal(v) => out(Val::borrowed(v), None),
        Node::Attribute(name) => match env(name) {
            Some(v) => out(v, None),
            // The result type of a bare attribute is unknown: Boolean by spec §3.2.
            None => out(Val::Bool(false), Some(Fault::MissingAttribute(name))),
        },
        Node::Exists(name) => out(Val::Bool(env(name).is_some()), None),
        Node::Not(x) => {
            let v = operand!(x, env, Val::Bool(false));
            let (b, fault) = to_bool(v, false);
            out(Val::Bool(!b), fault)
        }
        Node::Negate(x) => {
            let v = operand!(x, env, Val::Int(0));
            let (i, fault) = to_int(v);
            match i.checked_neg() {
                Some(n) => out(Val::Int(n), fault),
                None => out(
                    Val::Int(i32::MAX),
                    first(fault, Some(Fault::Overflow("unary -"))),
                ),
            }
        }
        Node::All(nodes) => chain(nodes, env, false),
        Node::Any(nodes) => chain(nodes, env, true),
        Node::Binary { op, left, right } => binary(*op, left, right, env),
        Node::Like {
            operand,
            pattern,
            negated,
        } => {
            let v = operand!(operand, env, Val::Bool(false));
            let s = to_str(v);
            out(Val::Bool(pattern.matches(&s) != *negated), None)
        }
        Node::In {
            operand,
            set,
            negated,
        } => {
            let left = operand!(operand, env, Val::Bool(false));
            let ty = left.ty();
            let mut fault = None;
            let mut found = false;
            for element in set {
                let o = eval(element, env);
                if o.fault.is_some() {
                    return out(Val::Bool(false), first(fault, o.fault));
                }
                let (v, f) = cast(o.val, ty);
                fault = first(fault, f);
                if v == left {
                    found = true;
                    break;
                }
            }
            out(Val::Bool(found != *negated), fault)
        }
        Node::Call {
            function,
            name,
            args,
        } => {
            let Some(function) = function else {
                return out(
                    Val::Bool(false),
                    Some(Fault::MissingFunction {
                        name,
                        arity: args.len(),
                    }),
                );
            };
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(operand!(arg, env, Val::zero(function.return_type())));
            }
            function.call(values)
        }
    }
}

/// `AND` (`stop_on` false) or `OR` (`stop_on` true) over a flattened chain, short-circuiting.
fn chain<'a>(nodes: &'a [Node], env: &dyn Fn(&str) -> Option<Val<'a>>, stop_on: bool) -> Out<'a> {
    let mut fault = None;
    for node in nodes {
        let o = eval(node, env);
        if o.fault.is_some() {
            return out(Val::Bool(false), first(fault, o.fault));
        }
        let (b, f) = to_bool(o.val, false);
        fault = first(fault, f);
        if b == stop_on {
            return out(Val::Bool(stop_on), fault);
        }
    }
    out(Val::Bool(!stop_on), fault)
}

fn binary<'a>(
    op: BinOp,
    left: &'a Node,
    right: &'a Node,
    env: &dyn Fn(&str) -> Option<Val<'a>>,
) -> Out<'a> {
    match op {
        BinOp::Xor => {
            let l = operand!(left, env, Val::Bool(false));
            let r = operand!(right, env, Val::Bool(false));
            let (a, f1) = to_bool(l, false);
            let (b, f2) = to_bool(r, false);
            out(Val::Bool(a != b), first(f1, f2))
        }
        BinOp::Eq | BinOp::NotEq => {
            let l = operand!(left, env, Val::Bool(false));
            let r = operand!(right, env, Val::Bool(false));
            // `=` is overloaded: the right operand's type picks the definition (spec §3.7).
            let (l, fault) = cast(l, r.ty());
            out(Val::Bool((l == r) == (op == BinOp::Eq)), fault)
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let l = operand!(left, env, Val::Bool(false));
            let r = operand!(right, env, Val::Bool(false));
            let (a, f1) = to_int(l);
            let (b, f2) = to_int(r);
            let result = match op {
                BinOp::Lt => a < b,
                BinOp::Le => a <= b,
                BinOp::Gt => a > b,
                _ => a >= b,
            };
            out(Val::Bool(result), first(f1, f2))
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
            let l = operand!(left, env, Val::Int(0));
            let r = operand!(right, env, Val::Int(0));
            let (a, f1) = to_int(l);
            let (b, f2) = to_int(r);
            let fault = first(f1, f2);
            let (result, what) = match op {
                BinOp::Add => (a.checked_add(b), "+"),
                BinOp::Sub => (a.checked_sub(b), "-"),
                BinOp::Mul => (a.checked_mul(b), "*"),
                BinOp::Div if b == 0 => {
                    return out(Val::Int(0), first(fault, Some(Fault::DivisionByZero)));
                }
                BinOp::Div => (a.checked_div(b), "/"),
                _ if b == 0 => return out(Val::Int(0), first(fault, Some(Fault::DivisionByZero))),
                // Truncated remainder, same sign as the dividend; MIN % -1 is 0.
                _ => (Some(a.checked_rem(b).unwrap_or(0)), "%"),
            };
            match result {
                Some(n) => out(Val::Int(n), fault),
                None => out(Val::Int(0), first(fault, Some(Fault::Overflow(what)))),
            }
        }
    }
}

/// Implicit cast to `ty` (spec §3.7); a failure yields the type's zero value and a fault.
pub(crate) fn cast<'a>(v: Val<'a>, ty: Type) -> (Val<'a>, Option<Fault<'a>>) {
    match ty {
        _ if v.ty() == ty => (v, None),
        Type::String => (Val::Str(to_str(v)), None),
        Type::Integer => {
            let (i, f) = to_int(v);
            (Val::Int(i), f)
        }
        Type::Boolean => {
            let (b, f) = to_bool(v, false);
            (Val::Bool(b), f)
        }
    }
}

/// String → Integer parses base 10 with an optional sign; Boolean → 1 or 0.
pub(crate) fn to_int(v: Val<'_>) -> (i32, Option<Fault<'_>>) {
    match v {
        Val::Int(i) => (i, None),
        Val::Bool(b) => (i32::from(b), None),
        Val::Str(ref s) => match s.parse::<i32>() {
            Ok(i) => (i, None),
            Err(_) => (
                0,
                Some(Fault::Cast {
                    value: v,
                    to: Type::Integer,
                }),
            ),
        },
    }
}

/// String → Boolean accepts `true`/`false` in any case. Integer → Boolean only when
/// `explicit` (the `BOOL` function); implicitly it is a cast error (required by the TCK).
pub(crate) fn to_bool(v: Val<'_>, explicit: bool) -> (bool, Option<Fault<'_>>) {
    match v {
        Val::Bool(b) => (b, None),
        Val::Int(i) if explicit => (i != 0, None),
        Val::Str(ref s) if s.eq_ignore_ascii_case("true") => (true, None),
        Val::Str(ref s) if s.eq_ignore_ascii_case("false") => (false, None),
        _ => (
            false,
            Some(Fault::Cast {
                value: v,
                to: Type::Boolean,
            }),
        ),
    }
}

/// Every value has a string form.
pub(crate) fn to_str(v: Val<'_>) -> Cow<'_, str> {
    match v {
        Val::Str(s) => s,
        Val::Bool(true) => Cow::Borrowed("true"),
        Val::Bool(false) => Cow::Borrowed("false"),
        Val::Int(i) => Cow::Owned(i.to_string()),
    }
}
