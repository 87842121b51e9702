//! Turns CESQL source into tokens. Keywords are recognised case-insensitively here; whether a
//! word is an identifier or a function name is the parser's call (it depends on a following
//! `(`), so words keep their original spelling.

use super::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
    Not,
    Like,
    Exists,
    In,
    True,
    False,
    /// Unsigned digits; saturates at `u64::MAX` (the parser range-checks). The sign, if any,
    /// is a separate token so that `4-1` is a subtraction.
    Int(u64),
    Str(String),
    Word(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Byte offset of the token's first character.
    pub(crate) pos: usize,
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let tok = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => single(&mut i, Tok::LParen),
            b')' => single(&mut i, Tok::RParen),
            b',' => single(&mut i, Tok::Comma),
            b'+' => single(&mut i, Tok::Plus),
            b'-' => single(&mut i, Tok::Minus),
            b'*' => single(&mut i, Tok::Star),
            b'/' => single(&mut i, Tok::Slash),
            b'%' => single(&mut i, Tok::Percent),
            b'=' => single(&mut i, Tok::Eq),
            b'!' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::NotEq
                } else {
                    return Err(ParseError::new(i, "unexpected '!' (did you mean '!='?)"));
                }
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Le
                }
                Some(b'>') => {
                    i += 2;
                    Tok::NotEq
                }
                _ => single(&mut i, Tok::Lt),
            },
            b'>' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Ge
                }
                _ => single(&mut i, Tok::Gt),
            },
            b'\'' | b'"' => {
                let (s, end) = string(src, i)?;
                i = end;
                Tok::Str(s)
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                word(&src[start..i])
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(ParseError::new(i, format!("unexpected character {ch:?}")));
            }
        };
        out.push(Token { tok, pos: start });
    }
    Ok(out)
}

fn single(i: &mut usize, tok: Tok) -> Tok {
    *i += 1;
    tok
}

fn word(w: &str) -> Tok {
    if w.bytes().all(|b| b.is_ascii_digit()) {
        let n = w.bytes().fold(0u64, |acc, b| {
            acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        return Tok::Int(n);
    }
    const KEYWORDS: [(&str, Tok); 9] = [
        ("AND", Tok::And),
        ("OR", Tok::Or),
        ("XOR", Tok::Xor),
        ("NOT", Tok::Not),
        ("LIKE", Tok::Like),
        ("EXISTS", Tok::Exists),
        ("IN", Tok::In),
        ("TRUE", Tok::True),
        ("FALSE", Tok::False),
    ];
    for (kw, tok) in KEYWORDS {
        if w.eq_ignore_ascii_case(kw) {
            return tok;
        }
    }
    Tok::Word(w.to_owned())
}

/// Reads the string literal starting at `start` (on its quote); returns its value and the
/// offset just past the closing quote.
fn string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    while let Some((off, c)) = chars.next() {
        if c == quote {
            // A doubled quote is one quote character (SQL); otherwise the literal ends.
            if chars.peek().is_some_and(|&(_, n)| n == quote) {
                chars.next();
                out.push(quote);
                continue;
            }
            return Ok((out, start + 1 + off + 1));
        }
        if c == '\\' {
            match chars.next() {
                Some((_, n)) if n == quote => out.push(quote),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => break,
            }
            continue;
        }
        out.push(c);
    }
    Err(ParseError::new(start, "unterminated string literal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_and_keywords() {
        assert_eq!(
            toks("a<>b != c <= >= < > = and Or xOR nOt like EXISTS in true FALSE"),
            vec![
                Tok::Word("a".into()),
                Tok::NotEq,
                Tok::Word("b".into()),
                Tok::NotEq,
                Tok::Word("c".into()),
                Tok::Le,
                Tok::Ge,
                Tok::Lt,
                Tok::Gt,
                Tok::Eq,
                Tok::And,
                Tok::Or,
                Tok::Xor,
                Tok::Not,
                Tok::Like,
                Tok::Exists,
                Tok::In,
                Tok::True,
                Tok::False,
            ]
        );
    }

    #[test]
    fn numbers_are_unsigned_and_words_may_start_with_digits() {
        assert_eq!(
            toks("4-1 123abc 99999999999999999999999"),
            vec![
                Tok::Int(4),
                Tok::Minus,
                Tok::Int(1),
                Tok::Word("123abc".into()),
                Tok::Int(u64::MAX),
            ]
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(toks(r#"'a"b\'c'"#), vec![Tok::Str("a\"b'c".into())]);
        assert_eq!(toks(r#""a'b\"c""#), vec![Tok::Str("a'b\"c".into())]);
        assert_eq!(toks(r"'a\_b\%c\d'"), vec![Tok::Str(r"a\_b\%c\d".into())]);
        assert_eq!(toks("'it''s'"), vec![Tok::Str("it's".into())]);
        assert_eq!(
            toks("'' ''"),
            vec![Tok::Str(String::new()), Tok::Str(String::new())]
        );
        assert_eq!(toks("'héllo'"), vec![Tok::Str("héllo".into())]);
    }

    #[test]
    fn errors_carry_positions() {
        assert_eq!(tokenize("a ! b").unwrap_err().position, 2);
        assert_eq!(tokenize("x = 'abc").unwrap_err().position, 4);
        assert_eq!(tokenize(r"x = 'abc\").unwrap_err().position, 4);
        assert_eq!(tokenize("x = é").unwrap_err().position, 4);
        assert_eq!(tokenize("1.5").unwrap_err().position, 1);
    }
}
