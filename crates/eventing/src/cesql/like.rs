//! `LIKE` patterns, compiled once at parse time. Most filter patterns are a prefix
//! (`'https://%'`), a suffix (`'%.error'`), a substring or an exact string, so those are
//! recognised and matched with plain string operations; anything else goes through a
//! backtracking wildcard matcher that is linear in practice and never allocates.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Char(char),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters, possibly empty.
    Many,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    General(Vec<Piece>),
}

impl Pattern {
    /// `\%` and `\_` are literal; any other backslash is an ordinary character (sdk-go).
    pub(crate) fn compile(src: &str) -> Pattern {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            let piece = match c {
                '\\' if matches!(chars.peek(), Some('%' | '_')) => {
                    Piece::Char(chars.next().unwrap_or('\\'))
                }
                '%' if pieces.last() == Some(&Piece::Many) => continue,
                '%' => Piece::Many,
                '_' => Piece::One,
                c => Piece::Char(c),
            };
            pieces.push(piece);
        }
        Pattern::classify(pieces)
    }

    fn classify(pieces: Vec<Piece>) -> Pattern {
        let literal = |ps: &[Piece]| -> Option<String> {
            ps.iter()
                .map(|p| match p {
                    Piece::Char(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        let starts = pieces.first() == Some(&Piece::Many);
        let ends = pieces.len() > usize::from(starts) && pieces.last() == Some(&Piece::Many);
        let inner = &pieces[usize::from(starts)..pieces.len() - usize::from(ends)];
        match (starts, ends, literal(inner)) {
            (false, false, Some(s)) => Pattern::Exact(s),
            (false, true, Some(s)) => Pattern::Prefix(s),
            (true, false, Some(s)) => Pattern::Suffix(s),
            (true, true, Some(s)) => Pattern::Contains(s),
            _ => Pattern::General(pieces),
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(s) => text == s,
            Pattern::Prefix(s) => text.starts_with(s.as_str()),
            Pattern::Suffix(s) => text.ends_with(s.as_str()),
            Pattern::Contains(s) => text.contains(s.as_str()),
            Pattern::General(pieces) => wildcard(pieces, text),
        }
    }
}

/// Classic wildcard matching: on a mismatch, go back to just after the last `%` and let it
/// swallow one more character.
fn wildcard(pieces: &[Piece], text: &str) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    // (piece index after the last `%`, text offset that `%` currently stops at)
    let mut resume: Option<(usize, usize)> = None;
    while let Some(c) = text[t..].chars().next() {
        match pieces.get(p) {
            Some(Piece::Many) => {
                p += 1;
                resume = Some((p, t));
                continue;
            }
            Some(Piece::One) => {
                p += 1;
                t += c.len_utf8();
                continue;
            }
            Some(Piece::Char(x)) if *x == c => {
                p += 1;
                t += c.len_utf8();
                continue;
            }
            _ => {}
        }
        match resume {
            Some((rp, rt)) => {
                let skipped = text[rt..].chars().next().map_or(1, char::len_utf8);
                resume = Some((rp, rt + skipped));
                p = rp;
                t = rt + skipped;
            }
            None => return false,
        }
    }
    pieces[p..].iter().all(|piece| *piece == Piece::Many)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(Pattern::compile("abc"), Pattern::Exact("abc".into()));
        assert_eq!(Pattern::compile("abc%"), Pattern::Prefix("abc".into()));
        assert_eq!(Pattern::compile("%%abc"), Pattern::Suffix("abc".into()));
        assert_eq!(Pattern::compile("%abc%"), Pattern::Contains("abc".into()));
        assert_eq!(Pattern::compile("%"), Pattern::Suffix(String::new()));
        assert_eq!(Pattern::compile(""), Pattern::Exact(String::new()));
        assert_eq!(Pattern::compile(r"a\%b\_"), Pattern::Exact("a%b_".into()));
        assert_eq!(Pattern::compile(r"a\b"), Pattern::Exact(r"a\b".into()));
        assert!(matches!(Pattern::compile("a_c"), Pattern::General(_)));
        assert!(matches!(Pattern::compile("a%c"), Pattern::General(_)));
    }

    #[test]
    fn matching() {
        let cases = [
            ("a%b%c", "abc", true),
            ("a%b%c", "azzzbzzzc", true),
            ("a%b%c", "azzzbzzz", false),
            ("a_b_c", "azbzc", true),
            ("a_b_c", "abc", false),
            ("._._.", ".a.b.", true),
            ("._._.", "abcd.", false),
            ("%a%", "bab", true),
            ("%a%", "bbb", false),
            ("%ab%ab", "xabyabab", true),
            ("_", "é", true),
            ("__", "é", false),
            ("h_llo%", "héllo world", true),
            ("%", "", true),
            ("_%", "", false),
            ("", "", true),
            ("", "a", false),
            (r"abc%123\%456\_d_f", "abc123123%456_dzf", true),
            (r"a\%b", "azb", false),
            (r"\%%", "%abc", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Pattern::compile(pattern).matches(text),
                want,
                "{text:?} LIKE {pattern:?}"
            );
        }
    }
}
