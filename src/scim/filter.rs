//! SCIM filters (RFC 7644 §3.4.2.2) and attribute paths, parsed and evaluated against
//! resources held as JSON. Attribute names are case-insensitive; string comparisons are
//! case-insensitive except on `id`, `externalId` and member `value`s (caseExact).
//!
//! We never panic on hostile input: the filter comes from the network; it is bounded in
//! length and nesting, and every malformed input is an `invalidFilter` error.

use super::ScimError;
use serde_json::Value;

const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

/// `urn:…:attr.sub`, the URN (schema) optional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare(AttrPath, Op, Value),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`, optionally followed by `.sub op value` (or `.sub pr`).
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
        then: Option<Box<Filter>>,
    },
}

/// Split `urn:…:User:name.givenName` into URN and attribute path. The URN is everything
/// up to the last ':' (URNs contain dots, like `2.0`).
pub fn parse_attr_path(s: &str) -> Result<AttrPath, ScimError> {
    let s = s.trim();
    let (urn, rest) = if s.len() > 4 && s.as_bytes()[..4].eq_ignore_ascii_case(b"urn:") {
        match s.rfind(':') {
            Some(i) => (Some(s[..i].to_string()), &s[i + 1..]),
            None => (None, s),
        }
    } else {
        (None, s)
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let valid = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) {
        return Err(ScimError::invalid_filter(format!(
            "\"{}\" is not an attribute path",
            s.chars().take(64).collect::<String>()
        )));
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    LBracket,
    RBracket,
    Word(String),
    Str(String),
    Num(serde_json::Number),
}

fn lex(s: &str) -> Result<Vec<Tok>, ScimError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1;
                // `].sub` continues the value path as a word starting with '.'
                if chars.get(i) == Some(&'.') {
                    let start = i;
                    i += 1;
                    while i < chars.len()
                        && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                    {
                        i += 1;
                    }
                    out.push(Tok::Word(chars[start..i].iter().collect()));
                }
            }
            '"' => {
                // A JSON string literal.
                let start = i;
                i += 1;
                let mut escaped = false;
                while i < chars.len() {
                    match chars[i] {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(ScimError::invalid_filter("unterminated string"));
                }
                let lit: String = chars[start..=i].iter().collect();
                let v: String = serde_json::from_str(&lit)
                    .map_err(|_| ScimError::invalid_filter("bad string literal"))?;
                out.push(Tok::Str(v));
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !matches!(
                        chars[i],
                        ' ' | '\t' | '\n' | '\r' | '(' | ')' | '[' | ']' | '"'
                    )
                {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                // A JSON number keeps its own text (`12345` stays an integer); anything
                // else that starts like one (a GUID, `007`) is a word.
                match serde_json::from_str::<serde_json::Number>(&w) {
                    Ok(n) => out.push(Tok::Num(n)),
                    Err(_) => out.push(Tok::Word(w)),
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn op_of(w: &str) -> Option<Op> {
    Some(match w.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "co" => Op::Co,
        "sw" => Op::Sw,
        "ew" => Op::Ew,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(
                ScimError::invalid_filter("filter nests too deeply").over_limit("filter_depth")
            );
        }
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.peek_word("not") {
            self.pos += 1;
            if self.next() != Some(Tok::Open) {
                return Err(ScimError::invalid_filter("expected '(' after not"));
            }
            let f = self.or()?;
            if self.next() != Some(Tok::Close) {
                return Err(ScimError::invalid_filter("expected ')'"));
            }
            return Ok(Filter::Not(Box::new(f)));
        }
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let f = self.or()?;
            if self.next() != Some(Tok::Close) {
                return Err(ScimError::invalid_filter("expected ')'"));
            }
            return Ok(f);
        }
        let Some(Tok::Word(path)) = self.next() else {
            return Err(ScimError::invalid_filter("expected an attribute"));
        };
        let attr = parse_attr_path(&path)?;
        if self.peek() == Some(&Tok::LBracket) {
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(
                    ScimError::invalid_filter("filter nests too deeply").over_limit("filter_depth")
                );
            }
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Tok::RBracket) {
                return Err(ScimError::invalid_filter("expected ']'"));
            }
            let then = match self.peek() {
                Some(Tok::Word(w)) if w.starts_with('.') => {
                    let sub = w[1..].to_string();
                    self.pos += 1;
                    let sub_path = parse_attr_path(&sub)?;
                    Some(Box::new(self.comparison(sub_path)?))
                }
                _ => None,
            };
            return Ok(Filter::ValuePath {
                attr,
                filter: Box::new(inner),
                then,
            });
        }
        self.comparison(attr)
    }

    fn comparison(&mut self, attr: AttrPath) -> Result<Filter, ScimError> {
        let Some(Tok::Word(op)) = self.next() else {
            return Err(ScimError::invalid_filter("expected an operator"));
        };
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(attr));
        }
        let op = op_of(&op).ok_or_else(|| ScimError::invalid_filter("unknown operator"))?;
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Num(n)) => Value::Number(n),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
            // Unquoted, as in Microsoft's own examples (`externalId eq 6b2e…`): a bare word
            // is a string, unless it is a keyword of the grammar.
            Some(Tok::Word(w)) if is_bare_value(&w) => Value::String(w),
            _ => return Err(ScimError::invalid_filter("expected a value")),
        };
        Ok(Filter::Compare(attr, op, value))
    }
}

