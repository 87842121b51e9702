//! Built-in functions (spec §3.5) plus the casts the TCK uses. Resolution by name and arity
//! happens once at parse time; arguments are cast to the parameter types here, a failed cast
//! going on with the zero value (spec §3.7).

use std::borrow::Cow;

use super::Type;
use super::eval::{Fault, Out, Val, first, out, to_bool, to_int, to_str};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Abs,
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    Substring,
    SubstringLen,
    Int,
    Bool,
    String,
    IsInt,
    IsBool,
}

impl Builtin {
    /// `name` is uppercase.
    pub(crate) fn resolve(name: &str, arity: usize) -> Option<Builtin> {
        let function = match (name, arity) {
            ("ABS", 1) => Builtin::Abs,
            ("LENGTH", 1) => Builtin::Length,
            ("CONCAT", _) => Builtin::Concat,
            ("CONCAT_WS", n) if n >= 1 => Builtin::ConcatWs,
            ("LOWER", 1) => Builtin::Lower,
            ("UPPER", 1) => Builtin::Upper,
            ("TRIM", 1) => Builtin::Trim,
            ("LEFT", 2) => Builtin::Left,
            ("RIGHT", 2) => Builtin::Right,
            ("SUBSTRING", 2) => Builtin::Substring,
            ("SUBSTRING", 3) => Builtin::SubstringLen,
            ("INT" | "INTEGER", 1) => Builtin::Int,
            ("BOOL", 1) => Builtin::Bool,
            ("STRING", 1) => Builtin::String,
            ("IS_INT", 1) => Builtin::IsInt,
            ("IS_BOOL", 1) => Builtin::IsBool,
            _ => return None,
        };
        Some(function)
    }

    pub(crate) fn return_type(self) -> Type {
        match self {
            Builtin::Abs | Builtin::Length | Builtin::Int => Type::Integer,
            Builtin::Bool | Builtin::IsInt | Builtin::IsBool => Type::Boolean,
            Builtin::Concat
            | Builtin::ConcatWs
            | Builtin::Lower
            | Builtin::Upper
            | Builtin::Trim
            | Builtin::Left
            | Builtin::Right
            | Builtin::Substring
            | Builtin::SubstringLen
            | Builtin::String => Type::String,
        }
    }

