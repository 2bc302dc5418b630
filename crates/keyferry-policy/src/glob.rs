//! Wildcard matching (`*` any run of characters, `?` exactly one character), allocation-free.

/// One token of a compiled wildcard pattern, as the matcher sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TokRef<'a> {
    Lit(&'a str),
    Star,
    One,
}

/// Anything the matcher can read as a token.
pub(crate) trait TokLike {
    fn tok(&self) -> TokRef<'_>;
}

/// An owned pattern token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OTok {
    Lit(String),
    Star,
    One,
}

impl TokLike for OTok {
    fn tok(&self) -> TokRef<'_> {
        match self {
            OTok::Lit(s) => TokRef::Lit(s),
            OTok::Star => TokRef::Star,
            OTok::One => TokRef::One,
        }
    }
}

impl TokLike for TokRef<'_> {
    fn tok(&self) -> TokRef<'_> {
        *self
    }
}

/// Pushes a literal onto a token list, merging it with a preceding literal.
pub(crate) fn push_lit(toks: &mut Vec<OTok>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(OTok::Lit(prev)) = toks.last_mut() {
        prev.push_str(s);
    } else {
        toks.push(OTok::Lit(s.to_owned()));
    }
}

/// Pushes a `*`, collapsing runs of stars.
pub(crate) fn push_star(toks: &mut Vec<OTok>) {
    if !matches!(toks.last(), Some(OTok::Star)) {
        toks.push(OTok::Star);
    }
}

/// Splits `s` into tokens; with `wildcards` false every character is literal.
pub(crate) fn tokenize(s: &str, wildcards: bool) -> Vec<OTok> {
    let mut toks = Vec::new();
    if !wildcards {
        push_lit(&mut toks, s);
        return toks;
    }
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '*' || c == '?' {
            push_lit(&mut toks, &s[start..i]);
            if c == '*' {
                push_star(&mut toks);
            } else {
                toks.push(OTok::One);
            }
            start = i + 1;
        }
    }
    push_lit(&mut toks, &s[start..]);
    toks
}

fn chars_eq(a: char, b: char, ci: bool) -> bool {
    if a == b {
        return true;
    }
    if !ci {
        return false;
    }
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(&b);
    }
    a.to_lowercase().eq(b.to_lowercase())
}

/// If `text` starts with `lit`, the number of bytes of `text` it covers.
pub(crate) fn prefix_len(text: &str, lit: &str, ci: bool) -> Option<usize> {
    if !ci {
        return text.starts_with(lit).then_some(lit.len());
    }
    // An ASCII literal can only match ASCII bytes, so the text need not be scanned first.
    if lit.is_ascii() {
        let (t, l) = (text.as_bytes(), lit.as_bytes());
        return (t.len() >= l.len() && t[..l.len()].eq_ignore_ascii_case(l)).then_some(l.len());
    }
    let mut ti = text.char_indices();
    for lc in lit.chars() {
        match ti.next() {
            Some((_, tc)) if chars_eq(tc, lc, true) => {}
            _ => return None,
        }
    }
    Some(ti.next().map_or(text.len(), |(i, _)| i))
}

/// Whole-string equality, optionally case-insensitive.
pub(crate) fn str_eq(a: &str, b: &str, ci: bool) -> bool {
    if !ci {
        return a == b;
    }
    prefix_len(a, b, true) == Some(a.len())
}

fn next_char_len(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(0, char::len_utf8)
}

/// Matches `text` against the whole token list (backtracking to the last star).
pub(crate) fn glob_match<T: TokLike>(toks: &[T], text: &str, ci: bool) -> bool {
    let (mut ti, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(t) = toks.get(ti) {
            match t.tok() {
                TokRef::Star => {
                    star = Some((ti + 1, si));
                    ti += 1;
                    continue;
                }
                TokRef::One => {
                    if si < text.len() {
                        si += next_char_len(text, si);
                        ti += 1;
                        continue;
                    }
                }
                TokRef::Lit(l) => {
                    if let Some(n) = prefix_len(&text[si..], l, ci) {
                        si += n;
                        ti += 1;
                        continue;
                    }
                }
            }
        } else if si == text.len() {
            return true;
        }
        match star {
            Some((sti, ss)) if ss < text.len() => {
                let ns = ss + next_char_len(text, ss);
                star = Some((sti, ns));
                ti = sti;
                si = ns;
            }
            _ => return false,
        }
    }
}

/// A compiled static pattern with fast paths for the common shapes.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// `*`
    Any,
    /// No wildcard.
    Exact(String),
    /// `prefix*`
    Prefix(String),
    Glob(Vec<OTok>),
}

impl Pattern {
    pub(crate) fn from_toks(mut toks: Vec<OTok>) -> Pattern {
        match toks.as_slice() {
            [OTok::Star] => Pattern::Any,
            [] => Pattern::Exact(String::new()),
            [OTok::Lit(_)] => match toks.pop() {
                Some(OTok::Lit(s)) => Pattern::Exact(s),
                _ => Pattern::Glob(toks),
            },
            [OTok::Lit(_), OTok::Star] => {
                toks.pop();
                match toks.pop() {
                    Some(OTok::Lit(s)) => Pattern::Prefix(s),
                    _ => Pattern::Glob(toks),
                }
            }
            _ => Pattern::Glob(toks),
        }
    }

    pub(crate) fn new(s: &str, wildcards: bool) -> Pattern {
        Pattern::from_toks(tokenize(s, wildcards))
    }

    pub(crate) fn matches(&self, text: &str, ci: bool) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => str_eq(text, s, ci),
            Pattern::Prefix(p) => prefix_len(text, p, ci).is_some(),
            Pattern::Glob(t) => glob_match(t, text, ci),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str, ci: bool) -> bool {
        Pattern::new(p, true).matches(t, ci) && glob_match(&tokenize(p, true), t, ci)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "", false));
        assert!(m("*", "abc", false));
        assert!(m("kms:*", "kms:Encrypt", false));
        assert!(m("kms:Create*", "kms:CreateGrant", false));
        assert!(!m("kms:Create*", "kms:DescribeKey", false));
        assert!(m("kms:Create*", "KMS:CREATEALIAS", true));
        assert!(!m("kms:Create*", "KMS:CREATEALIAS", false));
        assert!(m("a?c", "abc", false));
        assert!(!m("a?c", "ac", false));
        assert!(m("a?c", "aéc", false));
        assert!(m("*a*b*c*", "xxaxxbxxcxx", false));
        assert!(!m("*a*b*c", "xxaxxbxxcxx", false));
        assert!(m("a*b?d", "aXXbXbcd", false));
        assert!(m("exact", "exact", false));
        assert!(!m("exact", "exactly", false));
        assert!(!m("", "x", false));
        assert!(m("ÄB*", "äbc", true));
        assert!(m("*?", "x", false));
        assert!(!m("*?", "", false));
    }

    #[test]
    fn literal_mode() {
        assert!(Pattern::new("a*", false).matches("a*", false));
        assert!(!Pattern::new("a*", false).matches("ab", false));
    }
}