/// A word that may stand as an unquoted comparison value: not an operator or keyword,
/// and made of the characters of identifiers, e-mail addresses and GUIDs.
fn is_bare_value(w: &str) -> bool {
    const KEYWORDS: [&str; 13] = [
        "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not",
    ];
    !w.is_empty()
        && !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k))
        && w.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '#' | ':'))
}

/// Parse a filter expression.
pub fn parse(s: &str) -> Result<Filter, ScimError> {
    if s.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter("filter too long").over_limit("filter_length"));
    }
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
        depth: 0,
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return Err(ScimError::invalid_filter(
            "unexpected text after the filter",
        ));
    }
    Ok(f)
}

/// The object key matching `name` case-insensitively.
pub fn get_ci<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The values an attribute path designates on a resource (flattening multi-valued
/// attributes): `emails.value` gives every email's value.
pub fn values<'a>(res: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let base = match &path.urn {
        Some(urn) if !is_core_urn(urn) => match get_ci(res, urn) {
            Some(ext) => ext,
            None => return Vec::new(),
        },
        _ => res,
    };
    let Some(top) = get_ci(base, &path.attr) else {
        return Vec::new();
    };
    let tops: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match &path.sub {
        None => tops,
        Some(sub) => tops
            .into_iter()
            .filter_map(|t| get_ci(t, sub))
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                v => vec![v],
            })
            .collect(),
    }
}

pub fn is_core_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(super::resource::USER_SCHEMA)
        || urn.eq_ignore_ascii_case(super::resource::GROUP_SCHEMA)
}

fn case_exact(path: &AttrPath) -> bool {
    let last = path.sub.as_deref().unwrap_or(&path.attr);
    last.eq_ignore_ascii_case("id")
        || last.eq_ignore_ascii_case("externalId")
        || (path.sub.is_some() && path.attr.eq_ignore_ascii_case("members"))
}