    /// `args` has the arity `resolve` accepted.
    pub(crate) fn call(self, args: Vec<Val<'_>>) -> Out<'_> {
        let mut args = args.into_iter();
        match self {
            Builtin::Concat | Builtin::ConcatWs => {
                let separator = if self == Builtin::ConcatWs {
                    to_str(next(&mut args))
                } else {
                    Cow::Borrowed("")
                };
                let mut s = String::new();
                for (i, v) in args.enumerate() {
                    if i > 0 {
                        s.push_str(&separator);
                    }
                    s.push_str(&to_str(v));
                }
                out(Val::Str(Cow::Owned(s)), None)
            }
            Builtin::Abs => {
                let (x, fault) = to_int(next(&mut args));
                match x.checked_abs() {
                    Some(v) => out(Val::Int(v), fault),
                    None => out(
                        Val::Int(i32::MAX),
                        first(fault, Some(Fault::Overflow("ABS"))),
                    ),
                }
            }
            Builtin::Length => {
                let s = to_str(next(&mut args));
                let n = i32::try_from(s.chars().count()).unwrap_or(i32::MAX);
                out(Val::Int(n), None)
            }
            Builtin::Lower => out(
                Val::Str(Cow::Owned(to_str(next(&mut args)).to_lowercase())),
                None,
            ),
            Builtin::Upper => out(
                Val::Str(Cow::Owned(to_str(next(&mut args)).to_uppercase())),
                None,
            ),
            Builtin::Trim => {
                let s = to_str(next(&mut args));
                let start = s.len() - s.trim_start().len();
                let end = s.trim_end().len().max(start);
                out(Val::Str(slice(s, start, end)), None)
            }
            Builtin::Left | Builtin::Right => {
                let s = to_str(next(&mut args));
                let (n, fault) = to_int(next(&mut args));
                let name = if self == Builtin::Left {
                    "LEFT"
                } else {
                    "RIGHT"
                };
                let Ok(n) = usize::try_from(n) else {
                    let bad = Fault::Function {
                        name,
                        reason: "the length must not be negative",
                    };
                    return out(Val::Str(s), first(fault, Some(bad)));
                };
                let count = s.chars().count();
                let (start, end) = if n >= count {
                    (0, s.len())
                } else if self == Builtin::Left {
                    (0, byte_offset(&s, n))
                } else {
                    (byte_offset(&s, count - n), s.len())
                };
                out(Val::Str(slice(s, start, end)), fault)
            }
            Builtin::Substring | Builtin::SubstringLen => {
                let s = to_str(next(&mut args));
                let (pos, f1) = to_int(next(&mut args));
                let (len, f2) = if self == Builtin::SubstringLen {
                    let (len, f) = to_int(next(&mut args));
                    (Some(len), f)
                } else {
                    (None, None)
                };
                let (v, f3) = substring(s, pos, len);
                out(Val::Str(v), first(first(f1, f2), f3))
            }
            Builtin::Int => {
                let (i, fault) = to_int(next(&mut args));
                out(Val::Int(i), fault)
            }
            Builtin::Bool => {
                let (b, fault) = to_bool(next(&mut args), true);
                out(Val::Bool(b), fault)
            }
            Builtin::String => out(Val::Str(to_str(next(&mut args))), None),
            Builtin::IsInt => {
                let yes = match next(&mut args) {
                    Val::Int(_) => true,
                    Val::Str(s) => s.parse::<i32>().is_ok(),
                    Val::Bool(_) => false,
                };
                out(Val::Bool(yes), None)
            }
            Builtin::IsBool => {
                let yes = match next(&mut args) {
                    Val::Bool(_) => true,
                    Val::Str(s) => {
                        s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
                    }
                    Val::Int(_) => false,
                };
                out(Val::Bool(yes), None)
            }
        }
    }
}

/// The next argument; `resolve` guaranteed the arity, so the fallback is never used.
fn next<'a>(args: &mut std::vec::IntoIter<Val<'a>>) -> Val<'a> {
    args.next().unwrap_or(Val::Bool(false))
}

/// `SUBSTRING(s, pos[, len])`: 1-based `pos`, negative counts from the end, 0 gives "".
fn substring<'a>(s: Cow<'a, str>, pos: i32, len: Option<i32>) -> (Cow<'a, str>, Option<Fault<'a>>) {
    let fail = |reason| {
        (
            Cow::Borrowed(""),
            Some(Fault::Function {
                name: "SUBSTRING",
                reason,
            }),
        )
    };
    if len.is_some_and(|l| l < 0) {
        return fail("the length must not be negative");
    }
    if pos == 0 {
        return (Cow::Borrowed(""), None);
    }
    let count = s.chars().count() as i64;
    let pos = i64::from(pos);
    if pos > count || pos < -count {
        return fail("the position is outside the string");
    }
    let begin = if pos < 0 { count + pos } else { pos - 1 };
    let end = len.map_or(count, |l| (begin + i64::from(l)).min(count));
    // Both lie in 0..=count, which came from a usize.
    let (begin, end) = (begin as usize, end as usize);
    let (start, stop) = (byte_offset(&s, begin), byte_offset(&s, end));
    (slice(s, start, stop), None)
}

/// Byte offset of the `n`-th character (the length when `n` is past the end).
fn byte_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

fn slice(s: Cow<'_, str>, start: usize, end: usize) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(&b[start..end]),
        Cow::Owned(mut o) => {
            o.truncate(end);
            o.drain(..start);
            Cow::Owned(o)
        }
    }
}
