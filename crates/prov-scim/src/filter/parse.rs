//! The filter parser: a lexer and a recursive descent with `or` below
//! `and` below `not` and grouping. Recursion is bounded by [`MAX_DEPTH`]
//! levels of parentheses and value paths (counted as the parser descends,
//! so `((((...` cannot exhaust the stack) and the input by [`MAX_LENGTH`].

use super::{AttrPath, CompValue, CompareOp, Filter, FilterError, MAX_DEPTH, MAX_LENGTH};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// A `.` right after `]`: a sub-attribute of a value path follows.
    Dot,
    Str(String),
    Num(serde_json::Number),
    /// A keyword, an operator, a literal or an attribute path.
    Word(String),
}

fn describe(t: Option<&(usize, Tok)>) -> String {
    match t.map(|(_, t)| t) {
        None => "the end of the filter".to_owned(),
        Some(Tok::Open) => "`(`".to_owned(),
        Some(Tok::Close) => "`)`".to_owned(),
        Some(Tok::OpenBracket) => "`[`".to_owned(),
        Some(Tok::CloseBracket) => "`]`".to_owned(),
        Some(Tok::Dot) => "`.`".to_owned(),
        Some(Tok::Str(_)) => "a string".to_owned(),
        Some(Tok::Num(n)) => format!("the number {n}"),
        Some(Tok::Word(w)) => format!("`{w}`"),
    }
}

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'_' | b'-' | b'$')
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => out.push((start, Tok::Open)),
            b')' => out.push((start, Tok::Close)),
            b'[' => out.push((start, Tok::OpenBracket)),
            b']' => {
                out.push((start, Tok::CloseBracket));
                if bytes.get(i + 1) == Some(&b'.') {
                    i += 1;
                    out.push((i, Tok::Dot));
                }
            }
            b'"' => {
                // Up to the closing quote, skipping escaped characters; the
                // literal is then read as JSON (escapes, \u sequences).
                let mut j = i + 1;
                loop {
                    match bytes.get(j) {
                        None => return Err(FilterError::at(start, "a string is not closed")),
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                let literal = text
                    .get(start..=j)
                    .ok_or_else(|| FilterError::at(start, "a string is not closed"))?;
                let s: String = serde_json::from_str(literal)
                    .map_err(|e| FilterError::at(start, format!("a bad string: {e}")))?;
                out.push((start, Tok::Str(s)));
                i = j + 1;
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let mut j = i + 1;
                while bytes.get(j).is_some_and(|c| {
                    c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')
                }) {
                    j += 1;
                }
                let literal = text.get(i..j).unwrap_or_default();
                let n: serde_json::Number = serde_json::from_str(literal)
                    .map_err(|_| FilterError::at(start, format!("`{literal}` is not a number")))?;
                out.push((start, Tok::Num(n)));
                i = j;
                continue;
            }
            c if word_char(c) => {
                let mut j = i + 1;
                while bytes.get(j).copied().is_some_and(word_char) {
                    j += 1;
                }
                out.push((
                    start,
                    Tok::Word(text.get(i..j).unwrap_or_default().to_owned()),
                ));
                i = j;
                continue;
            }
            _ => {
                let ch = text.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(FilterError::at(start, format!("unexpected `{ch}`")));
            }
        }
        i += 1;
    }
    Ok(out)
}