fn compare(actual: &Value, op: Op, expected: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ord = match (actual, expected) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                Op::Co => return a.contains(&b),
                Op::Sw => return a.starts_with(&b),
                Op::Ew => return a.ends_with(&b),
                _ => a.cmp(&b),
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return false;
            };
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        // "True"/"False" strings stored by older writers compare as booleans.
        (Value::String(a), Value::Bool(b)) => match a.to_ascii_lowercase().as_str() {
            "true" => true.cmp(b),
            "false" => false.cmp(b),
            _ => return op == Op::Ne,
        },
        // An unquoted number against a string attribute (`externalId eq 12345`).
        (Value::String(a), Value::Number(b)) if matches!(op, Op::Eq | Op::Ne) => {
            a.cmp(&b.to_string())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => return op == Op::Ne,
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

/// Does `res` match `f`?
pub fn matches(f: &Filter, res: &Value) -> bool {
    match f {
        Filter::And(a, b) => matches(a, res) && matches(b, res),
        Filter::Or(a, b) => matches(a, res) || matches(b, res),
        Filter::Not(a) => !matches(a, res),
        Filter::Present(p) => values(res, p).iter().any(|v| {
            !v.is_null() && v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
        }),
        Filter::Compare(p, op, expected) => {
            let vals = values(res, p);
            if *op == Op::Ne {
                return vals
                    .iter()
                    .all(|v| compare(v, Op::Ne, expected, case_exact(p)));
            }
            vals.iter()
                .any(|v| compare(v, *op, expected, case_exact(p)))
        }
        Filter::ValuePath { attr, filter, then } => {
            let elements = values(res, attr);
            elements.iter().any(|e| {
                matches(filter, e)
                    && then.as_ref().is_none_or(|t| {
                        // `.sub op value` applies to the element itself.
                        matches(t, e)
                    })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the scim_filter fuzz target: a multi-byte character across byte 4 made
    /// the `urn:` check slice a `str` inside a character (a panic on the request path).
    #[test]
    fn a_multibyte_character_at_byte_four_is_not_a_panic() {
        for path in ["use\u{6db}isplay", "urn\u{e9}x", "\u{e9}\u{e9}\u{e9}"] {
            let _ = parse_attr_path(path);
            let _ = parse(&format!("{path} eq \"x\""));
        }
        let projected = crate::scim::resource::project(
            &json!({"id": "1", "userName": "a"}),
            Some("use\u{6db}isplay,userName"),
            None,
        );
        assert_eq!(projected["userName"], "a");
    }

    fn user() -> Value {
        json!({
            "id": "AbC", "userName": "Alice@Contoso.com", "externalId": "Alice",
            "active": true, "displayName": "Alice A",
            "name": {"givenName": "Alice", "familyName": "A"},
            "emails": [{"type": "work", "value": "alice@contoso.com", "primary": true},
                       {"type": "home", "value": "a@home.example"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42", "department": "R&D"}
        })
    }

    fn m(f: &str) -> bool {
        matches(&parse(f).unwrap(), &user())
    }

    #[test]
    fn entra_filters() {
        assert!(m("userName eq \"alice@contoso.com\""));
        assert!(!m(
            "userName eq \"Test_User_dfeef4c5-5681-4387-b016-bdf221e82081\""
        ));
        assert!(m("externalId eq \"Alice\""));
        assert!(!m("externalId eq \"alice\""), "externalId is caseExact");
        assert!(m("id eq \"AbC\""));
        assert!(m("displayName eq \"alice a\""));
        assert!(m("emails[type eq \"work\"].value eq \"alice@contoso.com\""));
        assert!(!m(
            "emails[type eq \"home\"].value eq \"alice@contoso.com\""
        ));
        assert!(m("emails[type eq \"work\" and primary eq true]"));
        assert!(m("userName eq \"alice@contoso.com\" and active eq true"));
        assert!(m("name.givenName sw \"Ali\" or userName eq \"x\""));
        assert!(m("not (userName eq \"bob\")"));
        assert!(m(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"42\""
        ));
        assert!(m(
            "urn:ietf:params:scim:schemas:core:2.0:User:userName co \"contoso\""
        ));
        assert!(!m("title pr"));
        assert!(m("emails pr"));
        assert!(m("USERNAME EQ \"ALICE@CONTOSO.COM\""));
    }

    #[test]
    fn unquoted_values_as_in_microsofts_examples() {
        let mut u = user();
        u["externalId"] = json!("6b2e5f7a-31f4-4c2b-9b5e-0e6c8d2b1f3a");
        let m = |f: &str| matches(&parse(f).unwrap(), &u);
        assert!(m("externalId eq 6b2e5f7a-31f4-4c2b-9b5e-0e6c8d2b1f3a"));
        assert!(!m("externalId eq 6B2E5F7A-31F4-4C2B-9B5E-0E6C8D2B1F3A"));
        assert!(m("userName eq alice@contoso.com"));
        assert!(m("active eq true"), "keywords keep their JSON meaning");
        u["externalId"] = json!("12345");
        assert!(matches(&parse("externalId eq 12345").unwrap(), &u));
        assert!(!matches(&parse("externalId eq 1234").unwrap(), &u));
        for bad in [
            "userName eq and",
            "userName eq eq",
            "userName eq a,b",
            "userName eq {x}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for f in [
            "",
            "userName",
            "userName eq",
            "userName zz \"a\"",
            "(userName eq \"a\"",
            "userName eq \"a",
            "emails[type eq \"work\"",
            "not userName eq \"a\"",
            "]]]",
            "\"\\u12\"",
            "a.b.c eq 1",
            "userName eq \"a\" extra",
            "((((((((((((((((((((((((((((((((((x pr))))))))))))))))))))))))))))))))))",
            "urn: eq 1",
            "[",
            "]",
            ".",
            "eq eq eq",
        ] {
            assert!(parse(f).is_err(), "{f}");
        }
        assert!(parse(&"a".repeat(5000)).is_err());
    }
}
