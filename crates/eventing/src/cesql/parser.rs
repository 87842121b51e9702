//! A Pratt parser for the grammar of cloudevents/spec `cesql/CESQLParser.g4`. Binding powers
//! reproduce the grammar's alternative order (earlier alternatives bind tighter) and its
//! right-associative logical operators; see the module docs of `cesql` for what that means
//! for users.

use super::functions::Builtin;
use super::lexer::{Tok, Token, tokenize};
use super::like::Pattern;
use super::{MAX_DEPTH, ParseError, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Literal(Value),
    Attribute(String),
    Exists(String),
    Not(Box<Node>),
    Negate(Box<Node>),
    /// `a AND b AND …`, flattened: evaluated left to right, stopping at the first `false`.
    All(Vec<Node>),
    /// `a OR b OR …`, flattened: evaluated left to right, stopping at the first `true`.
    Any(Vec<Node>),
    Binary {
        op: BinOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Like {
        operand: Box<Node>,
        pattern: Pattern,
        negated: bool,
    },
    In {
        operand: Box<Node>,
        set: Vec<Node>,
        negated: bool,
    },
    Call {
        /// `None` when no built-in has this name and arity: evaluation reports it.
        function: Option<Builtin>,
        /// Uppercased, for error messages.
        name: String,
        args: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Xor,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// How an infix token combines its operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Infix {
    And,
    Or,
    Op(BinOp),
}

// Binding powers: a higher number binds tighter.
const LOGIC_BP: u8 = 10;
const COMPARE_BP: u8 = 20;
const ADD_BP: u8 = 30;
const MUL_BP: u8 = 40;
const IN_BP: u8 = 50;
const LIKE_BP: u8 = 60;
const PREFIX_BP: u8 = 70;

fn infix(tok: &Tok) -> Option<(Infix, u8)> {
    let (op, bp) = match tok {
        Tok::And => (Infix::And, LOGIC_BP),
        Tok::Or => (Infix::Or, LOGIC_BP),
        Tok::Xor => (Infix::Op(BinOp::Xor), LOGIC_BP),
        Tok::Eq => (Infix::Op(BinOp::Eq), COMPARE_BP),
        Tok::NotEq => (Infix::Op(BinOp::NotEq), COMPARE_BP),
        Tok::Lt => (Infix::Op(BinOp::Lt), COMPARE_BP),
        Tok::Le => (Infix::Op(BinOp::Le), COMPARE_BP),
        Tok::Gt => (Infix::Op(BinOp::Gt), COMPARE_BP),
        Tok::Ge => (Infix::Op(BinOp::Ge), COMPARE_BP),
        Tok::Plus => (Infix::Op(BinOp::Add), ADD_BP),
        Tok::Minus => (Infix::Op(BinOp::Sub), ADD_BP),
        Tok::Star => (Infix::Op(BinOp::Mul), MUL_BP),
        Tok::Slash => (Infix::Op(BinOp::Div), MUL_BP),
        Tok::Percent => (Infix::Op(BinOp::Mod), MUL_BP),
        _ => return None,
    };
    Some((op, bp))
}

/// A node and the height of its tree (a leaf is 1), which bounds evaluation's recursion.
struct Parsed {
    node: Node,
    depth: usize,
}

struct Parser {
    toks: Vec<Token>,
    next: usize,
    /// Source length: the position reported when the input ends too early.
    end: usize,
    /// Current recursion depth of `expr`.
    level: usize,
}

pub(crate) fn parse(src: &str) -> Result<Node, ParseError> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err(ParseError::new(0, "empty expression"));
    }
    let mut p = Parser {
        toks,
        next: 0,
        end: src.len(),
        level: 0,
    };
    let parsed = p.expr(0)?;
    if let Some(t) = p.toks.get(p.next) {
        return Err(ParseError::new(
            t.pos,
            format!("unexpected {}", describe(&t.tok)),
        ));
    }
    Ok(parsed.node)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.next).map(|t| &t.tok)
    }

    fn peek_second(&self) -> Option<&Tok> {
        self.toks.get(self.next + 1).map(|t| &t.tok)
    }

    /// Position of the next token, or the end of the source.
    fn pos(&self) -> usize {
        self.toks.get(self.next).map_or(self.end, |t| t.pos)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.toks.get(self.next).cloned();
        if t.is_some() {
            self.next += 1;
        }
        t
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        let found = self.peek().map_or("end of expression".to_owned(), describe);
        ParseError::new(self.pos(), format!("expected {wanted}, found {found}"))
    }

    fn expect(&mut self, tok: &Tok, wanted: &str) -> Result<(), ParseError> {
        if self.peek() == Some(tok) {
            self.next += 1;
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    fn expr(&mut self, min_bp: u8) -> Result<Parsed, ParseError> {
        self.level += 1;
        if self.level > MAX_DEPTH {
            return Err(ParseError::new(
                self.pos(),
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        let out = self.expr_inner(min_bp);
        self.level -= 1;
        out
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<Parsed, ParseError> {
        let mut lhs = self.prefix()?;
        loop {
            let pos = self.pos();
            let Some(tok) = self.peek() else { break };
            // Postfix LIKE / IN, optionally preceded by NOT.
            let postfix = match (tok, self.peek_second()) {
                (Tok::Like, _) => Some((false, false)),
                (Tok::In, _) => Some((true, false)),
                (Tok::Not, Some(Tok::Like)) => Some((false, true)),
                (Tok::Not, Some(Tok::In)) => Some((true, true)),
                (Tok::Not, _) => {
                    return Err(ParseError::new(pos, "expected LIKE or IN after NOT"));
                }
                _ => None,
            };
            if let Some((is_in, negated)) = postfix {
                if (if is_in { IN_BP } else { LIKE_BP }) < min_bp {
                    break;
                }
                self.next += if negated { 2 } else { 1 };
                lhs = if is_in {
                    self.in_set(lhs, negated, pos)?
                } else {
                    self.like(lhs, negated)?
                };
                continue;
            }
            let Some((op, bp)) = infix(tok) else { break };
            if bp < min_bp {
                break;
            }
            if bp == LOGIC_BP {
                // Nothing binds looser, so the chain ends the expression.
                return self.logic_chain(lhs);
            }
            self.next += 1;
            let rhs = self.expr(bp + 1)?;
            lhs = combine(op, lhs, rhs, pos)?;
        }
        Ok(lhs)
    }

    /// `x AND y OR z …`: the grammar groups these to the right (`<assoc=right>`). The operands
    /// are collected in a loop and folded from the right, rather than recursing once per
    /// operator, so that long generated chains (`type = 'a' OR type = 'b' OR …`) parse
    /// without deep recursion; `combine` then flattens runs of one operator.
    fn logic_chain(&mut self, first: Parsed) -> Result<Parsed, ParseError> {
        let mut operands = vec![first];
        let mut ops = Vec::new();
        while let Some((op, LOGIC_BP)) = self.peek().and_then(infix) {
            ops.push((op, self.pos()));
            self.next += 1;
            operands.push(self.expr(LOGIC_BP + 1)?);
        }
        let mut acc = operands
            .pop()
            .ok_or_else(|| self.unexpected("an expression"))?;
        while let (Some(lhs), Some((op, pos))) = (operands.pop(), ops.pop()) {
            acc = combine(op, lhs, acc, pos)?;
        }
        Ok(acc)
    }

    fn prefix(&mut self) -> Result<Parsed, ParseError> {
        let pos = self.pos();
        let Some(token) = self.bump() else {
            return Err(self.unexpected("an expression"));
        };
        let node = match token.tok {
            Tok::Not => {
                let operand = self.expr(PREFIX_BP)?;
                return nest(pos, operand.depth, Node::Not(Box::new(operand.node)));
            }
            Tok::Minus => {
                if let Some(&Tok::Int(n)) = self.peek() {
                    // Folded so that -2147483648 is expressible.
                    let at = self.pos();
                    self.next += 1;
                    if n > 1 << 31 {
                        return Err(out_of_range(at));
                    }
                    Node::Literal(Value::Integer((-(n as i64)) as i32))
                } else {
                    let operand = self.expr(PREFIX_BP)?;
                    return nest(pos, operand.depth, Node::Negate(Box::new(operand.node)));
                }
            }
            Tok::Plus => match self.peek() {
                Some(&Tok::Int(n)) => {
                    let at = self.pos();
                    self.next += 1;
                    Node::Literal(Value::Integer(int_literal(n, at)?))
                }
                _ => return Err(self.unexpected("an integer after '+'")),
            },
            Tok::Int(n) => Node::Literal(Value::Integer(int_literal(n, pos)?)),
            Tok::Str(s) => Node::Literal(Value::String(s)),
            Tok::True => Node::Literal(Value::Boolean(true)),
            Tok::False => Node::Literal(Value::Boolean(false)),
            Tok::Exists => {
                let at = self.pos();
                let Some(Tok::Word(w)) = self.peek() else {
                    return Err(self.unexpected("an attribute name after EXISTS"));
                };
                let name = attribute_name(w, at)?;
                self.next += 1;
                Node::Exists(name)
            }
            Tok::LParen => {
                let inner = self.expr(0)?;
                self.expect(&Tok::RParen, "')'")?;
                return Ok(inner);
            }
            Tok::Word(w) => {
                if self.peek() == Some(&Tok::LParen) {
                    return self.call(w, pos);
                }
                Node::Attribute(attribute_name(&w, pos)?)
            }
            other => {
                return Err(ParseError::new(
                    pos,
                    format!("expected an expression, found {}", describe(&other)),
                ));
            }
        };
        Ok(Parsed { node, depth: 1 })
    }

    fn call(&mut self, name: String, pos: usize) -> Result<Parsed, ParseError> {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid {
            return Err(ParseError::new(
                pos,
                format!("invalid function name {name:?}: letters and '_' only"),
            ));
        }
        self.expect(&Tok::LParen, "'('")?;
        let mut args = Vec::new();
        let mut depth = 0;
        if self.peek() == Some(&Tok::RParen) {
            self.next += 1;
        } else {
            loop {
                let arg = self.expr(0)?;
                depth = depth.max(arg.depth);
                args.push(arg.node);
                match self.peek() {
                    Some(Tok::Comma) => self.next += 1,
                    Some(Tok::RParen) => {
                        self.next += 1;
                        break;
                    }
                    _ => return Err(self.unexpected("',' or ')'")),
                }
            }
        }
        let name = name.to_ascii_uppercase();
        let function = Builtin::resolve(&name, args.len());
        nest(
            pos,
            depth,
            Node::Call {
                function,
                name,
                args,
            },
        )
    }

    fn like(&mut self, operand: Parsed, negated: bool) -> Result<Parsed, ParseError> {
        let pos = self.pos();
        match self.bump() {
            Some(Token {
                tok: Tok::Str(pattern),
                ..
            }) => nest(
                pos,
                operand.depth,
                Node::Like {
                    operand: Box::new(operand.node),
                    pattern: Pattern::compile(&pattern),
                    negated,
                },
            ),
            Some(_) => Err(ParseError::new(
                pos,
                "the pattern of LIKE must be a string literal",
            )),
            None => Err(ParseError::new(
                self.end,
                "expected a string literal pattern after LIKE",
            )),
        }
    }

    fn in_set(&mut self, operand: Parsed, negated: bool, pos: usize) -> Result<Parsed, ParseError> {
        self.expect(&Tok::LParen, "'(' and a list of values after IN")?;
        let mut set = Vec::new();
        let mut depth = operand.depth;
        loop {
            if set.is_empty() && self.peek() == Some(&Tok::RParen) {
                return Err(ParseError::new(
                    self.pos(),
                    "the set of IN must not be empty",
                ));
            }
            let element = self.expr(0)?;
            depth = depth.max(element.depth);
            set.push(element.node);
            match self.peek() {
                Some(Tok::Comma) => self.next += 1,
                Some(Tok::RParen) => {
                    self.next += 1;
                    break;
                }
                _ => return Err(self.unexpected("',' or ')'")),
            }
        }
        nest(
            pos,
            depth,
            Node::In {
                operand: Box::new(operand.node),
                set,
                negated,
            },
        )
    }
}

/// Wraps `node` whose deepest child has height `child_depth`, refusing trees that are too tall.
fn nest(pos: usize, child_depth: usize, node: Node) -> Result<Parsed, ParseError> {
    let depth = child_depth + 1;
    if depth > MAX_DEPTH {
        return Err(ParseError::new(
            pos,
            format!("expression nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    Ok(Parsed { node, depth })
}

fn combine(op: Infix, lhs: Parsed, rhs: Parsed, pos: usize) -> Result<Parsed, ParseError> {
    let chain = |op: Infix, p: Parsed, into: &mut Vec<Node>| -> usize {
        match (op, p.node) {
            (Infix::And, Node::All(nodes)) | (Infix::Or, Node::Any(nodes)) => {
                into.extend(nodes);
                p.depth - 1
            }
            (_, node) => {
                into.push(node);
                p.depth
            }
        }
    };
    match op {
        Infix::And | Infix::Or => {
            let mut nodes = Vec::new();
            let depth = chain(op, lhs, &mut nodes).max(chain(op, rhs, &mut nodes));
            let node = if op == Infix::And {
                Node::All(nodes)
            } else {
                Node::Any(nodes)
            };
            nest(pos, depth, node)
        }
        Infix::Op(op) => nest(
            pos,
            lhs.depth.max(rhs.depth),
            Node::Binary {
                op,
                left: Box::new(lhs.node),
                right: Box::new(rhs.node),
            },
        ),
    }
}

fn int_literal(n: u64, pos: usize) -> Result<i32, ParseError> {
    i32::try_from(n).map_err(|_| out_of_range(pos))
}

fn out_of_range(pos: usize) -> ParseError {
    ParseError::new(
        pos,
        "integer literal out of range (-2147483648 to 2147483647)",
    )
}

/// Attribute names are CloudEvents attribute names: letters and digits, folded to lowercase.
fn attribute_name(word: &str, pos: usize) -> Result<String, ParseError> {
    if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(word.to_ascii_lowercase())
    } else {
        Err(ParseError::new(
            pos,
            format!("invalid attribute name {word:?}: letters and digits only"),
        ))
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Plus => "'+'".into(),
        Tok::Minus => "'-'".into(),
        Tok::Star => "'*'".into(),
        Tok::Slash => "'/'".into(),
        Tok::Percent => "'%'".into(),
        Tok::Eq => "'='".into(),
        Tok::NotEq => "'!='".into(),
        Tok::Lt => "'<'".into(),
        Tok::Le => "'<='".into(),
        Tok::Gt => "'>'".into(),
        Tok::Ge => "'>='".into(),
        Tok::And => "AND".into(),
        Tok::Or => "OR".into(),
        Tok::Xor => "XOR".into(),
        Tok::Not => "NOT".into(),
        Tok::Like => "LIKE".into(),
        Tok::Exists => "EXISTS".into(),
        Tok::In => "IN".into(),
        Tok::True => "TRUE".into(),
        Tok::False => "FALSE".into(),
        Tok::Int(n) => format!("integer {n}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Word(w) => format!("name {w:?}"),
    }
}