pub(super) fn parse(text: &str) -> Result<Filter, FilterError> {
    let mut p = Parser::new(text)?;
    let f = p.or_expr(false)?;
    p.finish("`and`, `or` or the end")?;
    Ok(f)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    /// A parser over `text`, lexed, within [`MAX_LENGTH`].
    fn new(text: &str) -> Result<Self, FilterError> {
        if text.len() > MAX_LENGTH {
            return Err(FilterError::at(
                MAX_LENGTH,
                format!("longer than {MAX_LENGTH} bytes"),
            ));
        }
        Ok(Parser {
            tokens: lex(text)?,
            at: 0,
            end: text.len(),
            depth: 0,
        })
    }

    /// Nothing may follow what was parsed: `what` says what could have.
    fn finish(&self, what: &str) -> Result<(), FilterError> {
        match self.tokens.get(self.at) {
            Some((pos, _)) => Err(FilterError::at(
                *pos,
                format!(
                    "expected {what}, found {}",
                    describe(self.tokens.get(self.at))
                ),
            )),
            None => Ok(()),
        }
    }

    fn peek(&self) -> Option<&(usize, Tok)> {
        self.tokens.get(self.at)
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.end, |(p, _)| *p)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), FilterError> {
        if self.peek().map(|(_, t)| t) == Some(tok) {
            self.at += 1;
            Ok(())
        } else {
            Err(FilterError::at(
                self.pos(),
                format!("expected {what}, found {}", describe(self.peek())),
            ))
        }
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::at(
                self.pos(),
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    /// `and_expr ("or" and_expr)*`
    fn or_expr(&mut self, inner: bool) -> Result<Filter, FilterError> {
        self.chain(inner, "or", Self::and_expr, Filter::Or)
    }

    /// `unary ("and" unary)*`
    fn and_expr(&mut self, inner: bool) -> Result<Filter, FilterError> {
        self.chain(inner, "and", Self::unary, Filter::And)
    }

    /// `next (word next)*`, one n-ary node when there are several.
    fn chain(
        &mut self,
        inner: bool,
        word: &str,
        next: fn(&mut Self, bool) -> Result<Filter, FilterError>,
        node: fn(Vec<Filter>) -> Filter,
    ) -> Result<Filter, FilterError> {
        let mut items = vec![next(self, inner)?];
        while self.keyword(word) {
            self.at += 1;
            items.push(next(self, inner)?);
        }
        Ok(match items.len() {
            1 => items.pop().unwrap_or_else(|| node(Vec::new())),
            _ => node(items),
        })
    }

    /// `not (F)`, `(F)` or an attribute expression.
    fn unary(&mut self, inner: bool) -> Result<Filter, FilterError> {
        if self.keyword("not") && matches!(self.tokens.get(self.at + 1), Some((_, Tok::Open))) {
            self.at += 1;
            let f = self.group(inner)?;
            return Ok(Filter::Not(Box::new(f)));
        }
        if matches!(self.peek(), Some((_, Tok::Open))) {
            return self.group(inner);
        }
        self.attr_expr(inner)
    }

    fn group(&mut self, inner: bool) -> Result<Filter, FilterError> {
        self.expect(&Tok::Open, "`(`")?;
        self.enter()?;
        let f = self.or_expr(inner)?;
        self.depth -= 1;
        self.expect(&Tok::Close, "`)`")?;
        Ok(f)
    }

    fn path(&mut self) -> Result<AttrPath, FilterError> {
        let pos = self.pos();
        match self.peek() {
            // `not` is a keyword where a filter starts (`and` and `or`
            // are only between filters, so they may name attributes).
            Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case("not") => Err(FilterError::at(
                pos,
                format!(
                    "expected an attribute, found the keyword `{w}` (`not` takes its filter \
                     in parentheses: not (...))"
                ),
            )),
            Some((_, Tok::Word(w)))
                if ["true", "false", "null"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                Err(FilterError::at(
                    pos,
                    format!("expected an attribute, found the value `{w}`"),
                ))
            }
            Some((_, Tok::Word(w))) => {
                let w = w.clone();
                self.at += 1;
                attr_path(&w).map_err(|m| FilterError::at(pos, m))
            }
            other => Err(FilterError::at(
                pos,
                format!("expected an attribute, found {}", describe(other)),
            )),
        }
    }

    /// `PATH pr`, `PATH OP VALUE`, `PATH[F]`, `PATH[F].sub OP VALUE`.
    fn attr_expr(&mut self, inner: bool) -> Result<Filter, FilterError> {
        let path = self.path()?;
        if matches!(self.peek(), Some((_, Tok::OpenBracket))) {
            if inner {
                return Err(FilterError::at(
                    self.pos(),
                    "a value path cannot hold another value path",
                ));
            }
            if path.sub.is_some() {
                return Err(FilterError::at(
                    self.pos(),
                    "a value path is on an attribute, not a sub-attribute",
                ));
            }
            self.at += 1;
            self.enter()?;
            let mut f = self.or_expr(true)?;
            self.depth -= 1;
            self.expect(&Tok::CloseBracket, "`]`")?;
            if matches!(self.peek(), Some((_, Tok::Dot))) {
                // `emails[type eq "work"].value eq "x"`: the sub-attribute
                // comparison joins the value filter.
                self.at += 1;
                let sub_pos = self.pos();
                let sub = self.path()?;
                if sub.urn.is_some() || sub.sub.is_some() {
                    return Err(FilterError::at(sub_pos, "expected a sub-attribute name"));
                }
                let then = self.comparison(sub)?;
                f = f.and(then);
            }
            return Ok(Filter::ValuePath(path, Box::new(f)));
        }
        self.comparison(path)
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let pos = self.pos();
        let op = match self.peek() {
            Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case("pr") => {
                self.at += 1;
                return Ok(Filter::Present(path));
            }
            Some((_, Tok::Word(w))) => CompareOp::parse(w),
            _ => None,
        };
        let Some(op) = op else {
            return Err(FilterError::at(
                pos,
                format!(
                    "expected an operator (eq ne co sw ew gt ge lt le pr) after `{path}`, found {}",
                    describe(self.peek())
                ),
            ));
        };
        self.at += 1;
        let pos = self.pos();
        let value = match self.peek() {
            Some((_, Tok::Str(s))) => CompValue::String(s.clone()),
            Some((_, Tok::Num(n))) => CompValue::Number(n.clone()),
            Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            other => {
                return Err(FilterError::at(
                    pos,
                    format!(
                        "expected a value (a string, a number, true, false or null), found {}",
                        describe(other)
                    ),
                ));
            }
        };
        self.at += 1;
        Ok(Filter::Compare(path, op, value))
    }
}

/// A PATCH path: `attrPath` or `valuePath [ "." subAttr ]` (RFC 7644
/// section 3.5.2).
pub(super) fn parse_path(text: &str) -> Result<super::PatchPath, FilterError> {
    let mut p = Parser::new(text)?;
    let attr = p.path()?;
    let mut filter = None;
    let mut sub = None;
    if matches!(p.peek(), Some((_, Tok::OpenBracket))) {
        if attr.sub.is_some() {
            return Err(FilterError::at(
                p.pos(),
                "a value path is on an attribute, not a sub-attribute",
            ));
        }
        p.at += 1;
        p.enter()?;
        filter = Some(p.or_expr(true)?);
        p.depth -= 1;
        p.expect(&Tok::CloseBracket, "`]`")?;
        if matches!(p.peek(), Some((_, Tok::Dot))) {
            p.at += 1;
            let pos = p.pos();
            let s = p.path()?;
            if s.urn.is_some() || s.sub.is_some() {
                return Err(FilterError::at(pos, "expected a sub-attribute name"));
            }
            sub = Some(s.name);
        }
    }
    p.finish("the end of the path")?;
    Ok(super::PatchPath { attr, filter, sub })
}

/// `[URN ":"] name ["." sub]`; a URN is everything up to the last `:`.
pub(crate) fn attr_path(word: &str) -> Result<AttrPath, String> {
    let (urn, rest) = match word.rsplit_once(':') {
        Some((urn, rest)) => {
            // A schema URI: `scheme:...` (in practice `urn:ietf:params:scim:...`).
            let scheme_ok = urn.split_once(':').is_some_and(|(scheme, _)| {
                scheme
                    .as_bytes()
                    .first()
                    .is_some_and(u8::is_ascii_alphabetic)
                    && scheme
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
            });
            if !scheme_ok {
                return Err(format!(
                    "`{word}`: a schema prefix is a URI (`urn:ietf:params:scim:...:`)"
                ));
            }
            (Some(urn.to_owned()), rest)
        }
        None => (None, word),
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    let good = |s: &str| {
        s.eq_ignore_ascii_case("$ref")
            || (s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
    };
    if !good(name) || sub.is_some_and(|s| !good(s)) {
        return Err(format!(
            "`{word}` is not an attribute path (name, name.sub or urn:...:name)"
        ));
    }
    Ok(AttrPath {
        urn,
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::{AttrPath, CompValue, CompareOp, Filter, MAX_DEPTH};

    fn p(s: &str) -> Filter {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn eq(path: AttrPath, s: &str) -> Filter {
        Filter::Compare(path, CompareOp::Eq, CompValue::String(s.to_owned()))
    }

    #[test]
    fn the_rfc_examples_parse() {
        for s in [
            r#"userName eq "bjensen""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            "title pr",
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ] {
            let f = p(s);
            assert_eq!(p(&f.to_string()), f, "{s} -> {f}");
        }
    }

    #[test]
    fn precedence_case_and_urns() {
        let a = eq(AttrPath::new("a"), "1");
        let b = eq(AttrPath::new("b"), "2");
        let c = eq(AttrPath::new("c"), "3");
        assert_eq!(
            p(r#"a eq "1" OR b EQ "2" And c eq "3""#),
            Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])])
        );
        assert_eq!(
            p(r#"(a eq "1" or b eq "2") and c eq "3""#),
            Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(p(r#"NOT (a eq "1")"#), Filter::Not(Box::new(a.clone())));
        assert_eq!(
            p("active eq True"),
            Filter::Compare(
                AttrPath::new("active"),
                CompareOp::Eq,
                CompValue::Bool(true)
            )
        );
        let f = p(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        );
        let (path, _) = f.as_equality().unwrap();
        assert_eq!(
            path,
            &AttrPath::sub("manager", "value")
                .with_urn("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        // Entra ID's form: a sub-attribute after the value path.
        assert_eq!(
            p(r#"emails[type eq "work"].value eq "a@example.org""#),
            Filter::ValuePath(
                AttrPath::new("emails"),
                Box::new(Filter::And(vec![
                    eq(AttrPath::new("type"), "work"),
                    eq(AttrPath::new("value"), "a@example.org"),
                ]))
            )
        );
        assert_eq!(
            p(r#"members[$ref eq "x"]"#),
            Filter::ValuePath(
                AttrPath::new("members"),
                Box::new(eq(AttrPath::new("$ref"), "x"))
            )
        );
        assert_eq!(
            p(r#"userName eq "a\"b\u00e9""#),
            eq(AttrPath::new("userName"), "a\"bé")
        );
        assert_eq!(
            p("meta.version eq -1.5e3").to_string(),
            "meta.version eq -1500.0"
        );
    }

    #[test]
    fn errors_point_at_the_position() {
        for (s, at, says) in [
            ("", 0, "expected an attribute"),
            ("userName", 8, "expected an operator"),
            ("userName eq", 11, "expected a value"),
            (r#"userName eq "x"#, 12, "not closed"),
            (r#"userName xx "x""#, 9, "expected an operator"),
            (r#"userName eq "x" and"#, 19, "expected an attribute"),
            (r#"(userName eq "x""#, 16, "expected `)`"),
            (r#"emails[type eq "work""#, 21, "expected `]`"),
            (
                r#"emails[a[b eq "x"]]"#,
                8,
                "cannot hold another value path",
            ),
            (
                r#"userName eq "x" userName"#,
                16,
                "expected `and`, `or` or the end",
            ),
            (r#"userName eq "x" ; drop"#, 16, "unexpected `;`"),
            (r#"1abc eq "x""#, 0, "expected an attribute"),
            (r#"userName eq 1.2.3"#, 12, "not a number"),
            (r#"foo:bar eq "x""#, 0, "a schema prefix is a URI"),
            (r#"a.b.c eq "x""#, 0, "not an attribute path"),
            (r#"userName eq bjensen"#, 12, "expected a value"),
            ("not userName pr", 0, "in parentheses: not (...)"),
            ("not pr", 0, "the keyword `not`"),
            ("True pr", 0, "found the value `True`"),
            (r#"a pr and or b pr"#, 12, "expected an operator"),
        ] {
            let e = s.parse::<Filter>().unwrap_err();
            assert_eq!(e.position, at, "{s}: {e}");
            assert!(e.message.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let deep = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let e = deep.parse::<Filter>().unwrap_err();
        assert!(e.message.contains("levels deep"), "{e}");
        let nots = format!("{}a pr{}", "not (".repeat(10_000), ")".repeat(10_000));
        assert!(nots.parse::<Filter>().is_err());
        let shallow = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(p(&shallow), Filter::Present(AttrPath::new("a")));
        // A long chain is one level, not one per term.
        let chain = (0..500)
            .map(|i| format!("id eq \"{i}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        match p(&chain) {
            Filter::Or(items) => assert_eq!(items.len(), 500),
            other => panic!("{other:?}"),
        }
        let long = format!("userName eq \"{}\"", "x".repeat(super::MAX_LENGTH));
        assert!(
            long.parse::<Filter>()
                .unwrap_err()
                .message
                .contains("longer than")
        );
    }
}
